/**
 * Rollouts at scale: 500 devices emulated on the host (devs/sim/fleet-emulator.ts),
 * each enrolled over HTTPS, logged in with SCRAM, on the broker with its own
 * login, sealing its state, readings and update reports under its own key,
 * claimed by one owner service, driven through the owner's HTTP API.
 *
 * - A good release goes through the canary, 10 %, 50 % and 100 %, each stage
 *   offered only once the previous one's devices confirmed; a pause holds it,
 *   resume completes it; a device that was offline gets the release when it
 *   is back; the API answers while it runs.
 * - A release that crashes is caught at the canary, which rolls back: the
 *   rollout halts and no other device ever receives it; a success its device
 *   did not seal does not count; abort skips the rest; a tag cohort is that tag.
 * - Failures past a later stage's threshold (rolled back, and a device that
 *   never answers, by its deploy time limit) halt it in that stage;
 *   retry-failed offers the release again to those devices only, and the
 *   rollout completes.
 *
 * Timings are npm run bench's (devs/bench/fleet.ts), never asserted here.
 */
import assert from "node:assert/strict"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { OwnerApi } from "../../devs/owner/api-client.ts"
import { sealEncrypt0 } from "../../devs/owner/encrypt0.ts"
import { Behaviour, startEmulatedFleet, type EmulatedDevice, type EmulatedFleet } from "../../devs/sim/fleet-emulator.ts"
import { startOwnerStack, type OwnerStack } from "./support/owner-stack.ts"
import { encode } from "cbor2"

const N = 500
/** Online: heard from within this time; every device sends a reading at a third of it. */
const ONLINE_MS = 9000

interface View {
    id: number
    status: string
    reason: string | null
    stage: number
    size: number
    confirmed: number
    failed: number
    stages: { size: number; met: boolean; steps: Record<string, number> }[]
    devices: { id: string; stage: number; step: string; offers: number }[]
}

