/**
 * Rollouts at scale (printed, never asserted): 1000 devices emulated on the
 * host (devs/sim/fleet-emulator.ts) against a local stack and an owner
 * service with its HTTP API, as the fleet test runs them.
 *
 * - set-up: devices enrolled, claimed and connected per second;
 * - one release through the default stages (1, 10 %, 50 %, 100 %): each
 *   stage's time from its first offer to its last confirmation, the whole
 *   rollout, and devices offered per second in the last stage;
 * - the API while it runs: the latency of `GET /api/devices` and of the
 *   rollout's status, as a ratio to the same calls on the idle service
 *   measured in the same run (the devices before the rollout, the status once it completed);
 * - COSE bytes per updated device: the sealed update command and the three
 *   sealed reports (MQTT and TLS framing not counted; the image itself goes
 *   over WSSK and is not part of an emulated update).
 */
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { encode } from "cbor2"
import { OwnerApi } from "../owner/api-client.ts"
import { encodeCommand } from "../owner/commands.ts"
import { sealEncrypt0 } from "../owner/encrypt0.ts"
import { runOwnerService } from "../owner/run.ts"
import { freePort } from "../net/ports.ts"
import { startEmulatedFleet } from "../sim/fleet-emulator.ts"
import { startLocalStack } from "../stack/local.ts"

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Times `count` calls of `call`, one after another; returns each one's milliseconds. */
async function latencies(call: () => Promise<unknown>, count: number): Promise<number[]> {
    const out: number[] = []
    for (let i = 0; i < count; i++) {
        const t = performance.now()
        await call()
        out.push(performance.now() - t)
    }
    return out
}

/** One release over `n` emulated devices; prints the figures. */
export async function fleetRollout(n = 1000) {
    const dir = mkdtempSync(join(tmpdir(), "bench-fleet-"))
    const stack = await startLocalStack({
        dir,
        brokerPort: await freePort(),
        registryPort: await freePort(),
        updatesPort: await freePort(),
        onLog: () => {},
    })
    const ca = readFileSync(stack.pki.caCert)
    const passwordFile = join(dir, "console-password")
    writeFileSync(passwordFile, randomBytes(12).toString("base64url"), { mode: 0o600 })
    const tokenPath = join(dir, "owner", "api-token")
    const owner = await runOwnerService({
        storePath: join(dir, "owner", "owner.db"),
        tokenPath,
        name: "bench",
        registryUrl: `https://localhost:${stack.registryPort}`,
        ca,
        brokerUrl: `mqtts://localhost:${stack.broker.port}`,
        port: 0,
        passwordFile,
        log: () => {},
    })
    const t0 = performance.now()
    const fleet = await startEmulatedFleet(n, {
        registryUrl: `https://localhost:${stack.registryPort}`,
        brokerUrl: `mqtts://localhost:${stack.broker.port}`,
        ca,
        claim: (id, code) => owner.service.claim(id, code),
        stepMs: 20,
        readingEveryMs: 20_000,
    })
    try {
        const setupS = (performance.now() - t0) / 1000
        console.log(`fleet: ${n} emulated devices enrolled, claimed and connected in ${setupS.toFixed(1)} s (${(n / setupS).toFixed(0)}/s)`)
        const api = new OwnerApi(owner.url, readFileSync(tokenPath, "utf8").trim())
        const idle = median(await latencies(() => api.call("GET", "/api/devices"), 20))
        const digest = createHash("sha256").update("bench release").digest("hex")
        const started = performance.now()
        const created = await api.call<{ id: number }>("POST", "/api/rollouts", { digest, sequence: 2, cohort: "all" })
        const busy: number[] = []
        const busyStatus: number[] = []
        for (;;) {
            busy.push(...(await latencies(() => api.call("GET", "/api/devices"), 1)))
            const t = performance.now()
            const v = await api.call<{ status: string }>("GET", `/api/rollouts/${created.id}`)
            busyStatus.push(performance.now() - t)
            if (v.status !== "running") break
            await new Promise(r => setTimeout(r, 200))
        }
        const totalS = (performance.now() - started) / 1000
        const v = await api.call<{ status: string; confirmed: number; devices: { id: string; stage: number }[] }>(
            "GET",
            `/api/rollouts/${created.id}`
        )
        console.log(`fleet: one release to ${n} devices in 4 stages: ${v.status}, ${v.confirmed} confirmed, ${totalS.toFixed(1)} s in all`)
        // the same status call once it has completed: the baseline
        const idleStatus = median(await latencies(() => api.call("GET", `/api/rollouts/${created.id}`), 20))
        const stageOf = new Map(v.devices.map(d => [d.id, d.stage]))
        for (let s = 0; s < 4; s++) {
            const inStage = fleet.devices.filter(d => stageOf.get(d.id) === s)
            const first = Math.min(...inStage.map(d => d.updates[0].at))
            const last = Math.max(...inStage.map(d => d.reported.find(r => r.step === "confirmed")!.at))
            const offered = Math.max(...inStage.map(d => d.updates[0].at))
            const rate = inStage.length > 1 ? ` (offers ${(inStage.length / Math.max(0.001, (offered - first) / 1000)).toFixed(0)}/s)` : ""
            console.log(
                `fleet:   stage ${s + 1}: ${inStage.length} devices, ` +
                    `first offer to last confirmation ${((last - first) / 1000).toFixed(2)} s${rate}`
            )
        }
        console.log(
            `fleet: GET /api/devices (${n} devices) ${median(busy).toFixed(1)} ms during the rollout vs ${idle.toFixed(1)} ms idle ` +
                `(${(median(busy) / idle).toFixed(2)}x); ` +
                `rollout status ${median(busyStatus).toFixed(1)} ms vs ${idleStatus.toFixed(1)} ms ` +
                `once completed (${(median(busyStatus) / idleStatus).toFixed(2)}x)`
        )
        const keys = { key: randomBytes(32), contextIv: randomBytes(13), kid: randomBytes(16) }
        const command = sealEncrypt0(encodeCommand({ cmd: "update", digest, sequence: 2 }), keys, 1, Buffer.from("things/x/down/cmd"))
        const reports = ["approved", "trial", "confirmed"].map(
            step =>
                sealEncrypt0(
                    Buffer.from(
                        encode(
                            new Map<string, unknown>([
                                ["digest", new Uint8Array(Buffer.from(digest, "hex"))],
                                ["sequence", 2],
                                ["step", step],
                            ])
                        )
                    ),
                    keys,
                    1,
                    Buffer.from("things/x/up/update")
                ).length
        )
        const reportBytes = reports.reduce((a, b) => a + b, 0)
        console.log(
            `fleet: COSE bytes per updated device: update command ${command.length} + reports ${reports.join(" + ")} = ` +
                `${command.length + reportBytes} (MQTT/TLS framing and the image itself not counted)`
        )
    } finally {
        await fleet.stop()
        await owner.stop()
        await stack.stop()
        rmSync(dir, { recursive: true, force: true })
    }
}
