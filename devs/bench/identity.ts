/**
 * Identity figures for `npm run bench`: time to first enrollment and SCRAM
 * cost in the simulator, registry SCRAM logins per second on this machine,
 * and how long the registry takes to refuse a claim of a claimed, an
 * unclaimed and an unknown device (alike, or the answer tells who exists).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import type { Server } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { claimProof } from "../owner/keys.ts"
import { Registry, serveRegistry } from "../registry/app.ts"
import { claim, enroll, httpsTransport, inProcessTransport, login } from "../registry/client.ts"
import { SqliteStore } from "../registry/store.ts"
import { makeHostDevice } from "../sim/host-device.ts"
import { ensurePki } from "../stack/pki.ts"
import { startLocalStack } from "../stack/local.ts"
import { freePort } from "../net/ports.ts"
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
        rateLimit: { limit: 1e9, windowMs: 1, baseLockoutMs: 1, maxLockoutMs: 1, forgiveMs: 1 },
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
    if ((await claim(t, claimed.device.id, claimProof(claimed.device.claimCode), "bench")).status !== 200) throw new Error("claim failed")
    const median = async (id: string) => {
        const times: number[] = []
        for (let i = 0; i < 41; i++) {
            const started = process.hrtime.bigint()
            const r = await claim(t, id, `WRONG-${i}`, "bench")
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
