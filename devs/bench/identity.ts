/**
 * Identity figures for `npm run bench`: time to first enrollment and SCRAM
 * cost in the simulator, registry SCRAM logins per second on this machine,
 * and how long the registry takes to refuse a claim of a claimed, an
 * unclaimed and an unknown device (alike, or the answer tells who exists).
 */
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { Agent, createServer, type Server } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { claimProof } from "../owner/keys.ts"
import { HTTP_TIMEOUTS, Registry, serveRegistry } from "../registry/app.ts"
import type { ScramKeyCache } from "../registry/scram.ts"
import { claim, enroll, httpsTransport, inProcessTransport, login, ownerLogin, registerOwner, type Transport } from "../registry/client.ts"
import { SqliteStore } from "../registry/store.ts"
import { makeHostDevice, type HostDevice } from "../sim/host-device.ts"
import { ensurePki } from "../stack/pki.ts"
import { startLocalStack } from "../stack/local.ts"
import { freePort } from "../net/ports.ts"
import { TLS_SERVER_OPTIONS } from "../net/tls.ts"
import { REGISTRY_PORT } from "../project.ts"
import { deviceLines, runInSimulator } from "../sim/devs-cli.ts"

/** Device-side SCRAM cost (VM milliseconds), PBKDF2 against the textbook loop it replaced, in the same run. */
export async function deviceScramCost() {
    const run = await runInSimulator("test/device/fixtures/bench-scram.ts", { timeoutMs: 180_000 })
    if (run.code !== 0) throw new Error(run.output)
    const figures = new Map<string, number>()
    for (const l of deviceLines(run.output)) {
        const m = /^bench (\S+) ([\d.]+)/.exec(l)
        if (m) figures.set(m[1], +m[2])
    }
    const ms = (name: string) => {
        const v = figures.get(name)
        if (v === undefined) throw new Error(`SCRAM bench printed no ${name}:\n${run.output}`)
        return v
    }
    const pbkdf2 = ms("pbkdf2-4096")
    const baseline = ms("pbkdf2-4096-baseline")
    console.log(
        `device PBKDF2-HMAC-SHA-256, 4096 iterations: ${pbkdf2.toFixed(0)} ms, ${(pbkdf2 / baseline).toFixed(2)}x the textbook loop ` +
            `(checked hmac(), bytewise XOR) in the same run, ${baseline.toFixed(0)} ms; same key`
    )
    console.log(
        `device SCRAM client: cold ${ms("scram-client-cold").toFixed(0)} ms, cached keys ${ms("scram-client-cached").toFixed(0)} ms`
    )
}

/** First boot to enrolled and first login, device against the local stack. */
export async function timeToEnrollment() {
    const dir = mkdtempSync(join(tmpdir(), "bench-stack-"))
    const stack = await startLocalStack({ dir, onLog: () => {} })
    try {
        const run = await runInSimulator("test/device/fixtures/registry-session.ts", {
            timeoutMs: 120_000,
            env: { NODE_EXTRA_CA_CERTS: stack.pki.caCert },
            ports: { [REGISTRY_PORT]: stack.registryPort },
        })
        // the fixture polls for a claim that never comes here; its timings are all we read
        const timings = deviceLines(run.output)
            .map(l => /^timing (\S+) (\d+)/.exec(l))
            .filter(m => m !== null)
        const get = (name: string) => timings.find(m => m![1] === name)?.[2]
        const handshakes = deviceLines(run.output)
            .map(l => /^handshakes first-login (\d+)/.exec(l)?.[1])
            .find(n => n !== undefined)
        console.log(
            `first boot: identity ${get("identity-created")} ms, enrollment ${get("enrolled")} ms, ` +
                `first login ${get("first-login")} ms (${handshakes} TLS handshakes for its 2 SCRAM requests: ` +
                `1 when the registry keeps the connection), cached login ${get("login")} ms`
        )
    } finally {
        await stack.stop()
        rmSync(dir, { recursive: true, force: true })
    }
}

/**
 * Registry SCRAM logins per second over HTTPS with 1, 4 and 16 concurrent clients, each login as a device
 * makes it: a new TLS connection that carries both SCRAM requests. The baseline, in the same run, is a bare
 * HTTPS server with the same certificate and TLS policy that answers the same two requests at once; the
 * ratio is what the registry's own work (SCRAM, the store, the limits) costs. The clients run here too.
 */
