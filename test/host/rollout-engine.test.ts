/**
 * The rollout state machine (devs/owner/rollout/engine.ts) on its own: no
 * device, no broker, a clock moved by hand. Stages by size, the canary first,
 * the next stage only once the previous confirmed, halts on failures and on
 * time, offers to devices that come back, the owner's four actions, and the
 * reports that must not count. Then the same machine through the owner
 * store: what is stored is what comes back.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, describe, test } from "node:test"
import {
    DEFAULT_TIMEOUTS,
    defaultStages,
    DeviceStep,
    MAX_REOFFERS,
    REOFFER_GRACE_MS,
    Rollout,
    RolloutError,
    RolloutStatus,
    stageEnds,
    type Effects,
    type StagePlan,
} from "../../devs/owner/rollout/engine.ts"
import { OwnerStore } from "../../devs/owner/store.ts"
import type { UpdateReport } from "../../devs/owner/update-report.ts"

const DIGEST = "ab".repeat(32)
const RELEASE = { digest: DIGEST, sequence: 7 }
const T0 = 1_700_000_000_000
const MINUTE = 60_000

/** `n` devices, all heard from just now unless listed in `offline`. */
function fleet(n: number, offline: number[] = []) {
    return Array.from({ length: n }, (_, i) => ({ id: `d${String(i).padStart(3, "0")}`, lastSeen: offline.includes(i) ? null : T0 }))
}

function start(n: number, options: { offline?: number[]; stages?: StagePlan[] } = {}) {
    const { rollout, effects } = Rollout.create(
        1,
        RELEASE,
        { all: true },
        fleet(n, options.offline),
        options.stages ?? defaultStages(30 * MINUTE),
        DEFAULT_TIMEOUTS,
        T0
    )
    return { rollout, effects }
}

const report = (step: UpdateReport["step"], reason?: string, release = RELEASE): UpdateReport => ({
    ...release,
    step,
    ...(reason ? { reason } : {}),
})

/** Each device answers an offer with approved, trial, confirmed; returns every offer made meanwhile. */
function confirmAll(r: Rollout, ids: string[], now: number): string[] {
    const offers: string[] = []
    for (const id of ids)
        for (const step of ["approved", "trial", "confirmed"] as const)
            offers.push(...r.handle({ kind: "report", deviceId: id, report: report(step) }, now).offers)
    return offers
}

const steps = (r: Rollout) => [...r.devices.values()].map(d => d.step)
const count = (r: Rollout, step: DeviceStep) => steps(r).filter(s => s === step).length

