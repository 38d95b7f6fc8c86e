/**
 * Identity figures for `npm run bench`: time to first enrollment and SCRAM
 * cost in the simulator, and registry SCRAM logins per second on this machine.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import type { Server } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Registry, serveRegistry } from "../registry/app.ts"
import { enroll, httpsTransport, login } from "../registry/client.ts"
import { SqliteStore } from "../registry/store.ts"
import { makeHostDevice } from "../sim/host-device.ts"
import { ensurePki } from "../stack/pki.ts"
import { startLocalStack } from "../stack/local.ts"
import { freePort } from "../net/ports.ts"
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

/** Registry SCRAM logins per second over HTTPS with N concurrent clients (clients' PBKDF2 runs here too). */
export async function registryLoginRate() {
    const dir = mkdtempSync(join(tmpdir(), "bench-registry-"))
    const pki = ensurePki(join(dir, "pki"))
    const registry = new Registry({
        store: new SqliteStore(join(dir, "r.db")),
        rateLimit: { maxFailures: 1e9, windowMs: 1, baseLockoutMs: 1, maxLockoutMs: 1 },
        log: () => {},
    })
    const server: Server = serveRegistry(registry, { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) })
    const port = await freePort()
    await new Promise<void>(r => server.listen(port, "127.0.0.1", () => r()))
    const t = httpsTransport(`https://localhost:${port}`, readFileSync(pki.caCert))
    const devices = []
    for (let i = 0; i < 16; i++) {
        const { device, enrollment } = await makeHostDevice()
        await enroll(t, enrollment)
        devices.push(device)
    }
    let single = 0
    for (const n of [1, 4, 16]) {
        let count = 0
        const until = Date.now() + 3000
        await Promise.all(
            devices.slice(0, n).map(async d => {
                while (Date.now() < until) {
                    const r = await login(t, d.id, d.password)
                    if (r.status === 200) count++
                }
            })
        )
        const rate = count / 3
        if (n === 1) single = rate
        console.log(`registry SCRAM logins/s with ${n} concurrent clients: ${rate.toFixed(1)} (x${(rate / single).toFixed(2)} of 1 client)`)
    }
    server.closeAllConnections()
    server.close()
    registry.store.close()
    rmSync(dir, { recursive: true, force: true })
}
