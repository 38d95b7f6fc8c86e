/**
 * The programs in devs/bin, as a person meets them: each has an npm script
 * and answers `--help` with a usage that names that script (never `devs …`,
 * which is DeviceScript's own binary), exit 0; a mistake gets one line,
 * `<name>: <what is wrong>; see --help`, exit 2, and no stack trace; a
 * service that is not running or a missing login gets one line that says
 * what to do, exit 1.
 */
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { after, describe, test } from "node:test"
import { freePort } from "../../devs/net/ports.ts"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { MAX_IMAGE_BYTES } from "../../devs/updates/manifest.ts"
import { generateSigningKey } from "../../devs/updates/cose-sign1.ts"
import { saveKey } from "../../devs/updates/keyring.ts"

const dir = mkdtempSync(join(tmpdir(), "cli-test-"))
after(() => rmSync(dir, { recursive: true, force: true }))

const PROGRAMS = readdirSync(join(PROJECT_ROOT, "devs", "bin"))
    .filter(f => f.endsWith(".ts"))
    .map(f => f.slice(0, -".ts".length))
const SCRIPTS: Record<string, string> = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")).scripts

/** Runs a program of devs/bin as its npm script does; resolves with its exit code and output. */
function run(program: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise(resolve => {
        const argv = ["--import", "tsx", join("devs", "bin", `${program}.ts`), ...args]
        execFile(process.execPath, argv, { cwd: PROJECT_ROOT }, (error, stdout, stderr) =>
            resolve({ code: error ? Number(error.code) : 0, stdout, stderr })
        )
    })
}

/** How a person runs `program`: npm's own `start` and `test`, or `npm run`. */
const invocation = (program: string) => (program === "start" || program === "test" ? `npm ${program}` : `npm run ${program}`)