/** Polls `predicate` (which may ask the API) every 100 ms until it holds; fails after `timeoutMs` saying what it waited for. */
async function until(what: string | (() => string), predicate: () => boolean | Promise<boolean>, timeoutMs: number) {
    const end = Date.now() + timeoutMs
    while (!(await predicate())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`)
        await new Promise(r => setTimeout(r, 100))
    }
}

const release = (label: string) => ({ digest: createHash("sha256").update(label).digest("hex"), sequence: 2 })

describe(`rollouts over ${N} emulated devices`, { timeout: 170_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), "fleet-rollout-test-"))
    let s: OwnerStack
    let fleet: EmulatedFleet
    let api: OwnerApi
    const byId = new Map<string, EmulatedDevice>()

    before(
        async () => {
            s = await startOwnerStack(dir, "fleet", { onlineMs: ONLINE_MS })
            api = new OwnerApi(s.owner.url, s.token)
            fleet = await startEmulatedFleet(N, {
                registryUrl: `https://localhost:${s.stack.registryPort}`,
                brokerUrl: `mqtts://localhost:${s.stack.broker.port}`,
                ca: readFileSync(s.stack.pki.caCert),
                claim: (id, code) => s.owner.service.claim(id, code),
                stepMs: 20,
                readingEveryMs: ONLINE_MS / 3,
                switchedOff: i => i === N - 1,
            })
            for (const d of fleet.devices) byId.set(d.id, d)
        },
        { timeout: 300_000 }
    )
    after(async () => {
        await fleet?.stop()
        await s?.stop()
        rmSync(dir, { recursive: true, force: true })
    })

    const status = (id: number) => api.call<View>("GET", `/api/rollouts/${id}`)
    const waitFor = async (id: number, what: string, done: (v: View) => boolean, ms = 60_000) => {
        let last: View | undefined
        await until(
            () => `rollout ${id} ${what} (now ${last?.status}: ${JSON.stringify(last?.stages.map(x => x.steps))} ${last?.reason})`,
            async () => done((last = await status(id))),
            ms
        )
        return last!
    }
    const offered = (digest: string) => fleet.devices.filter(d => d.updates.some(u => u.digest === digest))

    test("a good release: every stage in order, pause and resume, a device back online, the API answering", async () => {
        const r = release("good")
        // switched off since its claim: it has never been heard from
        const away = fleet.devices[N - 1]
        assert.equal(away.online, false)
        const created = await api.call<View>("POST", "/api/rollouts", { ...r, cohort: "all" })
        assert.equal(created.size, N)
        assert.deepEqual(
            created.stages.map(x => x.size),
            [1, 49, 200, 250]
        )
        assert.equal(created.devices.find(d => d.id === away.id)!.stage, 3, "an offline device goes last")
        // the service and its API answer while the rollout runs
        const answers: number[] = []
        const reading = setInterval(
            () =>
                void api.call<{ devices: unknown[] }>("GET", "/api/devices").then(
                    x => answers.push(x.devices.length),
                    () => answers.push(-1)
                ),
            250
        )
        try {
            await waitFor(created.id, "to reach stage 3", v => v.stage >= 2)
            const paused = await api.call<View>("POST", `/api/rollouts/${created.id}/pause`)
            assert.equal(paused.status, "paused")
            // what was offered before the pause is still on its way (the service sends one command at a time); then nothing more
            const before = paused.devices.filter(d => d.step !== "pending").length
            await until(`the ${before} offers made before the pause to arrive`, () => offered(r.digest).length >= before, 30_000)
            await new Promise(resolve => setTimeout(resolve, 1500))
            assert.equal(offered(r.digest).length, before, "nothing is offered while paused")
            const stageOf = new Map(paused.devices.map(d => [d.id, d.stage]))
            assert.ok(
                offered(r.digest).every(d => stageOf.get(d.id)! <= paused.stage),
                "nothing beyond the stages started before the pause"
            )
            assert.equal((await status(created.id)).status, "paused")
            await api.call("POST", `/api/rollouts/${created.id}/resume`)
            const waiting = await waitFor(created.id, `to confirm ${N - 1} devices`, v => v.confirmed === N - 1)
            assert.equal(waiting.status, "running", "it waits for the device that is away")
            assert.equal(waiting.devices.find(d => d.id === away.id)!.step, "pending")
            assert.equal(away.updates.length, 0)
            await away.connect()
            const done = await waitFor(created.id, "to complete", v => v.status === "completed")
            assert.equal(done.confirmed, N)
            assert.equal(done.failed, 0)
        } finally {
            clearInterval(reading)
        }
        assert.ok(answers.length >= 4, `API calls answered during the rollout: ${answers.length}`)
        assert.ok(
            answers.every(n => n === N),
            `every answer lists all ${N} devices`
        )
        // each device was told once, confirmed once, and a stage was offered only after the one before had all confirmed
        const view = await status(created.id)
        const stageOf = new Map(view.devices.map(d => [d.id, d.stage]))
        for (const d of fleet.devices) {
            assert.equal(d.updates.filter(u => u.digest === r.digest).length, 1, d.id)
            assert.equal(d.reported.filter(x => x.digest === r.digest && x.step === "confirmed").length, 1, d.id)
        }
        for (let stage = 1; stage < 4; stage++) {
            const inStage = (k: number) => fleet.devices.filter(d => stageOf.get(d.id) === k && d !== away)
            const lastConfirmed = Math.max(...inStage(stage - 1).map(d => d.reported.find(x => x.step === "confirmed")!.at))
            const firstOffer = Math.min(...inStage(stage).map(d => d.updates[0].at))
            assert.ok(firstOffer >= lastConfirmed, `stage ${stage + 1} offered before stage ${stage} confirmed`)
        }
    })

    test("a crashing release stops at the canary; a forged success does not count; abort; a tag cohort", async () => {
        const r = release("crash")
        for (const d of fleet.devices) d.behaviour = Behaviour.Crash
        try {
            const created = await api.call<View>("POST", "/api/rollouts", { ...r, cohort: "all" })
            const halted = await waitFor(created.id, "to halt", v => v.status === "halted")
            assert.match(halted.reason!, /^canary: 1 of 1 devices failed/)
            const canary = halted.devices.find(d => d.stage === 0)!
            assert.equal(canary.step, "rolled-back")
            // a device of the next stage claims, with a key that is not its own, that it confirmed
            const forger = byId.get(halted.devices.find(d => d.stage === 1)!.id)!
            const rejectedBefore = s.owner.service.counts.rejected.get("forged-or-tampered") ?? 0
            const forged = sealEncrypt0(
                Buffer.from(
                    encode(
                        new Map<string, unknown>([
                            ["digest", new Uint8Array(Buffer.from(r.digest, "hex"))],
                            ["sequence", r.sequence],
                            ["step", "confirmed"],
                        ])
                    )
                ),
                { key: randomBytes(32), contextIv: randomBytes(13), kid: Buffer.from(forger.id, "hex") },
                1_000_000,
                Buffer.from(`things/${forger.id}/up/update`)
            )
            await forger.publishRaw("update", forged)
            await until(
                () => "the forged report to be rejected",
                () => (s.owner.service.counts.rejected.get("forged-or-tampered") ?? 0) > rejectedBefore,
                10_000
            )
            await new Promise(resolve => setTimeout(resolve, 1000))
            const still = await status(created.id)
            assert.equal(still.status, "halted")
            assert.equal(still.devices.find(d => d.id === forger.id)!.step, "pending")
            assert.deepEqual(
                offered(r.digest).map(d => d.id),
                [canary.id],
                "only the canary was ever told"
            )
            const aborted = await api.call<View>("POST", `/api/rollouts/${created.id}/abort`)
            assert.equal(aborted.status, "aborted")
            assert.equal(aborted.devices.filter(d => d.step === "skipped").length, N - 1)
            await assert.rejects(api.call("POST", `/api/rollouts/${created.id}/resume`), /rollout \d+ is aborted/)
        } finally {
            for (const d of fleet.devices) d.behaviour = Behaviour.Succeed
        }
        const tagged = fleet.devices.slice(10, 13)
        for (const d of tagged) await api.call("PATCH", `/api/devices/${d.id}`, { tags: ["attic"] })
        const t = release("attic")
        const byTag = await api.call<View>("POST", "/api/rollouts", { ...t, cohort: { tag: "attic" }, stages: [{ percent: 100 }] })
        assert.deepEqual(byTag.devices.map(d => d.id).sort(), tagged.map(d => d.id).sort())
        await waitFor(byTag.id, "to complete", v => v.status === "completed")
        assert.deepEqual(
            offered(t.digest)
                .map(d => d.id)
                .sort(),
            tagged.map(d => d.id).sort()
        )
    })

    test("failures past a later stage's threshold halt it; a silent device fails by its time limit; retry-failed completes", async () => {
        const r = release("flaky")
        // the order the rollout takes: online devices in the owner's order (all are online now)
        const order = (await api.call<{ devices: { id: string; online: boolean }[] }>("GET", "/api/devices")).devices.filter(d => d.online)
        assert.ok(order.length >= N - 1)
        const [crashA, crashB, silent] = [order[1], order[2], order[3]].map(d => byId.get(d.id)!)
        crashA.behaviour = Behaviour.Crash
        crashB.behaviour = Behaviour.Crash
        silent.behaviour = Behaviour.Silent
        const stages = [
            { devices: 1 },
            { percent: 10, maxFailures: 3, maxFailurePercent: 50 },
            { percent: 100, maxFailures: 10, maxFailurePercent: 50 },
        ]
        const created = await api.call<View>("POST", "/api/rollouts", { ...r, cohort: "all", stages, deployTimeoutS: 8 })
        assert.deepEqual(
            [crashA, crashB, silent].map(d => created.devices.find(x => x.id === d.id)!.stage),
            [1, 1, 1]
        )
        const halted = await waitFor(created.id, "to halt in stage 2", v => v.status === "halted")
        assert.match(halted.reason!, /^stage 2: 3 of 49 devices failed/)
        const stepOf = (d: EmulatedDevice) => halted.devices.find(x => x.id === d.id)!.step
        assert.deepEqual([crashA, crashB, silent].map(stepOf), ["rolled-back", "rolled-back", "failed"])
        assert.equal(offered(r.digest).length, 50, "the canary and stage 2 only")
        for (const d of [crashA, crashB, silent]) d.behaviour = Behaviour.Succeed
        const retried = await api.call<View>("POST", `/api/rollouts/${created.id}/retry-failed`)
        assert.equal(retried.status, "running")
        const done = await waitFor(created.id, "to complete", v => v.status === "completed")
        assert.equal(done.confirmed, N)
        for (const d of fleet.devices) {
            const told = d.updates.filter(u => u.digest === r.digest).length
            assert.equal(told, [crashA, crashB, silent].includes(d) ? 2 : 1, d.id)
        }
    })
})
