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
import { REGISTRY_PORT } from "../project.ts"
import { deviceLines, runInSimulator } from "../sim/devs-cli.ts"

/** Device-side SCRAM cost (VM milliseconds). */
export async function deviceScramCost() {
    const run = await runInSimulator("test/device/fixtures/bench-scram.ts", { timeoutMs: 120_000 })
    if (run.code !== 0) throw new Error(run.output)
    for (const l of deviceLines(run.output)) {
        const m = /^bench (\S+) ([\d.]+)/.exec(l)
        if (m) console.log(`device ${m[1]}: ${(+m[2]).toFixed(0)} ms`)
    }
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
        console.log(
            `first boot: identity ${get("identity-created")} ms, enrollment ${get("enrolled")} ms, ` +
                `first login ${get("first-login")} ms, cached login ${get("login")} ms`
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