describe("the programs in devs/bin", () => {
    test("each one has its npm script, and every script of a program runs one in devs/bin", () => {
        assert.ok(PROGRAMS.length >= 15, PROGRAMS.join(" "))
        // through the bootstrap, which installs what is missing before tsx exists (devs/bin/bootstrap.js); `exec`, so
        // npm's shell is replaced and the signals npm forwards reach the program
        for (const program of PROGRAMS)
            assert.match(SCRIPTS[program] ?? "", new RegExp(`^exec node devs/bin/bootstrap\\.js ${program}( |$)`), program)
        for (const [name, script] of Object.entries(SCRIPTS)) {
            assert.doesNotMatch(script, /^tsx /, `${name} needs tsx before npm install`)
            const program = /node devs\/bin\/bootstrap\.js ([a-z-]+)/.exec(script)?.[1]
            if (program) assert.ok(PROGRAMS.includes(program), `${name} runs ${program}, which is not in devs/bin`)
        }
    })

    test("the bootstrap runs the program with its arguments, and refuses a program that is not in devs/bin", async () => {
        const bootstrap = (args: string[]) =>
            new Promise<{ code: number; stdout: string; stderr: string }>(resolve =>
                execFile(process.execPath, [join("devs", "bin", "bootstrap.js"), ...args], { cwd: PROJECT_ROOT }, (error, stdout, stderr) =>
                    resolve({ code: error ? Number(error.code) : 0, stdout, stderr })
                )
            )
        const help = await bootstrap(["claim", "--help"])
        assert.equal(help.code, 0, help.stderr)
        assert.ok(help.stdout.startsWith("usage: npm run claim"), help.stdout)
        const wrong = await bootstrap(["no-such-program"])
        assert.equal(wrong.code, 2)
        assert.match(wrong.stderr, /^usage: node devs\/bin\/bootstrap\.js <program in devs\/bin>/)
        assert.equal(wrong.stderr.trim().split("\n").length, 1)
    })

    test("--help prints the usage under the program's npm script and exits 0", async () => {
        const results = await Promise.all(PROGRAMS.map(p => run(p, ["--help"])))
        PROGRAMS.forEach((program, i) => {
            const { code, stdout, stderr } = results[i]
            assert.equal(code, 0, `${program}: ${stderr}`)
            assert.ok(stdout.startsWith(`usage: ${invocation(program)}`), `${program}: ${stdout.split("\n")[0]}`)
            assert.match(stdout, /\n {2}--help +print this help\n/, program)
            assert.doesNotMatch(stdout, /(^|\s)devs (claim|consume|command|bridge|keygen|sign|publish|registry|start|test|bench)/, program)
            assert.equal(stderr, "", program)
        })
    })

    test("an unknown option is one line naming the program, exit 2", async () => {
        const results = await Promise.all(PROGRAMS.map(p => run(p, ["--no-such-option"])))
        PROGRAMS.forEach((program, i) => {
            const { code, stdout, stderr } = results[i]
            assert.equal(code, 2, `${program}: ${stderr}`)
            assert.equal(stderr, `${program}: unknown option --no-such-option; see --help\n`)
            assert.equal(stdout, "", program)
        })
    })

    test("missing and malformed arguments are one line each, exit 2", async () => {
        const id = "0123456789abcdef0123456789abcdef"
        const COMMANDS = "interval <sensor> <ms> | update <sha256> <sequence> | events | state | update-check"
        const cases: [string, string[], string][] = [
            ["claim", ["--id", id], "missing --code <CLAIM-CODE>"],
            ["claim", ["--id", "42", "--code", "X"], '--id "42" is not a device id (32 lower-case hex digits)'],
            ["claim", ["--id", id, "--code", "not a code!"], "--code is the claim code the device printed (base32, in groups)"],
            ["command", ["--id", id, "reboot"], `unknown command reboot: ${COMMANDS}`],
            ["command", ["--id", id, "interval", "shtc3", "5"], "interval needs ms, a whole number 100..86400000"],
            ["command", ["--id", id, "state", "now"], "state takes no arguments"],
            ["command", ["--id", id, "update", "ab", "2"], "update needs the image's <sha256> (64 hex digits) and its <sequence>"],
            [
                "command",
                ["--id", id, "update", "a".repeat(64), "0"],
                "update needs the image's <sha256> (64 hex digits) and its <sequence>",
            ],
            ["owner", ["--listen", "0.0.0.0:8080"], "--listen 0.0.0.0 is not loopback: serve it with --tls-cert and --tls-key"],
            ["owner", ["--listen", "nowhere"], '--listen must be host:port, not "nowhere"'],
            ["owner", ["--name", "a b"], "--name must be 1..64 of A-Z a-z 0-9 . _ @ -"],
            ["owner", ["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"],
            ["owner-export", ["--out", "x.export"], "missing --passphrase-file <file>"],
            ["owner-import", ["--passphrase-file", "p"], "missing <export file>"],
            ["migrate-keystore", [], "missing <keystore.json>"],
            ["bridge", [], "missing --local <mqtt url>"],
            ["keys", ["rotate-key"], "unknown command rotate-key: status | rotate | revoke <kid> | rotate-root | publish"],
            ["keys", ["revoke"], "revoke needs the key id of a release key"],
            ["keys", ["revoke", "xyz"], "xyz is not a key id (16 hex digits)"],
            ["keys", ["rotate", "extra"], "rotate takes no argument"],
            ["keys", ["rotate-root", "--roots", "4"], "--roots must be 1..3 (a device keeps its root in one setting)"],
            ["keys", ["rotate-root", "--threshold", "4"], "--threshold must be 1..3"],
            ["keygen", ["--roots", "0"], "--roots must be 1..3 (a device keeps its root in one setting)"],
            ["sign", ["image.devs", "--sequence", "two"], '--sequence must be a whole number up to 4294967295, not "two"'],
            ["sign", ["--sequence", "2"], "missing <image.devs>"],
            ["sign", ["image.devs", "--sequence", "2", "--min-sequence", "3"], "--min-sequence 3 must be below --sequence 2"],
            ["sign", ["image.devs", "--sequence", "2", "--min-sequence", "2"], "--min-sequence 2 must be below --sequence 2"],
            ["keygen", ["--if-missing=yes"], "--if-missing takes no value"],
            ["registry", ["--cert", "c.pem", "--key", "k.pem", "--port", "70000"], '--port must be a port number 1..65535, not "70000"'],
            ["test", ["--device-only", "--host-only"], "--device-only and --host-only exclude each other"],
            ["rollout", ["create", "--digest", "zz"], "create needs --digest, the image's SHA-256 (64 hex digits)"],
            [
                "rollout",
                ["create", "--digest", "a".repeat(64), "--sequence", "0"],
                '--sequence must be a whole number 1..4294967295, not "0"',
            ],
            [
                "rollout",
                ["create", "--digest", "a".repeat(64), "--sequence", "2", "--stages", "1,x"],
                '--stages is a list such as 1,10%,50%,100%, not "1,x"',
            ],
            ["rollout", ["pause"], "pause needs the rollout's number"],
            ["rollout", ["frob", "1"], "unknown action frob: create, status, pause, resume, abort, retry-failed"],
            ["fleet", ["--devices", "0"], '--devices must be 1..50, not "0"'],
        ]
        for (const [program, args, mistake] of cases) {
            const { code, stderr } = await run(program, args)
            assert.equal(code, 2, `${program} ${args.join(" ")}: ${stderr}`)
            assert.equal(stderr, `${program}: ${mistake}; see --help\n`)
        }
    })

    test("sign refuses an image over what the device takes before it signs anything, exit 2", async () => {
        const keyPath = join(dir, "signing.json")
        saveKey(generateSigningKey(), keyPath)
        const big = join(dir, "big.devs")
        writeFileSync(big, Buffer.alloc(MAX_IMAGE_BYTES + 32))
        const { code, stderr } = await run("sign", [big, "--sequence", "2", "--key", keyPath])
        assert.equal(code, 2, stderr)
        assert.equal(stderr, `sign: image of ${MAX_IMAGE_BYTES + 32} bytes: over the ${MAX_IMAGE_BYTES} bytes a device takes; see --help\n`)
        assert.equal(existsSync(join(dir, "big.manifest")), false)
    })

    test("a service that is not running, a missing token and a store that is not there say what to do, exit 1", async () => {
        const port = await freePort() // nothing listens there
        const token = join(dir, "api-token")
        writeFileSync(token, "not-a-real-token\n", { mode: 0o600 })
        const service = ["--service", `http://127.0.0.1:${port}`, "--token-file", token]
        const notRunning = `nothing answers at 127.0.0.1:${port}: is the service running? (npm start runs the local stack)`
        const args = ["--id", "0123456789abcdef0123456789abcdef", "--code", "ABCD-EFGH-IJKL"]
        for (const [program, rest] of [
            ["claim", args],
            ["command", ["--id", args[1], "state"]],
            ["consume", []],
            ["bridge", ["--local", "mqtt://127.0.0.1:1"]],
        ] as const) {
            const refused = await run(program, [...rest, ...service])
            assert.equal(refused.code, 1, program)
            assert.equal(refused.stderr, `${program}: ${notRunning}\n`)
        }
        const missing = join(dir, "no-token")
        const noToken = await run("consume", ["--token-file", missing])
        assert.equal(noToken.code, 1)
        assert.equal(
            noToken.stderr,
            `consume: no API token at ${relative(PROJECT_ROOT, missing)}: ` +
                "start the owner service first (npm start, or npm run owner -- --help)\n"
        )
        const pass = join(dir, "passphrase")
        writeFileSync(pass, "a long enough passphrase\n")
        const noStore = await run("owner-export", [
            "--out",
            join(dir, "x.export"),
            "--passphrase-file",
            pass,
            "--store",
            join(dir, "none.db"),
        ])
        assert.equal(noStore.code, 1)
        assert.equal(noStore.stderr, `owner-export: no owner store at ${join(dir, "none.db")}\n`)
    })
})