describe("rollout engine", () => {
    test("stages split the cohort cumulatively: 1, 10 %, 50 %, the rest", () => {
        assert.deepEqual(stageEnds(defaultStages(), 500), [1, 50, 250, 500])
        assert.deepEqual(stageEnds(defaultStages(), 5), [1, 1, 3, 5])
        assert.deepEqual(stageEnds(defaultStages(), 1), [1, 1, 1, 1])
    })

    test("the canary alone is offered first; each stage starts once the previous confirmed; the rollout completes", () => {
        const { rollout: r, effects } = start(20)
        assert.deepEqual(effects.offers, ["d000"])
        assert.equal(count(r, DeviceStep.Pending), 19)
        // approval and trial do not start the next stage
        r.handle({ kind: "report", deviceId: "d000", report: report("approved") }, T0 + 1000)
        const trial = r.handle({ kind: "report", deviceId: "d000", report: report("trial") }, T0 + 2000)
        assert.deepEqual(trial.offers, [])
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Trial)
        const stage2 = r.handle({ kind: "report", deviceId: "d000", report: report("confirmed") }, T0 + 3000)
        assert.deepEqual(stage2.offers, ["d001"], "10 % of 20 is 2 devices: the canary and one more")
        const stage3 = confirmAll(r, ["d001"], T0 + 4000)
        assert.deepEqual(stage3, ["d002", "d003", "d004", "d005", "d006", "d007", "d008", "d009"])
        // half of stage 3 confirmed: stage 4 waits (100 % of the offered is the default)
        assert.deepEqual(confirmAll(r, stage3.slice(0, 4), T0 + 5000), [])
        assert.equal(r.record.stage, 2)
        const stage4 = confirmAll(r, stage3.slice(4), T0 + 6000)
        assert.equal(stage4.length, 10)
        assert.equal(r.record.status, RolloutStatus.Running)
        confirmAll(r, stage4, T0 + 7000)
        assert.equal(count(r, DeviceStep.Confirmed), 20)
        assert.equal(r.record.status, RolloutStatus.Completed)
        assert.equal(r.active, false)
    })

    test("a canary that rolls back halts the rollout, and no other device is ever offered the release", () => {
        const { rollout: r } = start(20)
        r.handle({ kind: "report", deviceId: "d000", report: report("approved") }, T0 + 1000)
        const halted = r.handle({ kind: "report", deviceId: "d000", report: report("rolled-back", "crashed at start") }, T0 + 9000)
        assert.deepEqual(halted.offers, [])
        assert.equal(r.record.status, RolloutStatus.Halted)
        assert.match(r.record.reason!, /canary: 1 of 1 devices failed/)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.RolledBack)
        assert.equal(r.devices.get("d000")!.reason, "crashed at start")
        // time passes, devices are heard from: nothing is offered
        for (let t = 1; t <= 5; t++) {
            assert.deepEqual(r.handle({ kind: "seen", deviceIds: fleet(20).map(d => d.id) }, T0 + t * MINUTE).offers, [])
            assert.deepEqual(r.handle({ kind: "tick" }, T0 + t * MINUTE).offers, [])
        }
        assert.equal(count(r, DeviceStep.Pending), 19)
    })

    test("refused and unhealthy are failures; an unhealthy device's rolled-back report is the same one failure", () => {
        const stages = defaultStages().map(s => ({ ...s, maxFailures: 2, maxFailurePercent: 100 }))
        const { rollout: r } = start(4, { stages: [{ ...stages[0], upTo: { devices: 3 } }, stages[3]] })
        r.handle({ kind: "report", deviceId: "d000", report: report("unhealthy", "no sensor reading") }, T0 + 1)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Failed)
        assert.equal(r.devices.get("d000")!.reason, "unhealthy: no sensor reading")
        r.handle({ kind: "report", deviceId: "d000", report: report("rolled-back") }, T0 + 2)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.RolledBack)
        assert.equal(r.record.status, RolloutStatus.Running, "one failure is below the threshold of 2")
        r.handle({ kind: "report", deviceId: "d001", report: report("refused", "sequence below the floor") }, T0 + 3)
        assert.equal(r.record.status, RolloutStatus.Halted)
        assert.match(r.record.reason!, /2 of 3 devices failed/)
    })

    test("the percentage threshold halts a large stage before the count does", () => {
        const plan: StagePlan = { upTo: { percent: 100 }, successPercent: 100, timeLimitMs: MINUTE, maxFailures: 50, maxFailurePercent: 5 }
        const { rollout: r, effects } = start(100, { stages: [plan] })
        assert.equal(effects.offers.length, 100)
        for (let i = 0; i < 4; i++) r.handle({ kind: "report", deviceId: effects.offers[i], report: report("refused") }, T0 + i)
        assert.equal(r.record.status, RolloutStatus.Running)
        r.handle({ kind: "report", deviceId: effects.offers[4], report: report("refused") }, T0 + 5)
        assert.equal(r.record.status, RolloutStatus.Halted)
    })

    test("reports that must not count: another release, a device never offered, a step backwards", () => {
        const { rollout: r } = start(20)
        const other = { digest: "cd".repeat(32), sequence: 7 }
        r.handle({ kind: "report", deviceId: "d000", report: report("confirmed", undefined, other) }, T0 + 1)
        r.handle({ kind: "report", deviceId: "d000", report: report("confirmed", undefined, { digest: DIGEST, sequence: 6 }) }, T0 + 1)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Offered)
        // a device of a stage not started claims a success: it stays pending, and the canary's stage does not move
        r.handle({ kind: "report", deviceId: "d005", report: report("confirmed") }, T0 + 2)
        assert.equal(r.devices.get("d005")!.step, DeviceStep.Pending)
        // a device outside the cohort is nobody
        const none = r.handle({ kind: "report", deviceId: "zzz", report: report("confirmed") }, T0 + 2)
        assert.equal(none.changed.size, 0)
        r.handle({ kind: "report", deviceId: "d000", report: report("trial") }, T0 + 3)
        r.handle({ kind: "report", deviceId: "d000", report: report("approved") }, T0 + 4)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Trial)
        assert.equal(r.record.stage, 0)
    })

    test("a device offline when its stage starts is offered the release when it is heard from again", () => {
        const { rollout: r, effects } = start(10, { offline: [1] })
        assert.deepEqual(effects.offers, ["d000"], "online devices go first: the canary is one that can answer")
        assert.equal(r.devices.get("d001")!.stage, 3, "the offline device goes last")
        confirmAll(r, ["d000"], T0 + 1000)
        const stage3 = r.record.stage === 2 ? [...r.devices.values()].filter(d => d.step === DeviceStep.Offered).map(d => d.id) : []
        assert.ok(stage3.length > 0)
        const stage4 = confirmAll(r, stage3, T0 + 2000)
        assert.ok(!stage4.includes("d001"), "offline: not offered")
        assert.equal(r.devices.get("d001")!.step, DeviceStep.Pending)
        confirmAll(r, stage4, T0 + 3000)
        assert.equal(r.record.status, RolloutStatus.Running, "waits for the offline device")
        const back = r.handle({ kind: "seen", deviceIds: ["d001"] }, T0 + 10 * MINUTE)
        assert.deepEqual(back.offers, ["d001"])
        confirmAll(r, ["d001"], T0 + 11 * MINUTE)
        assert.equal(r.record.status, RolloutStatus.Completed)
    })

    test("a device without a trial in time fails (deploy timeout), and one without a confirmation (trial timeout)", () => {
        const plan: StagePlan = {
            upTo: { percent: 100 },
            successPercent: 100,
            timeLimitMs: 60 * MINUTE,
            maxFailures: 5,
            maxFailurePercent: 100,
        }
        const { rollout: r } = start(3, { stages: [plan] })
        // the time limit runs from when the offer was sent, not from when it was queued
        r.handle({ kind: "tick" }, T0 + 2 * DEFAULT_TIMEOUTS.deployMs)
        assert.deepEqual(steps(r), [DeviceStep.Offered, DeviceStep.Offered, DeviceStep.Offered])
        for (const id of ["d000", "d001", "d002"]) r.handle({ kind: "sent", deviceId: id }, T0)
        r.handle({ kind: "report", deviceId: "d000", report: report("approved") }, T0 + MINUTE)
        r.handle({ kind: "report", deviceId: "d001", report: report("trial") }, T0 + MINUTE)
        r.handle({ kind: "tick" }, T0 + DEFAULT_TIMEOUTS.deployMs)
        assert.deepEqual(steps(r), [DeviceStep.Approved, DeviceStep.Trial, DeviceStep.Offered])
        r.handle({ kind: "tick" }, T0 + DEFAULT_TIMEOUTS.deployMs + 1)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Failed)
        assert.match(r.devices.get("d000")!.reason!, /no trial within 600 s/)
        assert.equal(r.devices.get("d002")!.step, DeviceStep.Failed)
        assert.equal(r.devices.get("d001")!.step, DeviceStep.Trial)
        r.handle({ kind: "tick" }, T0 + MINUTE + DEFAULT_TIMEOUTS.trialMs + 1)
        assert.equal(r.devices.get("d001")!.step, DeviceStep.Failed)
        assert.match(r.devices.get("d001")!.reason!, /no confirmation/)
        // a late confirmation does not undo a failure the rollout counted
        r.handle({ kind: "report", deviceId: "d001", report: report("confirmed") }, T0 + 30 * MINUTE)
        assert.equal(r.devices.get("d001")!.step, DeviceStep.Failed)
    })

    test("a stage that does not reach its threshold within its time limit halts the rollout", () => {
        const { rollout: r } = start(10, { stages: defaultStages(5 * MINUTE) })
        r.handle({ kind: "sent", deviceId: "d000" }, T0)
        r.handle({ kind: "report", deviceId: "d000", report: report("approved") }, T0 + MINUTE)
        r.handle({ kind: "tick" }, T0 + 5 * MINUTE)
        assert.equal(r.record.status, RolloutStatus.Running)
        r.handle({ kind: "tick" }, T0 + 5 * MINUTE + 1)
        assert.equal(r.record.status, RolloutStatus.Halted)
        assert.match(r.record.reason!, /canary did not reach its success threshold in time: 0 of 1/)
    })

    test("pause stops offers and the stage's clock; resume goes on with the time that was left", () => {
        const { rollout: r } = start(20)
        r.handle({ kind: "pause" }, T0 + 10 * MINUTE)
        assert.equal(r.record.status, RolloutStatus.Paused)
        assert.throws(() => r.handle({ kind: "pause" }, T0 + 10 * MINUTE), RolloutError)
        // the canary confirms while paused: recorded, but the next stage waits
        const paused = r.handle({ kind: "report", deviceId: "d000", report: report("confirmed") }, T0 + 11 * MINUTE)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Confirmed)
        assert.deepEqual(paused.offers, [])
        // a pause longer than the time limit does not halt it
        assert.deepEqual(r.handle({ kind: "tick" }, T0 + 100 * MINUTE).offers, [])
        assert.equal(r.record.status, RolloutStatus.Paused)
        r.handle({ kind: "seen", deviceIds: ["d001"] }, T0 + 101 * MINUTE)
        const resumed = r.handle({ kind: "resume" }, T0 + 101 * MINUTE)
        assert.deepEqual(resumed.offers, ["d001"])
        assert.equal(r.record.status, RolloutStatus.Running)
        assert.equal(r.record.deadline, T0 + 131 * MINUTE, "the new stage has its whole time limit")
        // paused mid-stage: the rest of the limit is kept (a device's own time limits go on: the device does not pause)
        r.handle({ kind: "pause" }, T0 + 105 * MINUTE)
        r.handle({ kind: "resume" }, T0 + 108 * MINUTE)
        assert.equal(r.record.deadline, T0 + 134 * MINUTE)
    })

    test("abort skips every device not yet offered; nothing is offered after", () => {
        const { rollout: r } = start(20)
        r.handle({ kind: "abort" }, T0 + MINUTE)
        assert.equal(r.record.status, RolloutStatus.Aborted)
        assert.equal(count(r, DeviceStep.Skipped), 19)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Offered, "the canary's update is under way: the device decides")
        const late = r.handle({ kind: "report", deviceId: "d000", report: report("confirmed") }, T0 + 2 * MINUTE)
        assert.deepEqual(late.offers, [])
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Confirmed, "what the device did is still recorded")
        for (const action of ["resume", "pause", "retry-failed", "abort"] as const)
            assert.throws(() => r.handle({ kind: action }, T0 + 3 * MINUTE), RolloutError)
    })

    test("retry-failed offers the release again to the failed devices only, and a halted rollout runs again", () => {
        const { rollout: r } = start(20)
        r.handle({ kind: "report", deviceId: "d000", report: report("rolled-back", "power cut in the trial") }, T0 + MINUTE / 4)
        assert.equal(r.record.status, RolloutStatus.Halted)
        assert.throws(() => r.handle({ kind: "pause" }, T0 + MINUTE / 4), RolloutError)
        const retried = r.handle({ kind: "retry-failed" }, T0 + MINUTE / 2)
        assert.deepEqual(retried.offers, ["d000"])
        assert.equal(r.devices.get("d000")!.offers, 2)
        assert.equal(r.record.status, RolloutStatus.Running)
        r.handle({ kind: "seen", deviceIds: ["d001"] }, T0 + 3 * MINUTE)
        assert.deepEqual(confirmAll(r, ["d000"], T0 + 3 * MINUTE), ["d001"])
        assert.throws(() => r.handle({ kind: "retry-failed" }, T0 + 4 * MINUTE), /no device of the rollout has failed/)
    })

    test("an offer that could not be sent waits until the device is heard from again", () => {
        const { rollout: r } = start(3)
        const e: Effects = r.handle({ kind: "unsent", deviceId: "d000" }, T0 + 1)
        assert.deepEqual(e.offers, [], "not offered again in a loop")
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Pending)
        assert.deepEqual(r.handle({ kind: "seen", deviceIds: ["d000"] }, T0 + 2).offers, ["d000"])
    })

    test("an offer with no report is made again every interval, a few times, then the deploy time limit fails it", () => {
        const { rollout: r, effects } = start(1, { stages: [{ ...defaultStages()[0], upTo: { devices: 1 } }] })
        assert.deepEqual(effects.offers, ["d000"])
        const { reofferMs, deployMs } = DEFAULT_TIMEOUTS
        // nothing is offered again before the first offer went out, however long the broker takes
        assert.deepEqual(r.handle({ kind: "tick" }, T0 + 2 * reofferMs).offers, [])
        r.handle({ kind: "sent", deviceId: "d000" }, T0 + 2 * reofferMs)
        const sentAt = T0 + 2 * reofferMs
        assert.deepEqual(r.handle({ kind: "tick" }, sentAt + reofferMs - 1).offers, [], "not before the interval")
        const again: string[] = []
        for (let i = 1; i <= 6; i++) {
            const at = sentAt + i * reofferMs
            const e = r.handle({ kind: "tick" }, at)
            if (e.offers.length) r.handle({ kind: "sent", deviceId: "d000" }, at)
            again.push(...e.offers)
        }
        assert.deepEqual(again, ["d000", "d000", "d000"], `${MAX_REOFFERS} times at most`)
        const d = r.devices.get("d000")!
        assert.deepEqual({ step: d.step, offers: d.offers, reoffers: d.reoffers }, { step: DeviceStep.Offered, offers: 4, reoffers: 3 })
        // the deploy time limit runs from the first offer that went out, not from the last one
        r.handle({ kind: "tick" }, sentAt + deployMs + 1)
        assert.equal(d.step, DeviceStep.Failed)
        assert.match(d.reason!, /no trial within 600 s of the offer/)
        assert.equal(r.record.status, RolloutStatus.Halted)
    })

    test("a device silent since its offer is offered again when next heard from; a device that answered is not", () => {
        const { rollout: r } = start(12)
        const offered = [...r.devices.values()].filter(d => d.step === DeviceStep.Offered).map(d => d.id)
        assert.deepEqual(offered, ["d000"])
        r.handle({ kind: "sent", deviceId: "d000" }, T0 + 1000)
        // heard from at once (a message already on its way): it may simply not have answered yet
        assert.deepEqual(r.handle({ kind: "seen", deviceIds: ["d000"] }, T0 + 2000).offers, [])
        // heard from again, but it was heard from since the offer: it got the chance to answer, the interval decides
        assert.deepEqual(r.handle({ kind: "seen", deviceIds: ["d000"] }, T0 + 20_000).offers, [])
        assert.deepEqual(r.handle({ kind: "tick" }, T0 + 1000 + DEFAULT_TIMEOUTS.reofferMs).offers, ["d000"])
        // offered again after the interval: this offer went out at 62 s
        r.handle({ kind: "sent", deviceId: "d000" }, T0 + 62_000)
        // heard from too soon after it to say the offer was lost; the interval decides
        assert.deepEqual(r.handle({ kind: "seen", deviceIds: ["d000"] }, T0 + 62_000 + REOFFER_GRACE_MS - 1).offers, [])
        assert.deepEqual(r.handle({ kind: "tick" }, T0 + 62_000 + DEFAULT_TIMEOUTS.reofferMs).offers, ["d000"])
        // this offer is lost too (the device is reconnecting): back, it has the grace to answer, then it is offered again
        r.handle({ kind: "sent", deviceId: "d000" }, T0 + 122_000)
        const back = T0 + 122_000 + REOFFER_GRACE_MS
        assert.deepEqual(r.handle({ kind: "seen", deviceIds: ["d000"] }, back).offers, [])
        assert.deepEqual(r.handle({ kind: "tick" }, back + REOFFER_GRACE_MS - 1).offers, [])
        assert.deepEqual(r.handle({ kind: "tick" }, back + REOFFER_GRACE_MS).offers, ["d000"])
        r.handle({ kind: "sent", deviceId: "d000" }, T0 + 133_000)
        assert.equal(r.devices.get("d000")!.reoffers, MAX_REOFFERS)
        // the device busy with this release refusing a second offer is no failure; an answer stops the offers
        r.handle(
            { kind: "report", deviceId: "d000", report: report("refused", "precondition: another update is in progress") },
            T0 + 134_000
        )
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Offered)
        r.handle({ kind: "report", deviceId: "d000", report: report("approved") }, T0 + 135_000)
        assert.equal(r.devices.get("d000")!.step, DeviceStep.Approved)
        assert.deepEqual(r.handle({ kind: "tick" }, T0 + 10 * DEFAULT_TIMEOUTS.reofferMs).offers.includes("d000"), false)
        assert.deepEqual(r.handle({ kind: "seen", deviceIds: ["d000"] }, T0 + 11 * DEFAULT_TIMEOUTS.reofferMs).offers, [])
        // the same refusal from a device offered once is a failure as before
        const { rollout: other } = start(3)
        other.handle({ kind: "sent", deviceId: "d000" }, T0)
        other.handle({ kind: "report", deviceId: "d000", report: report("refused", "precondition: another update is in progress") }, T0 + 1)
        assert.equal(other.devices.get("d000")!.step, DeviceStep.Failed, "never offered again: the device means it")
    })

    test("a device that took the offer (its state answers the command) is not offered it again while it checks", () => {
        const { rollout: r } = start(12)
        r.handle({ kind: "sent", deviceId: "d000" }, T0)
        // it took the command and lent its socket to the updater: silent for longer than any interval
        r.handle({ kind: "taken", deviceId: "d000" }, T0 + 30_000)
        assert.equal(r.devices.get("d000")!.lastOfferAt, null)
        assert.deepEqual(r.handle({ kind: "tick" }, T0 + 5 * DEFAULT_TIMEOUTS.reofferMs).offers, [])
        assert.deepEqual(r.handle({ kind: "seen", deviceIds: ["d000"] }, T0 + 6 * DEFAULT_TIMEOUTS.reofferMs).offers, [])
        assert.deepEqual(r.handle({ kind: "tick" }, T0 + 7 * DEFAULT_TIMEOUTS.reofferMs).offers, [])
        assert.equal(r.devices.get("d000")!.reoffers, 0)
        // back after the offer with its answer in the same batch: the answer comes first, so no offer again either
        const { rollout: s } = start(12)
        s.handle({ kind: "sent", deviceId: "d000" }, T0)
        s.handle({ kind: "taken", deviceId: "d000" }, T0 + 45_000)
        s.handle({ kind: "seen", deviceIds: ["d000"] }, T0 + 45_000)
        assert.deepEqual(s.handle({ kind: "tick" }, T0 + 45_000 + REOFFER_GRACE_MS).offers, [])
        // and its deploy time limit still runs from the offer
        s.handle({ kind: "tick" }, T0 + DEFAULT_TIMEOUTS.deployMs + 1)
        assert.equal(s.devices.get("d000")!.step, DeviceStep.Failed)
    })

    test("a paused rollout offers nothing again", () => {
        const { rollout: r } = start(3)
        r.handle({ kind: "sent", deviceId: "d000" }, T0)
        r.handle({ kind: "pause" }, T0 + 1)
        assert.deepEqual(r.handle({ kind: "tick" }, T0 + 2 * DEFAULT_TIMEOUTS.reofferMs).offers, [])
        assert.deepEqual(r.handle({ kind: "resume" }, T0 + 3 * DEFAULT_TIMEOUTS.reofferMs).offers, ["d000"])
    })

    test("create refuses an empty cohort", () => {
        assert.throws(() => Rollout.create(1, RELEASE, { all: true }, [], defaultStages(), DEFAULT_TIMEOUTS, T0), RolloutError)
    })
})

