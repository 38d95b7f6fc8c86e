/**
 * `npm run release` as an owner meets it: on a stack whose newest release is
 * sequence 5 it builds the firmware, publishes it as 6 signed by the current
 * release key, keeps it under the state folder (never in the work tree),
 * and prints which of the owner's devices can take it with the rollout
 * command for them; the same build again is refused in one line that says
 * to change the firmware, exit 2; a sequence not above the newest is a
 * mistake; an owner service that does not answer is one line, and the
 * release is published all the same. The owner service is played by a small
 * HTTP server that answers `GET /api/devices` as the real one does, with its token.
 */
import assert from "node:assert/strict"
import { execFile, execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { freePort } from "../../devs/net/ports.ts"
import { describePlan, planRollout } from "../../devs/owner/rollout/plan.ts"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { SqliteStore } from "../../devs/registry/store.ts"
import { keyId } from "../../devs/updates/cose-sign1.ts"
import { KeyVault } from "../../devs/updates/key-vault.ts"
import { manifestFor, readSignedManifest, signManifest } from "../../devs/updates/manifest.ts"
import { UpdateService } from "../../devs/updates/service.ts"
import { testKeyring, trustAll } from "./support/keyring.ts"

const state = mkdtempSync(join(tmpdir(), "release-test-"))
const db = join(state, "stack", "registry.db")
const tokenFile = join(state, "api-token")
const TOKEN = "a-test-token-" + createHash("sha256").update(state).digest("hex").slice(0, 16)
const keys = testKeyring()
const DEVICES = [
    { id: "a".repeat(32), name: "attic", sequence: 5 },
    { id: "b".repeat(32), name: "cellar", sequence: 5 },
    { id: "c".repeat(32), name: null, sequence: 4 },
    { id: "d".repeat(32), name: "new", sequence: null },
]
let owner: Server
let ownerPort: number

/** Runs `npm run release` with the test's state folder, keys, database and owner service. */
function release(args: string[], servicePort = ownerPort): Promise<{ code: number; stdout: string; stderr: string }> {
    const argv = ["--import", "tsx", join("devs", "bin", "release.ts"), "--keys", keys.keyring.dir, "--db", db]
    argv.push("--service", `http://127.0.0.1:${servicePort}`, "--token-file", tokenFile, ...args)
    return new Promise(resolve =>
        execFile(
            process.execPath,
            argv,
            { cwd: PROJECT_ROOT, env: { ...process.env, SENTINEL_STATE_DIR: state } },
            (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr })
        )
    )
}

const workTree = () => execFileSync("git", ["status", "--porcelain", "--untracked-files=all"], { cwd: PROJECT_ROOT, encoding: "utf8" })

before(async () => {
    // a stack whose newest release is sequence 5 (some other image), and the owner's key documents
    const store = new SqliteStore(db)
    const service = new UpdateService({ store, vault: KeyVault.ephemeral(), event: () => {} })
    await trustAll(service, keys.keyring)
    const old = Buffer.alloc(2048, 0x5a)
    await service.publish(signManifest(manifestFor(old, 5), keys.release), old)
    await store.close()
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 })
    ownerPort = await freePort()
    owner = createServer((req, res) => {
        const ok = req.headers.authorization === `Bearer ${TOKEN}` && req.method === "GET" && req.url === "/api/devices"
        res.writeHead(ok ? 200 : 401, { "content-type": "application/json" })
        res.end(JSON.stringify(ok ? { devices: DEVICES.map(d => ({ ...d, online: true, tags: [] })) } : { error: "unauthorized" }))
    })
    await new Promise<void>(resolve => owner.listen(ownerPort, "127.0.0.1", resolve))
})

after(() => {
    owner?.close()
    keys.remove()
    rmSync(state, { recursive: true, force: true })
})

