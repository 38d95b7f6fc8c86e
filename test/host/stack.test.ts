/**
 * The local stack as a stranger meets it, on free ports:
 *
 * 1. The TLS policy on every listener (the registry, the WSSK gateway,
 *    Mosquitto): TLS 1.3, and TLS 1.2 with ECDHE and AEAD only. Node clients
 *    that force a CBC suite or TLS 1.1 are refused by each of them, and
 *    accepted by a permissive server with the same certificate, so the
 *    refusal is the listener's, not the client's own.
 * 2. A flood of refused WSSK upgrades from one address is written to the
 *    event log a few times, then summed up, per address.
 * 3. Its `var/` (here a temporary one, made by the stack) is private: every
 *    folder 0700, every file 0600, the database's WAL and shared-memory files
 *    and Mosquitto's dynamic-security state included, though this test runs
 *    with a umask of 0, so no mode may come from the umask.
 */
import assert from "node:assert/strict"
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { randomBytes } from "node:crypto"
import { request } from "node:https"
import { connect, createServer, type ConnectionOptions, type Server } from "node:tls"
import { EVENT_BURST } from "../../devs/registry/events.ts"
import { freePort } from "../../devs/net/ports.ts"
import { claimProof } from "../../devs/owner/keys.ts"
import { claim, enroll, httpsTransport, login } from "../../devs/registry/client.ts"
import { makeHostDevice } from "../../devs/sim/host-device.ts"
import { startLocalStack, type LocalStack } from "../../devs/stack/local.ts"
import { ownerSession } from "./support/owner.ts"

const root = mkdtempSync(join(tmpdir(), "stack-test-"))
/** The stack's `var/`, which the stack makes. */
const varDir = join(root, "var")
const dir = join(varDir, "stack")
let stack: LocalStack
let ca: Buffer
let permissive: Server
const listeners: Record<string, number> = {}

before(async () => {
    // nothing the stack makes may rely on the umask for its mode
    process.umask(0)
    stack = await startLocalStack({
        dir,
        registryPort: await freePort(),
        brokerPort: await freePort(),
        updatesPort: await freePort(),
        onLog: () => {},
    })
    ca = readFileSync(stack.pki.caCert)
    listeners.registry = stack.registryPort
    listeners["WSSK gateway"] = stack.gateway.port
    listeners.Mosquitto = stack.broker.port
    // a control: anything the client can speak, with the stack's certificate
    permissive = createServer({
        key: readFileSync(stack.pki.serverKey),
        cert: readFileSync(stack.pki.serverCert),
        minVersion: "TLSv1",
        ciphers: "ALL:@SECLEVEL=0",
    })
    permissive.on("secureConnection", socket => socket.end())
    await new Promise<void>(resolve => permissive.listen(0, "127.0.0.1", () => resolve()))
})

after(async () => {
    permissive?.close()
    await stack?.stop()
    rmSync(root, { recursive: true, force: true })
})

/** A client's handshake: the version and suite agreed, or the error. */
function handshake(port: number, options: ConnectionOptions): Promise<{ version: string; cipher: string } | { error: string }> {
    return new Promise(resolve => {
        const socket = connect({ host: "127.0.0.1", port, servername: "localhost", ca, ...options }, () => {
            const result = { version: socket.getProtocol() ?? "?", cipher: socket.getCipher().standardName }
            socket.destroy()
            resolve(result)
        })
        socket.on("error", e => resolve({ error: e.message }))
    })
}