export async function registryLoginRate() {
    const dir = mkdtempSync(join(tmpdir(), "bench-registry-"))
    const pki = ensurePki(join(dir, "pki"))
    const tls = { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) }
    const ca = readFileSync(pki.caCert)
    const registry = new Registry({
        store: new SqliteStore(join(dir, "r.db")),
        rateLimit: { limit: 1e9, windowMs: 1, baseLockoutMs: 1, maxLockoutMs: 1, forgiveMs: 1 },
        log: () => {},
    })
    const servers: Server[] = [
        serveRegistry(registry, tls),
        createServer({ ...tls, ...TLS_SERVER_OPTIONS, keepAliveTimeout: HTTP_TIMEOUTS.keepAliveMs }, (req, res) => {
            req.resume()
            const first = !/sid=/.test(req.headers.authorization ?? "")
            res.writeHead(first ? 401 : 200, { "content-type": "application/json", "www-authenticate": "SCRAM-SHA-256 sid=1, data=eA==" })
            res.end('{"ok":true}')
        }),
    ]
    const [registryUrl, bareUrl] = await Promise.all(
        servers.map(async server => {
            const port = await freePort()
            await new Promise<void>(r => server.listen(port, "127.0.0.1", () => r()))
            return `https://localhost:${port}`
        })
    )
    const t = httpsTransport(registryUrl, ca)
    const devices: HostDevice[] = []
    // devices keep their derived keys in RAM after the first login, and so do these clients
    const caches = Array.from({ length: 16 }, (): ScramKeyCache => new Map())
    for (let i = 0; i < 16; i++) {
        const { device, enrollment } = await makeHostDevice()
        await enroll(t, enrollment)
        devices.push(device)
    }
    for (const n of [1, 4, 16]) {
        const measure = async (url: string, once: (i: number, t: Transport) => Promise<boolean>) => {
            let count = 0
            const until = Date.now() + 3000
            await Promise.all(
                Array.from({ length: n }, async (_, i) => {
                    while (Date.now() < until) {
                        const agent = new Agent({ keepAlive: true, maxSockets: 1, ca })
                        if (await once(i, httpsTransport(url, ca, agent))) count++
                        agent.destroy()
                    }
                })
            )
            return count / 3
        }
        const bare = await measure(bareUrl, async (_, c) => {
            await c("GET", "/v1/session", { authorization: "SCRAM-SHA-256 data=eA==" })
            return (await c("GET", "/v1/session", { authorization: "SCRAM-SHA-256 sid=1, data=eA==" })).status === 200
        })
        const logins = await measure(
            registryUrl,
            async (i, c) => (await login(c, devices[i].id, devices[i].password, undefined, caches[i])).status === 200
        )
        console.log(
            `registry SCRAM logins/s with ${n} concurrent clients, one TLS connection each: ${logins.toFixed(1)}; ` +
                `bare HTTPS, the same two requests: ${bare.toFixed(1)} (x${(logins / bare).toFixed(2)})`
        )
    }
    for (const server of servers) {
        server.closeAllConnections()
        server.close()
    }
    registry.store.close()
    rmSync(dir, { recursive: true, force: true })
}

/** Median time of refused claims: a wrong code for an unclaimed device (the baseline), a claimed device, an unknown id. */
export async function claimRefusalTimes() {
    const registry = new Registry({
        store: new SqliteStore(":memory:"),
        rateLimit: { limit: 1e9, windowMs: 1, baseLockoutMs: 1, maxLockoutMs: 1, forgiveMs: 1 },
        log: () => {},
    })
    const t = inProcessTransport(registry)
    const claimed = await makeHostDevice()
    const unclaimed = await makeHostDevice()
    await enroll(t, claimed.enrollment)
    await enroll(t, unclaimed.enrollment)
    const password = randomBytes(32)
    await registerOwner(t, "bench", password)
    const { token } = await ownerLogin(t, "bench", password)
    if ((await claim(t, claimed.device.id, claimProof(claimed.device.claimCode), token)).status !== 200) throw new Error("claim failed")
    const median = async (id: string) => {
        const times: number[] = []
        for (let i = 0; i < 41; i++) {
            const started = process.hrtime.bigint()
            const r = await claim(t, id, `WRONG-${i}`, token)
            times.push(Number(process.hrtime.bigint() - started) / 1e6)
            if (r.status !== 403) throw new Error(`a wrong claim answered ${r.status}`)
        }
        return times.sort((a, b) => a - b)[20]
    }
    const base = await median(unclaimed.device.id)
    const ofClaimed = await median(claimed.device.id)
    const ofUnknown = await median("0".repeat(32))
    console.log(
        `claim refusals, median: unclaimed device ${base.toFixed(2)} ms, claimed ${ofClaimed.toFixed(2)} ms ` +
            `(x${(ofClaimed / base).toFixed(2)}), unknown id ${ofUnknown.toFixed(2)} ms (x${(ofUnknown / base).toFixed(2)})`
    )
    registry.store.close()
}
