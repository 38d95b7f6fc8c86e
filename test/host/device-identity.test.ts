/**
 * The firmware's identity in the simulator against the real registry (HTTPS,
 * SQLite) and Mosquitto: enrollment → claim (`npm run claim`, through the owner service) → SCRAM login
 * → broker token → MQTT CONNECT; a second device gets different everything;
 * a registry with a valid certificate but without the device's verifier is
 * refused; a server offering only weaker mechanisms is refused and logged;
 * and no secret appears in any log line of the whole run.
 */
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { after, before, describe, test } from "node:test"
import mqtt from "mqtt"
import { makeVerifier, parseClientFirst, serverFirst } from "../../devs/registry/scram.ts"
import { parseAuthorization } from "../../devs/registry/http-auth.ts"
import { PROJECT_ROOT, REGISTRY_PORT } from "../../devs/project.ts"
import { deviceLines, runInSimulator } from "../../devs/sim/devs-cli.ts"
import { startLocalStack, type LocalStack } from "../../devs/stack/local.ts"
import { runOwnerService, type RunningOwner } from "../../devs/owner/run.ts"
import { inProcessTransport } from "../../devs/registry/client.ts"
import { randomBytes } from "node:crypto"

const dir = mkdtempSync(join(tmpdir(), "device-identity-"))
let stack: LocalStack
let owner: RunningOwner
/** Everything any component printed during the run, scanned for secrets at the end. */
const transcript: string[] = []
/** Secrets the devices handed over through the test-only escrow. */
const escrowed: { secret: string; brokerPassword: string }[] = []

interface Reply {
    status: number
    headers: Record<string, string>
    body: unknown
}
type Handler = (method: string, path: string, headers: Record<string, string | undefined>, body: Buffer) => Promise<Reply>

/** Where the registry the fixture talks to listens now (`serve`): the firmware's well-known port is moved there. */
let registryPort = 0

/** Serves `handler` on a free port with the stack's certificate, plus the test-only escrow. */
async function serve(handler: Handler): Promise<Server> {
    const server = createServer({ key: readFileSync(stack.pki.serverKey), cert: readFileSync(stack.pki.serverCert) }, async (req, res) => {
        const chunks: Buffer[] = []
        for await (const c of req) chunks.push(c as Buffer)
        const body = Buffer.concat(chunks)
        if (req.url === "/test/escrow") {
            escrowed.push(JSON.parse(body.toString("utf8")))
            res.writeHead(204, { connection: "close" }).end()
            return
        }
        const r = await handler(req.method ?? "", req.url ?? "", req.headers as Record<string, string | undefined>, body)
        const payload = Buffer.from(JSON.stringify(r.body))
        res.writeHead(r.status, { ...r.headers, "content-type": "application/json", "content-length": payload.length, connection: "close" })
        res.end(payload)
    })
    await new Promise<void>(resolve => server.listen(0, "127.0.0.1", () => resolve()))
    registryPort = (server.address() as AddressInfo).port
    return server
}

async function unserve(server: Server) {
    const closed = new Promise(r => server.close(r))
    server.closeAllConnections()
    await closed
}

const realRegistry: Handler = async (method, path, headers, body) =>
    (await stack.registry.handle(method, path, headers, body, "127.0.0.1")) as never

/** Runs the fixture; `onLine` sees each device line as it comes. */
async function runFixture(onLine: (line: string) => void = () => {}) {
    const run = await runInSimulator("test/device/fixtures/registry-session.ts", {
        timeoutMs: 120_000,
        env: { NODE_EXTRA_CA_CERTS: stack.pki.caCert },
        ports: { [REGISTRY_PORT]: registryPort },
        onLine: line => {
            transcript.push(line)
            if (line.startsWith("WASM> ")) onLine(line.slice(6))
        },
    })
    assert.equal(run.code, 0, run.output)
    const lines = deviceLines(run.output)
    const value = (prefix: string) => lines.find(l => l.startsWith(prefix))?.slice(prefix.length)
    return { lines, value, events: lines.filter(l => l.startsWith("event: ")).map(l => l.slice(7)) }
}

async function claimWithCli(id: string, code: string) {
    const { stdout, stderr } = await promisify(execFile)(
        process.execPath,
        [
            "--import",
            "tsx",
            "devs/bin/claim.ts",
            "--service",
            owner.url,
            "--token-file",
            join(dir, "owner", "api-token"),
            "--id",
            id,
            "--code",
            code,
        ],
        { cwd: PROJECT_ROOT }
    )
    transcript.push(stdout, stderr)
    return stdout
}

before(async () => {
    stack = await startLocalStack({ dir, serveRegistry: false, onLog: (_s, line) => transcript.push(line) })
    // the owner: an owner service that reaches this registry in-process (the device's HTTPS path is what is tested here)
    owner = await runOwnerService({
        storePath: join(dir, "owner", "owner.db"),
        tokenPath: join(dir, "owner", "api-token"),
        name: "alice",
        registryUrl: "in-process",
        registry: inProcessTransport(stack.registry),
        ca: readFileSync(stack.pki.caCert),
        brokerUrl: `mqtts://localhost:${stack.broker.port}`,
        port: 0,
        log: line => transcript.push(line),
    })
})

after(async () => {
    await owner?.stop()
    await stack?.stop()
    rmSync(dir, { recursive: true, force: true })
})