describe("rollouts in the owner store", () => {
    const dir = mkdtempSync(join(tmpdir(), "rollout-store-test-"))
    after(() => rmSync(dir, { recursive: true, force: true }))

    test("a rollout and its devices come back from the store as they were", () => {
        const store = new OwnerStore(join(dir, "owner.db"))
        assert.equal(store.schemaVersion(), 3)
        const { rollout: r, effects } = start(12, { offline: [3] })
        store.saveRollout(
            r.record,
            [...effects.changed].map(id => r.devices.get(id)!)
        )
        // an offer made again is kept with when it went out
        r.handle({ kind: "sent", deviceId: "d000" }, T0)
        const offeredAgain = r.handle({ kind: "tick" }, T0 + DEFAULT_TIMEOUTS.reofferMs)
        assert.deepEqual(offeredAgain.offers, ["d000"])
        store.saveRollout(
            r.record,
            [...offeredAgain.changed].map(id => r.devices.get(id)!)
        )
        const more = r.handle({ kind: "report", deviceId: "d000", report: report("rolled-back", "crashed") }, T0 + 2 * MINUTE)
        store.saveRollout(
            r.record,
            [...more.changed].map(id => r.devices.get(id)!)
        )
        store.close()
        const again = new OwnerStore(join(dir, "owner.db"))
        const [record] = again.rollouts([RolloutStatus.Halted])
        assert.deepEqual(record, r.record)
        const devices = again.rolloutDevices(record.id)
        assert.equal(devices.length, 12)
        const d0 = devices.find(d => d.id === "d000")!
        assert.deepEqual(
            {
                step: d0.step,
                reason: d0.reason,
                offers: d0.offers,
                offeredAt: d0.offeredAt,
                lastOfferAt: d0.lastOfferAt,
                reoffers: d0.reoffers,
            },
            {
                step: DeviceStep.RolledBack,
                reason: "crashed",
                offers: 2,
                offeredAt: T0,
                lastOfferAt: T0 + DEFAULT_TIMEOUTS.reofferMs,
                reoffers: 1,
            }
        )
        assert.deepEqual(again.rollouts([RolloutStatus.Running]), [])
        again.close()
    })
})
