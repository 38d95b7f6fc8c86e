/**
 * The device's HTTPS client keeps its connection (src/net/https.ts,
 * HttpsConnection): the simulated firmware (test/device/fixtures/https-session.ts)
 * against a local TLS server that keeps connections, times out idle ones,
 * answers some requests with `connection: close` and drops one kept
 * connection without a reply. The device's handshake count must match the
 * TLS connections the server accepted, and every request must get its reply.
 */
import assert from "node:assert/strict"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, test } from "node:test"
import { freePort } from "../../devs/net/ports.ts"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { deviceLines, runInSimulator } from "../../devs/sim/devs-cli.ts"
import { ensurePki } from "../../devs/stack/pki.ts"

const dir = mkdtempSync(join(tmpdir(), "device-https-"))
after(() => rmSync(dir, { recursive: true, force: true }))

/** The server closes a kept connection idle this long; the device idles twice as long. */
const KEEP_ALIVE_MS = 1000

test("one TLS handshake for requests in a row; a new one after an idle close, `connection: close` or a dropped connection", async () => {
    const pki = ensurePki(join(dir, "pki"))
    let connections = 0
    let dropped = false
    const server = createServer({ key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) }, (req, res) => {
        const path = req.url ?? ""
        if (path === "/drop" && !dropped) {
            // once: the kept connection dies without a reply, as when a server restarts or times out as the request arrives
            dropped = true
            req.socket.destroy()
            return
        }
        const body = Buffer.from(`ok ${path}`)
        const close = path.startsWith("/close/")
        res.writeHead(200, { "content-length": body.length, ...(close ? { connection: "close" } : {}) })
        res.end(body)
    })
    server.keepAliveTimeout = KEEP_ALIVE_MS
    server.on("secureConnection", () => connections++)
    const port = await freePort()
    await new Promise<void>(resolve => server.listen(port, "127.0.0.1", () => resolve()))
    const generated = join(PROJECT_ROOT, "test/device/fixtures/generated")
    mkdirSync(generated, { recursive: true })
    writeFileSync(join(generated, "https-session.ts"), `export const PORT = ${port}\nexport const IDLE_MS = ${2 * KEEP_ALIVE_MS}\n`)
    try {
        const run = await runInSimulator("test/device/fixtures/https-session.ts", {
            timeoutMs: 60_000,
            env: { NODE_EXTRA_CA_CERTS: pki.caCert },
        })
        const lines = deviceLines(run.output)
        const replies = lines.filter(l => l.startsWith("reply "))
        assert.deepEqual(
            replies,
            ["/keep/1", "/keep/2", "/keep/3", "/keep/4", "/close/1", "/close/2", "/keep/5", "/drop"].map(p => `reply ${p} 200 ok ${p}`),
            run.output
        )
        assert.deepEqual(
            lines.filter(l => l.startsWith("handshakes ")),
            ["handshakes 1", "handshakes 2", "handshakes 3", "handshakes 5"]
        )
        assert.equal(connections, 5)
        assert.ok(dropped)
    } finally {
        server.closeAllConnections()
        server.close()
    }
})