describe("device identity against the real registry and broker", () => {
    const devices: { id: string; claim: string }[] = []
    let claimCode = ""
    /** The fixture prints the claim code (once, at creation) and then its id. */
    const noteDevice = (line: string) => {
        if (line.startsWith("claim code: ")) claimCode = line.slice(12)
        if (line.startsWith("device id: ")) devices.push({ id: line.slice(11), claim: claimCode })
    }

    test("enroll, get claimed by its owner, log in, get a broker token that opens an MQTT session", async () => {
        const server = await serve(realRegistry)
        try {
            let claimed: Promise<string> | undefined
            let id = ""
            const run = await runFixture(line => {
                noteDevice(line)
                id = devices[devices.length - 1]?.id ?? ""
                // claim as soon as the registry has the device
                if (line === "session: claimed=false" && !claimed) claimed = claimWithCli(id, devices[devices.length - 1].claim)
            })
            assert.equal(run.value("enrolled: "), "true")
            assert.match(await claimed!, /claimed/)
            assert.ok(run.lines.includes("session: claimed=true"))
            assert.match(run.value("broker: ") ?? "", new RegExp(`^localhost:\\d+ user=${id} expires=true$`))
            assert.deepEqual(run.events, [])
            // the registry has the device, claimed by alice, with a verifier only
            const record = stack.registry.store.getDevice(id)!
            assert.equal(record.owner, "alice")
            assert.equal(record.claimHash, null)
            // the token the device received opens a session limited to its topics
            const { brokerPassword } = escrowed[escrowed.length - 1]
            const client = await mqtt.connectAsync(`mqtts://localhost:${stack.broker.port}`, {
                ca: readFileSync(stack.pki.caCert),
                username: id,
                password: brokerPassword,
                clientId: id,
                reconnectPeriod: 0,
            })
            await client.publishAsync(`things/${id}/up/test`, "x", { qos: 1 })
            await client.endAsync()
        } finally {
            await unserve(server)
        }
    })

    test("a second device gets different everything", async () => {
        const server = await serve(realRegistry)
        try {
            await runFixture(noteDevice)
        } finally {
            await unserve(server)
        }
        const [a, b] = devices
        assert.notEqual(a.id, b.id)
        assert.notEqual(a.claim, b.claim)
        assert.notEqual(escrowed[0].secret, escrowed[1].secret)
        const ra = stack.registry.store.getDevice(a.id)!
        const rb = stack.registry.store.getDevice(b.id)!
        assert.ok(!ra.scramSalt.equals(rb.scramSalt) && !ra.storedKey.equals(rb.storedKey))
    })

    test("a registry with a valid certificate but without the device's verifier is refused and logged", async () => {
        // a man in the middle: right certificate, plays SCRAM, but cannot know the ServerKey
        const exchanges = new Map<string, ReturnType<typeof serverFirst>["exchange"]>()
        const impostor: Handler = async (method, path, headers): Promise<Reply> => {
            if (path === "/v1/devices") return { status: 201, headers: {}, body: {} }
            const { params } = parseAuthorization(headers["authorization"] ?? "")
            const msg = Buffer.from(params.get("data") ?? "", "base64").toString("utf8")
            if (!params.get("sid")) {
                const { message, exchange } = serverFirst(parseClientFirst(msg), makeVerifier(randomBytes(32), randomBytes(16)))
                const sid = randomBytes(8).toString("hex")
                exchanges.set(sid, exchange)
                return {
                    status: 401,
                    headers: { "www-authenticate": `SCRAM-SHA-256 sid=${sid}, data=${Buffer.from(message).toString("base64")}` },
                    body: {},
                }
            }
            const forged = `v=${randomBytes(32).toString("base64")}`
            return {
                status: 200,
                headers: { "authentication-info": `sid=${params.get("sid")}, data=${Buffer.from(forged).toString("base64")}` },
                body: { claimed: true, broker: { host: "evil", port: 1, username: "x", password: "y", expiresAt: 1 } },
            }
        }
        const server = await serve(impostor)
        try {
            const run = await runFixture()
            assert.equal(run.value("session error: "), "auth-failure")
            assert.equal(run.value("broker: "), undefined)
            assert.ok(run.events.some(e => e.startsWith("auth-failure: registry could not prove")))
        } finally {
            await unserve(server)
        }
    })

    test("a server offering only PLAIN or Basic is refused and logged as a downgrade", async () => {
        for (const offer of ["PLAIN", 'Basic realm="sentinel"']) {
            const downgrader: Handler = async (method, path): Promise<Reply> =>
                path === "/v1/devices"
                    ? { status: 201, headers: {}, body: {} }
                    : { status: 401, headers: { "www-authenticate": offer }, body: {} }
            const server = await serve(downgrader)
            try {
                const run = await runFixture()
                assert.equal(run.value("session error: "), "downgrade")
                assert.ok(
                    run.events.some(e => e.startsWith("downgrade: registry offered")),
                    run.events.join("\n")
                )
            } finally {
                await unserve(server)
            }
        }
    })

    test("no secret appears in any log line of the whole run", () => {
        assert.ok(escrowed.length >= 4)
        const text = transcript.join("\n")
        for (const { secret, brokerPassword } of escrowed) {
            assert.equal(secret.length, 64)
            for (const form of [secret, Buffer.from(secret, "hex").toString("base64")]) assert.equal(text.includes(form), false)
            if (brokerPassword) assert.equal(text.includes(brokerPassword), false)
        }
    })
})