const TLS13: ConnectionOptions = { minVersion: "TLSv1.3" }
const TLS12_AEAD: ConnectionOptions = { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" }
const TLS12_CBC: ConnectionOptions = {
    maxVersion: "TLSv1.2",
    ciphers: "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",
}
const TLS11: ConnectionOptions = { minVersion: "TLSv1.1", maxVersion: "TLSv1.1", ciphers: "ALL:@SECLEVEL=0" }

describe("the TLS policy of every listener", () => {
    test("the refused clients are ones TLS itself would serve: a permissive server with the same certificate accepts them", async () => {
        const port = (permissive.address() as { port: number }).port
        const cbc = await handshake(port, TLS12_CBC)
        assert.ok(
            "cipher" in cbc && cbc.version === "TLSv1.2" && /^TLS_ECDHE_ECDSA_WITH_AES_\d+_CBC_SHA/.test(cbc.cipher),
            JSON.stringify(cbc)
        )
        assert.equal(((await handshake(port, TLS11)) as { version: string }).version, "TLSv1.1")
    })

    for (const name of ["registry", "WSSK gateway", "Mosquitto"])
        test(`${name}: TLS 1.3 and TLS 1.2 with ECDHE and AES-GCM are accepted; a CBC suite and TLS 1.1 are refused`, async () => {
            const port = listeners[name]
            assert.equal(((await handshake(port, TLS13)) as { version: string }).version, "TLSv1.3")
            assert.deepEqual(await handshake(port, TLS12_AEAD), { version: "TLSv1.2", cipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" })
            const cbc = await handshake(port, TLS12_CBC)
            assert.ok("error" in cbc, `${name} accepted ${JSON.stringify(cbc)}`)
            assert.match(cbc.error, /handshake failure|no shared cipher/i)
            const old = await handshake(port, TLS11)
            assert.ok("error" in old, `${name} accepted ${JSON.stringify(old)}`)
            assert.match(old.error, /protocol version|unsupported protocol/i)
        })
})

/** A WebSocket upgrade to the WSSK gateway, as the runtime sends it; resolves with the status. */
function upgrade(deviceId: string): Promise<number> {
    return new Promise((resolve, reject) => {
        const req = request({
            host: "127.0.0.1",
            port: stack.gateway.port,
            servername: "localhost",
            ca,
            path: `/wssk/${deviceId}`,
            agent: false,
            headers: {
                connection: "Upgrade",
                upgrade: "websocket",
                "sec-websocket-version": "13",
                "sec-websocket-key": randomBytes(16).toString("base64"),
                "sec-websocket-protocol": `devs-key-${randomBytes(16).toString("hex")}`,
            },
        })
        req.on("response", res => {
            res.resume()
            resolve(res.statusCode ?? 0)
        })
        req.on("upgrade", () => reject(new Error("upgraded")))
        req.on("error", reject)
        req.end()
    })
}

describe("security events of the stack", () => {
    test("50 WSSK upgrades for unknown devices from one address: EVENT_BURST rows, each naming the address", async () => {
        for (let i = 0; i < 50; i++) assert.equal(await upgrade(randomBytes(16).toString("hex")), 401)
        const rows = await stack.registry.store.events({ kind: "wssk-unknown-device" })
        assert.equal(rows.length, EVENT_BURST)
        assert.ok(
            rows.every(r => r.source === "127.0.0.1"),
            JSON.stringify(rows.map(r => r.source))
        )
    })
})

/** Every path under `top`, with its mode bits, as `0700`-style octal. */
function modes(top: string): Map<string, string> {
    const found = new Map<string, string>()
    const walk = (path: string) => {
        found.set(path.slice(root.length), (statSync(path).mode & 0o777).toString(8).padStart(4, "0"))
        if (statSync(path).isDirectory()) for (const name of readdirSync(path)) walk(join(path, name))
    }
    walk(top)
    return found
}

describe("files of the stack", () => {
    test("var/ after a stack start and a claim: every folder 0700, every file 0600, whatever the umask", async () => {
        // a claim and a login make the registry write its database and Mosquitto rewrite its dynamic-security state
        const t = httpsTransport(`https://localhost:${stack.registryPort}`, ca)
        const { device, enrollment } = await makeHostDevice()
        assert.equal((await enroll(t, enrollment)).status, 201)
        const alice = await ownerSession(t, "alice")
        assert.equal((await claim(t, device.id, claimProof(device.claimCode), alice.token)).status, 200)
        assert.ok(((await login(t, device.id, device.password)).body.broker as { password?: string }).password)
        const found = modes(varDir)
        for (const secret of ["registry.db", "registry.db-wal", "registry.db-shm", "mosquitto/dynamic-security.json", "pki/server.key"])
            assert.ok(found.has(`/var/stack/${secret}`), `${secret} in ${[...found.keys()].join(" ")}`)
        const loose = [...found].filter(([path, mode]) => mode !== (statSync(join(root, path)).isDirectory() ? "0700" : "0600"))
        assert.deepEqual(loose, [])
    })
})
