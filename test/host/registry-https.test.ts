/**
 * The registry as devices and strangers meet it, over HTTPS on a free port:
 * a body over the limit is answered `413`, which the client reads before the
 * connection closes; a login and the update exchange that follows share one
 * TLS connection, which the server keeps open between requests (the device
 * makes one handshake per login) and closes once it idles.
 */
import assert from "node:assert/strict"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import type { Server } from "node:https"
import { request } from "node:https"
import { connect } from "node:tls"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { Agent } from "node:https"
import { Registry, serveRegistry, type HttpTimeouts } from "../../devs/registry/app.ts"
import { enroll, httpsTransport, login, type Transport } from "../../devs/registry/client.ts"
import { makeHostDevice, type HostDevice } from "../../devs/sim/host-device.ts"
import { SqliteStore } from "../../devs/registry/store.ts"
import { ensurePki, type Pki } from "../../devs/stack/pki.ts"

const dir = mkdtempSync(join(tmpdir(), "registry-https-test-"))
let pki: Pki
let ca: Buffer
let server: Server
let port: number
/** Short, so the test sees them pass (a Node client does not reuse a connection the server keeps for a second or less). */
const TIMEOUTS: HttpTimeouts = { keepAliveMs: 2000, headersMs: 1000, requestMs: 2000 }
let t: Transport
let device: HostDevice
/** TLS handshakes the server completed. */
let handshakes = 0

before(async () => {
    pki = ensurePki(join(dir, "pki"))
    ca = readFileSync(pki.caCert)
    const registry = new Registry({ store: new SqliteStore(":memory:"), log: () => {} })
    server = serveRegistry(registry, { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) }, TIMEOUTS)
    server.on("secureConnection", () => handshakes++)
    await new Promise<void>(resolve => server.listen(0, "127.0.0.1", () => resolve()))
    port = (server.address() as { port: number }).port
    t = httpsTransport(`https://localhost:${port}`, ca)
    const { device: made, enrollment } = await makeHostDevice()
    assert.equal((await enroll(t, enrollment)).status, 201)
    device = made
})

after(async () => {
    const closed = new Promise<void>(resolve => server?.close(() => resolve()))
    server?.closeAllConnections()
    await closed
    rmSync(dir, { recursive: true, force: true })
})

/** What a client read: the answer, or the error that came before any answer. */
type Outcome = { status: number; headers: Record<string, unknown>; body: string } | { error: string }

/**
 * Sends one request on a connection of its own. `body` goes out in `chunk`-byte writes (chunked when
 * `declare` is false); the outcome is the first of: the whole answer, or an error before any answer.
 */
function send(body: Buffer, options: { declare?: boolean; expectContinue?: boolean; chunk?: number } = {}): Promise<Outcome> {
    return new Promise(resolve => {
        const headers: Record<string, string | number> = { "content-type": "application/json" }
        if (options.declare !== false) headers["content-length"] = body.length
        if (options.expectContinue) headers.expect = "100-continue"
        const req = request(
            { host: "127.0.0.1", port, servername: "localhost", ca, method: "POST", path: "/v1/devices", headers, agent: false },
            res => {
                let text = ""
                res.on("data", c => (text += c))
                res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
                res.on("error", e => resolve({ error: `answer cut: ${e.message}` }))
            }
        )
        // an error after the answer (the server stops reading the rest of the body) is expected and harmless
        req.on("error", e => resolve({ error: e.message }))
        const chunk = options.chunk ?? 64 * 1024
        const write = (offset: number) => {
            if (offset >= body.length) return void req.end()
            if (req.destroyed) return
            const more = req.write(body.subarray(offset, offset + chunk))
            if (more) setImmediate(() => write(offset + chunk))
            else req.once("drain", () => write(offset + chunk))
        }
        if (options.expectContinue) req.once("continue", () => write(0))
        else write(0)
    })
}

describe("the registry over HTTPS", () => {
    test("a body over the limit is answered 413, which the client reads, declared or chunked, small or large", async () => {
        const cases: [string, Buffer, Parameters<typeof send>[1]][] = [
            ["5 KB, declared", Buffer.alloc(5000, 0x20), {}],
            ["8 MB, declared", Buffer.alloc(8_000_000, 0x20), {}],
            ["1 MB, chunked", Buffer.alloc(1_000_000, 0x20), { declare: false, chunk: 16 * 1024 }],
            ["8 MB, declared, expecting 100-continue", Buffer.alloc(8_000_000, 0x20), { expectContinue: true }],
        ]
        for (const [what, body, options] of cases) {
            const outcome = await send(body, options)
            assert.ok("status" in outcome, `${what}: ${"error" in outcome ? outcome.error : ""}`)
            assert.equal(outcome.status, 413, what)
            assert.deepEqual(JSON.parse(outcome.body), { error: "body too large" }, what)
            // the rest of the body is not read: the server says it closes
            assert.equal(outcome.headers.connection, "close", what)
        }
        // and it still serves the next client
        const small = await send(Buffer.from("{}"))
        assert.ok("status" in small && small.status === 400, JSON.stringify(small))
    })

    test("a login and the firmware fetch after it are one TLS handshake: the server keeps the connection between requests", async () => {
        // one connection at a time, kept open by the client: what the device's one socket does
        const agent = new Agent({ keepAlive: true, maxSockets: 1, ca })
        const oneSocket = httpsTransport(`https://localhost:${port}`, ca, agent)
        const before = handshakes
        const session = await login(oneSocket, device.id, device.password)
        assert.equal(session.status, 200)
        assert.notEqual(session.headers.connection, "close")
        assert.equal((await oneSocket("GET", `/v1/firmware/${"0".repeat(32)}/latest`, {})).status, 404)
        assert.equal((await login(oneSocket, device.id, device.password, { wssk: "AA==" })).status, 200)
        assert.equal(handshakes - before, 1)
        agent.destroy()
    })

    test("the server closes a connection that idles after an answer, or sends no request, once its time passes", async () => {
        const open = async () => {
            const socket = connect({ host: "127.0.0.1", port, servername: "localhost", ca })
            await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject))
            const closed = new Promise<number>(resolve => socket.once("close", () => resolve(Date.now())))
            // read whatever comes (a 408 for the silent one), so the end of the stream is seen
            socket.resume()
            return { socket, closed }
        }
        const idle = await open()
        idle.socket.write("GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        const answered = await new Promise<number>(resolve => idle.socket.once("data", () => resolve(Date.now())))
        const idleFor = (await idle.closed) - answered
        assert.ok(idleFor >= TIMEOUTS.keepAliveMs && idleFor < TIMEOUTS.keepAliveMs + 5000, `closed ${idleFor} ms after the answer`)
        const silent = await open()
        const opened = Date.now()
        const silentFor = (await silent.closed) - opened
        assert.ok(silentFor >= TIMEOUTS.headersMs && silentFor < TIMEOUTS.requestMs + 5000, `closed ${silentFor} ms after connecting`)
    })
})