describe("npm run release", () => {
    test("publishes the build at the next sequence, keeps it under var/, and prints whom to roll it out to", async () => {
        const before = workTree()
        const { code, stdout, stderr } = await release([])
        assert.equal(code, 0, stderr + stdout)
        assert.equal(stderr, "")
        const folders = readdirSync(join(state, "releases"))
        assert.equal(folders.length, 1, folders.join(" "))
        assert.match(folders[0], /^6-[0-9a-f]{12}$/)
        const image = readFileSync(join(state, "releases", folders[0], "image.devs"))
        const digest = createHash("sha256").update(image).digest("hex")
        assert.equal(folders[0], `6-${digest.slice(0, 12)}`)
        const { manifest } = readSignedManifest(readFileSync(join(state, "releases", folders[0], "image.manifest")))
        assert.equal(manifest.sequence, 6)
        assert.equal(manifest.digest.toString("hex"), digest)
        assert.match(stdout, new RegExp(`published src/main.ts as sequence 6 \\(${image.length} B, sha256 ${digest}\\)`))
        // the service took it under 6, signed by the keyring's release key
        const store = new SqliteStore(db)
        const row = await store.getFirmwareImage(digest)
        await store.close()
        assert.equal(row?.sequence, 6)
        assert.deepEqual(readSignedManifest(row!.signedManifest).parts.kid, keyId(keys.release.publicKey))
        // who can take it, who cannot, and the exact command for those who can
        const a = DEVICES[0].id
        const b = DEVICES[1].id
        assert.match(stdout, new RegExp(`^2 devices run sequence 5 and can take 6: attic \\(${a}\\), cellar \\(${b}\\)$`, "m"))
        assert.match(stdout, new RegExp(`^1 device runs sequence 4 and can take 6: ${DEVICES[2].id}$`, "m"))
        assert.match(stdout, new RegExp(`^1 device has not reported its sequence yet: new \\(${DEVICES[3].id}\\)$`, "m"))
        const line = stdout.split("\n").find(l => l.startsWith("roll it out: "))
        assert.equal(line, `roll it out: npm run rollout -- create --digest ${digest} --sequence 6 --cohort ${a},${b},${DEVICES[2].id}`)
        // nothing of the release lands in the work tree
        assert.equal(workTree(), before)
    })

    test("the same build again is refused in one line that says to change the firmware, exit 2", async () => {
        const { code, stdout, stderr } = await release([])
        assert.equal(code, 2, stderr)
        const digest = readdirSync(join(state, "releases"))[0].slice(2)
        assert.match(
            stderr,
            new RegExp(
                `^release: this build is identical to the newest release, sequence 6 ` +
                    `\\(sha256 ${digest}[0-9a-f]{4}…\\): change the firmware first\\n$`
            )
        )
        assert.doesNotMatch(stdout, /published src/)
        assert.equal(readdirSync(join(state, "releases")).length, 1)
    })

    test("a sequence not above the newest published is a mistake, before anything is built", async () => {
        const { code, stdout, stderr } = await release(["--sequence", "6"])
        assert.equal(code, 2)
        assert.equal(stderr, "release: --sequence 6 must be above the newest published, 6; see --help\n")
        assert.doesNotMatch(stdout, /building/)
    })

    test("an owner service that does not answer is one line, and the release is published all the same", async () => {
        const closed = await freePort()
        const { code, stdout, stderr } = await release(["--entry", "src/boards/sentinel_xiao_esp32c3.ts", "--sequence", "9"], closed)
        assert.equal(code, 0, stderr + stdout)
        const folder = readdirSync(join(state, "releases")).find(f => f.startsWith("9-"))
        assert.ok(folder, readdirSync(join(state, "releases")).join(" "))
        assert.ok(existsSync(join(state, "releases", folder, "image.manifest")))
        assert.match(
            stdout,
            new RegExp(`^the owner service did not answer \\(.*127\\.0\\.0\\.1:${closed}.*\\): once it runs, roll it out with$`, "m")
        )
        assert.match(stdout, /^ {2}npm run rollout -- create --digest [0-9a-f]{64} --sequence 9$/m)
    })

    test("--help names the npm script and what it does", async () => {
        const { code, stdout } = await release(["--help"])
        assert.equal(code, 0)
        assert.ok(stdout.startsWith("usage: npm run release"), stdout)
        assert.match(stdout, /--sequence <N> +the release's sequence number \(default: the newest published \+ 1\)/)
    })
})

describe("the rollout plan", () => {
    test("offers the whole fleet when every device can take the release, and names those that cannot", () => {
        const release = { digest: "e".repeat(64), sequence: 3, minSequence: 1 }
        const all = planRollout(release, [
            { id: "1".repeat(32), name: null, sequence: 2 },
            { id: "2".repeat(32), name: null, sequence: 1 },
        ])
        assert.equal(all.command, `npm run rollout -- create --digest ${"e".repeat(64)} --sequence 3`)
        const mixed = planRollout(release, [
            { id: "1".repeat(32), name: "x", sequence: 3 },
            { id: "2".repeat(32), name: null, sequence: 0 },
        ])
        assert.equal(mixed.command, undefined)
        assert.deepEqual(describePlan(release, mixed), [
            `1 device runs sequence 3, not below 3, and will not take it: x (${"1".repeat(32)})`,
            `1 device runs sequence 0, below the lowest this release updates from (1): ${"2".repeat(32)}`,
            "no device of the owner can take it yet: nothing to roll out",
        ])
    })
})
