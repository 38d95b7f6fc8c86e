/**
 * The registry as devices and strangers meet it, over HTTPS on a free port:
 * a body over the limit is answered `413`, which the client reads before the
 * connection closes.
 */
import assert from "node:assert/strict"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import type { Server } from "node:https"
import { request } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { Registry, serveRegistry } from "../../devs/registry/app.ts"
import { SqliteStore } from "../../devs/registry/store.ts"
import { ensurePki, type Pki } from "../../devs/stack/pki.ts"

const dir = mkdtempSync(join(tmpdir(), "registry-https-test-"))
let pki: Pki
let ca: Buffer
let server: Server
let port: number

before(async () => {
    pki = ensurePki(join(dir, "pki"))
    ca = readFileSync(pki.caCert)
    const registry = new Registry({ store: new SqliteStore(":memory:"), log: () => {} })
    server = serveRegistry(registry, { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) })
    await new Promise<void>(resolve => server.listen(0, "127.0.0.1", () => resolve()))
    port = (server.address() as { port: number }).port
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
})
