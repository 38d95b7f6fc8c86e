/**
 * A staged rollout as a state machine: events in (a device's sealed report,
 * a device heard from, the owner's pause/resume/abort/retry, the clock's
 * tick), offers out. It does no I/O and reads no clock of its own, so it is
 * tested without a device (./driver.ts sends the offers, feeds it what the
 * ingest path verified and keeps it in the store).
 *
 * The shape is hawkBit's rollout groups and AWS IoT Jobs' rollout and abort
 * criteria, with one difference: the only success is the device's own report,
 * sealed under its up key (devs/owner/verifier.ts, `up/update`), which
 * neither the broker nor the update service can forge.
 *
 * - The cohort is split once, at creation, into stages by cumulative size
 *   (default: 1 canary, 10 %, 50 %, 100 % of the cohort); the last stage takes
 *   whatever the others left. Online devices go first, so the canary is one
 *   that can answer.
 * - A started stage offers the release to each of its devices that is online
 *   (heard from within `onlineMs`); an offline one stays `pending` and is
 *   offered when it is next heard from, as long as the rollout runs.
 * - Commands go at QoS 0 (a durable QoS 1 queue on one broker node kept
 *   devices from failing over), so an offer sent while the device reconnects
 *   is lost without a trace. A device offered the release that has not taken
 *   it (no state report answering the command, no update report) is offered
 *   it again every `reofferMs`, and `REOFFER_GRACE_MS` after it is heard from
 *   for the first time since the offer if it still has not taken it (it was
 *   away when the offer went), at most `MAX_REOFFERS` times; its deploy time
 *   limit still runs from the first offer, so a device that never answers
 *   fails as before. A device that took the offer is never offered it again:
 *   while it checks the release its socket is away from MQTT, and on an ESP32
 *   verifying a new root's signatures takes longer than any grace.
 * - The next stage starts once the current one has confirmed
 *   `successPercent` of the devices it offered (at least one), within its
 *   `timeLimitMs`; otherwise the rollout halts.
 * - The rollout halts by itself as soon as a started stage's failures
 *   (rolled back, refused, unhealthy, a deploy or a trial past its time)
 *   reach `maxFailures` or `maxFailurePercent` of the stage. Nothing outside
 *   the stages started so far is ever offered.
 * - Pause stops offers and stage changes (the stage's clock stops too);
 *   resume and retry-failed run again (retry-failed first puts the failed
 *   devices back to `pending`); abort skips every device not yet offered.
 */
import type { UpdateReport } from "../update-report.ts"

/** Where one device is in a rollout. */
export enum DeviceStep {
    /** In the rollout, not offered yet (its stage has not started, or it is offline). */
    Pending = "pending",
    /** The update command was sent. */
    Offered = "offered",
    /** The device verified the manifest and asked for the image. */
    Approved = "approved",
    /** The update service is deploying (its view, shown as information). */
    Deploying = "deploying",
    /** The new program runs its health checks. */
    Trial = "trial",
    /** The device confirmed the new program: the only success. */
    Confirmed = "confirmed",
    /** The device runs its old program again. */
    RolledBack = "rolled-back",
    /** Refused, unhealthy, or no report in time. */
    Failed = "failed",
    /** Never offered: the rollout was aborted first. */
    Skipped = "skipped",
}

/** Steps of a device whose update is under way, in the order it takes them. */
const IN_PROGRESS = [DeviceStep.Offered, DeviceStep.Approved, DeviceStep.Deploying, DeviceStep.Trial]
/** Steps that count against a stage's failure threshold. */
const FAILURES = new Set([DeviceStep.RolledBack, DeviceStep.Failed])
/** Steps a device does not leave by itself. */
const FINAL = new Set([DeviceStep.Confirmed, DeviceStep.RolledBack, DeviceStep.Failed, DeviceStep.Skipped])

/** Where a rollout is. */
export enum RolloutStatus {
    Running = "running",
    Paused = "paused",
    /** Stopped by itself: failures past a threshold, or a stage out of time. */
    Halted = "halted",
    Aborted = "aborted",
    /** Every stage reached its threshold and every device finished. */
    Completed = "completed",
}

/** One stage: how far it reaches into the cohort (cumulative), and its thresholds. */
export interface StagePlan {
    /** The stage ends at this many devices of the cohort, or at this percentage of it (exactly one of the two). */
    upTo: { devices: number } | { percent: number }
    /** Confirmed devices needed, as a percentage of the stage's devices that were offered. */
    successPercent: number
    /** How long the stage has to reach its success threshold. */
    timeLimitMs: number
    /** Failures that halt the rollout (a count)… */
    maxFailures: number
    /** …or a percentage of the stage's devices, whichever is reached first. */
    maxFailurePercent: number
}

/** How long a device may take. */
export interface DeviceTimeouts {
    /** From the offer to the trial (approval, deploy). */
    deployMs: number
    /** From the trial to the confirmation. */
    trialMs: number
    /** From an offer with no report since to the next offer (a command lost while the device reconnected). */
    reofferMs: number
}

/** Offers again after the first, per offer (retry-failed starts afresh): a few, then the deploy time limit decides. */
export const MAX_REOFFERS = 3

/**
 * A device heard from this soon after an offer may simply not have answered yet (it verifies the manifest
 * first, ~1 s in the simulator, then reports its approval; a busy owner service verifies messages late):
 * not a sign that the offer was lost. A device back after the offer has this long to send its answer
 * (the state report it queued when it took the command leaves with its first messages).
 */
export const REOFFER_GRACE_MS = 10_000

/** The stages of a rollout nobody configured: a canary, then 10 %, 50 % and 100 % of the cohort. */
export function defaultStages(timeLimitMs = 3_600_000): StagePlan[] {
    const stage = (upTo: StagePlan["upTo"], maxFailures: number, maxFailurePercent: number): StagePlan => ({
        upTo,
        successPercent: 100,
        timeLimitMs,
        maxFailures,
        maxFailurePercent,
    })
    return [stage({ devices: 1 }, 1, 100), stage({ percent: 10 }, 3, 5), stage({ percent: 50 }, 5, 5), stage({ percent: 100 }, 5, 5)]
}

/** Default device timeouts: the update service's window is 5 minutes and its trial deadline 10. */
export const DEFAULT_TIMEOUTS: DeviceTimeouts = { deployMs: 10 * 60_000, trialMs: 15 * 60_000, reofferMs: 60_000 }

/** A device is online when heard from within this time (as the device list says). */
export const ONLINE_MS = 60_000

/** One device's place in a rollout. */
export interface DeviceProgress {
    id: string
    /** Its stage (index into the plan). */
    stage: number
    step: DeviceStep
    /** When it took this step. */
    at: number
    /** Why it failed, as the device said or as the rollout saw it. */
    reason: string | null
    /** When the last offer was sent (the broker took it); its deploy time limit runs from then. */
    offeredAt: number | null
    /** When it was last heard from (any verified message). */
    lastSeen: number | null
    /** Offers made to it (retry-failed offers again). */
    offers: number
    /** When the latest offer, first or again, was made, while the device has not taken it (null before any, and once taken). */
    lastOfferAt: number | null
    /** Offers made again since the device was last offered the release afresh (no report came). */
    reoffers: number
    /** When to offer again if the device, back after the offer, has not taken it by then (not stored: a restart waits `reofferMs`). */
    answerDueAt?: number
}

/** The release a rollout installs: its image's SHA-256 (hex) and its manifest's sequence. */
export interface Release {
    digest: string
    sequence: number
}

/** Everything a rollout is: what the store keeps. */
export interface RolloutRecord {
    id: number
    release: Release
    /** How the cohort was chosen, as the owner said it (shown, not used again). */
    cohort: Cohort
    stages: StagePlan[]
    timeouts: DeviceTimeouts
    status: RolloutStatus
    /** Why it halted or how it ended, in a sentence. */
    reason: string | null
    /** The newest stage started (-1 before the first). */
    stage: number
    /** When the newest stage must reach its threshold (null once it has, or while paused). */
    deadline: number | null
    /** Time left to the deadline when paused. */
    remainingMs: number | null
    createdAt: number
    updatedAt: number
}

/** Which devices a rollout targets. */
export type Cohort = { all: true } | { tag: string } | { devices: string[] }

/** What the owner or the world tells a rollout. */
export type RolloutEvent =
    | { kind: "tick" }
    /** Devices heard from (any verified message). */
    | { kind: "seen"; deviceIds: string[] }
    | { kind: "report"; deviceId: string; report: UpdateReport }
    /** The device's state report answered the update command: it took the offer (its update report follows). */
    | { kind: "taken"; deviceId: string }
    /** The offer to this device was sent (its deploy time limit starts), or could not be: it waits as if offline. */
    | { kind: "sent"; deviceId: string }
    | { kind: "unsent"; deviceId: string }
    | { kind: "pause" }
    | { kind: "resume" }
    | { kind: "abort" }
    | { kind: "retry-failed" }

/** What handling one event did. */
export interface Effects {
    /** Devices to send the update command to now. */
    offers: string[]
    /** Devices whose progress changed (the store writes these). */
    changed: Set<string>
    /** Whether the rollout's own record changed. */
    recordChanged: boolean
}

/** A refusal of an owner's action: the sentence says why. */
export class RolloutError extends Error {}

/** One rollout and its devices; `handle` is its only way to change. */
export class Rollout {
    private effects: Effects = { offers: [], changed: new Set(), recordChanged: false }
    private readonly byStage: DeviceProgress[][]

    constructor(
        readonly record: RolloutRecord,
        readonly devices: Map<string, DeviceProgress>,
        private readonly onlineMs = ONLINE_MS
    ) {
        // a rollout stored before offers were made again gets the default interval
        record.timeouts = { ...DEFAULT_TIMEOUTS, ...record.timeouts }
        this.byStage = record.stages.map(() => [])
        for (const d of devices.values()) this.byStage[d.stage].push(d)
    }

    /**
     * A new rollout of `release` to `cohort` (device ids with when each was last heard from, in the
     * owner's order): split into stages, online devices first; the first stage starts at once.
     */
    static create(
        id: number,
        release: Release,
        cohort: Cohort,
        members: { id: string; lastSeen: number | null }[],
        stages: StagePlan[],
        timeouts: DeviceTimeouts,
        now: number,
        onlineMs = ONLINE_MS
    ): { rollout: Rollout; effects: Effects } {
        if (members.length === 0) throw new RolloutError("the cohort has no devices")
        if (stages.length === 0) throw new RolloutError("a rollout has at least one stage")
        const online = (m: { lastSeen: number | null }) => m.lastSeen !== null && now - m.lastSeen < onlineMs
        const ordered = [...members.filter(online), ...members.filter(m => !online(m))]
        const ends = stageEnds(stages, ordered.length)
        const devices = new Map<string, DeviceProgress>()
        ordered.forEach((m, i) => {
            const stage = ends.findIndex(end => i < end)
            devices.set(m.id, {
                id: m.id,
                stage,
                step: DeviceStep.Pending,
                at: now,
                reason: null,
                offeredAt: null,
                lastSeen: m.lastSeen,
                offers: 0,
                lastOfferAt: null,
                reoffers: 0,
            })
        })
        const record: RolloutRecord = {
            id,
            release,
            cohort,
            stages,
            timeouts,
            status: RolloutStatus.Running,
            reason: null,
            stage: -1,
            deadline: null,
            remainingMs: null,
            createdAt: now,
            updatedAt: now,
        }
        const rollout = new Rollout(record, devices, onlineMs)
        for (const d of devices.values()) rollout.effects.changed.add(d.id)
        return { rollout, effects: rollout.handle({ kind: "tick" }, now) }
    }

    /** Whether the rollout can still offer (or be made to offer again). */
    get active(): boolean {
        return [RolloutStatus.Running, RolloutStatus.Paused, RolloutStatus.Halted].includes(this.record.status)
    }

    /** Handles one event at time `now`; returns what to send and what to store. Throws `RolloutError` for an action that does not apply. */
    handle(event: RolloutEvent, now: number): Effects {
        this.effects = { offers: [], changed: this.effects.changed, recordChanged: false }
        switch (event.kind) {
            case "seen":
                // not stored as a change: when a device was last heard from is the owner store's own
                for (const id of event.deviceIds) {
                    const d = this.devices.get(id)
                    if (!d) continue
                    // silent since the offer went out and speaking now: it was away (reconnecting) and the offer is lost
                    const away = d.lastOfferAt !== null && (d.lastSeen === null || d.lastSeen < d.lastOfferAt)
                    d.lastSeen = now
                    const grace = Math.min(REOFFER_GRACE_MS, this.record.timeouts.reofferMs)
                    if (away && now - d.lastOfferAt! >= grace) d.answerDueAt = now + grace
                }
                break
            case "taken": {
                const d = this.devices.get(event.deviceId)
                if (d?.step === DeviceStep.Offered && d.lastOfferAt !== null) {
                    // nothing to offer again: lastOfferAt stays null until an offer is made afresh
                    d.lastOfferAt = null
                    d.answerDueAt = undefined
                    this.effects.changed.add(d.id)
                }
                break
            }
            case "report":
                this.report(event.deviceId, event.report, now)
                break
            case "sent": {
                const d = this.devices.get(event.deviceId)
                if (d && IN_PROGRESS.includes(d.step) && d.offeredAt === null) {
                    d.offeredAt = now
                    this.effects.changed.add(d.id)
                }
                // an offer made again counts from when it went out too
                if (d?.step === DeviceStep.Offered) {
                    d.lastOfferAt = now
                    this.effects.changed.add(d.id)
                }
                break
            }
            case "unsent": {
                const d = this.devices.get(event.deviceId)
                if (d?.step !== DeviceStep.Offered) break
                this.move(d, DeviceStep.Pending, now, null)
                // offered again when next heard from, not in a loop while the broker is away
                d.lastSeen = null
                break
            }
            case "pause":
                if (this.record.status !== RolloutStatus.Running)
                    throw new RolloutError(`the rollout is ${this.record.status}, not running`)
                this.setStatus(RolloutStatus.Paused, now, "paused by the owner")
                this.stopClock(now)
                break
            case "resume":
                if (this.record.status !== RolloutStatus.Paused && this.record.status !== RolloutStatus.Halted)
                    throw new RolloutError(`the rollout is ${this.record.status}: only a paused or halted one resumes`)
                this.restart(now)
                break
            case "retry-failed": {
                if (!this.active) throw new RolloutError(`the rollout is ${this.record.status}`)
                const failed = [...this.devices.values()].filter(d => FAILURES.has(d.step))
                if (failed.length === 0) throw new RolloutError("no device of the rollout has failed")
                for (const d of failed) this.move(d, DeviceStep.Pending, now, null)
                if (this.record.status === RolloutStatus.Halted) this.restart(now)
                break
            }
            case "abort":
                if (!this.active) throw new RolloutError(`the rollout is ${this.record.status}`)
                for (const d of this.devices.values()) if (d.step === DeviceStep.Pending) this.move(d, DeviceStep.Skipped, now, "aborted")
                this.setStatus(RolloutStatus.Aborted, now, "aborted by the owner")
                this.record.deadline = null
                break
            case "tick":
                break
        }
        this.evaluate(now)
        const effects = this.effects
        this.effects = { offers: [], changed: new Set(), recordChanged: false }
        return effects
    }

    /** A device's sealed report: only for this release, only forward, only from a device the rollout offered it to. */
    private report(id: string, r: UpdateReport, now: number) {
        const d = this.devices.get(id)
        if (!d || r.digest !== this.record.release.digest || r.sequence !== this.record.release.sequence) return
        d.lastSeen = now
        const reason = r.reason ?? null
        if (FAILURES.has(d.step)) {
            // the old program says it runs again after an unhealthy trial: still the same one failure
            if (r.step === "rolled-back" && d.step !== DeviceStep.RolledBack) this.move(d, DeviceStep.RolledBack, now, reason ?? d.reason)
            return
        }
        const rank = IN_PROGRESS.indexOf(d.step)
        if (rank < 0) return
        // an offer made again reached a device already installing this very release (its first answer was still on
        // its way): the device refuses the second one as "another update is in progress", which is no failure
        if (r.step === "refused" && d.reoffers > 0 && /another update is in progress/.test(reason ?? "")) return
        if (r.step === "approved" && rank < IN_PROGRESS.indexOf(DeviceStep.Approved)) this.move(d, DeviceStep.Approved, now, null)
        else if (r.step === "trial" && rank < IN_PROGRESS.indexOf(DeviceStep.Trial)) this.move(d, DeviceStep.Trial, now, null)
        else if (r.step === "confirmed") this.move(d, DeviceStep.Confirmed, now, null)
        else if (r.step === "rolled-back") this.move(d, DeviceStep.RolledBack, now, reason ?? "rolled back")
        else if (r.step === "refused" || r.step === "unhealthy")
            this.move(d, DeviceStep.Failed, now, `${r.step}${reason ? `: ${reason}` : ""}`)
    }

    private move(d: DeviceProgress, step: DeviceStep, now: number, reason: string | null) {
        d.step = step
        d.at = now
        d.reason = reason
        this.effects.changed.add(d.id)
    }

    /** Offers the release again to a device that has sent no report since its offer, a few times at most. */
    private reoffer(d: DeviceProgress, now: number) {
        if (d.step !== DeviceStep.Offered || d.offeredAt === null || d.reoffers >= MAX_REOFFERS) return
        if (this.record.status !== RolloutStatus.Running) return
        d.reoffers++
        d.offers++
        d.lastOfferAt = now
        d.answerDueAt = undefined
        this.effects.changed.add(d.id)
        this.effects.offers.push(d.id)
    }

    private setStatus(status: RolloutStatus, now: number, reason: string | null) {
        this.record.status = status
        this.record.reason = reason
        this.record.updatedAt = now
        this.effects.recordChanged = true
    }

    private stopClock(now: number) {
        if (this.record.deadline !== null) this.record.remainingMs = Math.max(0, this.record.deadline - now)
        this.record.deadline = null
    }

    /** Runs again after a pause (the stage's clock resumes) or a halt (the stage gets its whole time limit again). */
    private restart(now: number) {
        const r = this.record
        const wasHalted = r.status === RolloutStatus.Halted
        this.setStatus(RolloutStatus.Running, now, null)
        if (r.stage >= 0 && !this.stageMet(r.stage)) {
            r.deadline = now + (wasHalted || r.remainingMs === null ? r.stages[r.stage].timeLimitMs : r.remainingMs)
        }
        r.remainingMs = null
    }

    /** After every event: time-outs, the failure thresholds, offers, the next stage, the end. */
    private evaluate(now: number) {
        const r = this.record
        for (const d of this.devices.values()) {
            // an offer still queued behind others has not started its time (offers leave one at a time)
            if (
                IN_PROGRESS.includes(d.step) &&
                d.step !== DeviceStep.Trial &&
                d.offeredAt !== null &&
                now - d.offeredAt > r.timeouts.deployMs
            )
                this.move(d, DeviceStep.Failed, now, `no trial within ${Math.round(r.timeouts.deployMs / 1000)} s of the offer`)
            else if (d.step === DeviceStep.Trial && now - d.at > r.timeouts.trialMs)
                this.move(d, DeviceStep.Failed, now, `no confirmation within ${Math.round(r.timeouts.trialMs / 1000)} s of the trial`)
            else if (
                d.step === DeviceStep.Offered &&
                d.lastOfferAt !== null &&
                (now - d.lastOfferAt >= r.timeouts.reofferMs || (d.answerDueAt !== undefined && now >= d.answerDueAt))
            )
                this.reoffer(d, now)
        }
        if (r.status === RolloutStatus.Running || r.status === RolloutStatus.Paused) {
            for (let s = 0; s <= r.stage; s++) {
                const over = this.failuresOver(s)
                if (over) {
                    this.setStatus(RolloutStatus.Halted, now, over)
                    r.deadline = null
                    r.remainingMs = null
                    return
                }
            }
        }
        if (r.status !== RolloutStatus.Running) return
        for (;;) {
            this.offerOnline(now)
            if (r.stage >= 0 && !this.stageMet(r.stage)) {
                if (r.deadline !== null && now > r.deadline) {
                    const { confirmed, offered } = this.stageCounts(r.stage)
                    this.setStatus(
                        RolloutStatus.Halted,
                        now,
                        `${stageName(r.stage)} did not reach its success threshold in time: ${confirmed} of ${offered} offered confirmed`
                    )
                    r.deadline = null
                }
                return
            }
            if (r.stage === r.stages.length - 1) break
            r.stage++
            r.deadline = now + r.stages[r.stage].timeLimitMs
            r.updatedAt = now
            this.effects.recordChanged = true
        }
        if (r.deadline !== null) {
            r.deadline = null
            this.effects.recordChanged = true
        }
        if ([...this.devices.values()].every(d => FINAL.has(d.step))) {
            const failed = [...this.devices.values()].filter(d => FAILURES.has(d.step)).length
            this.setStatus(RolloutStatus.Completed, now, failed ? `completed with ${failed} failed` : "every device confirmed")
        }
    }

    /** Offers the release to the pending devices of the started stages that are online. */
    private offerOnline(now: number) {
        for (let s = 0; s <= this.record.stage; s++)
            for (const d of this.byStage[s])
                if (d.step === DeviceStep.Pending && d.lastSeen !== null && now - d.lastSeen < this.onlineMs) {
                    this.move(d, DeviceStep.Offered, now, null)
                    d.offeredAt = null
                    d.lastOfferAt = null
                    d.reoffers = 0
                    d.offers++
                    this.effects.offers.push(d.id)
                }
    }

    private stageCounts(s: number) {
        let confirmed = 0
        let offered = 0
        let failed = 0
        for (const d of this.byStage[s]) {
            if (d.step === DeviceStep.Confirmed) confirmed++
            if (FAILURES.has(d.step)) failed++
            if (d.step !== DeviceStep.Pending && d.step !== DeviceStep.Skipped) offered++
        }
        return { confirmed, offered, failed, size: this.byStage[s].length }
    }

    /** Whether stage `s` reached its success threshold (an empty stage has nothing to wait for). */
    stageMet(s: number): boolean {
        const { confirmed, offered, size } = this.stageCounts(s)
        if (size === 0) return true
        if (offered === 0) return false
        return confirmed >= Math.max(1, Math.ceil((this.record.stages[s].successPercent * offered) / 100))
    }

    /** Why stage `s`'s failures halt the rollout, or undefined while they do not. */
    private failuresOver(s: number): string | undefined {
        const { failed, size } = this.stageCounts(s)
        const plan = this.record.stages[s]
        if (failed === 0) return undefined
        if (failed >= plan.maxFailures || failed * 100 >= plan.maxFailurePercent * size)
            return (
                `${stageName(s)}: ${failed} of ${size} devices failed ` +
                `(the threshold is ${plan.maxFailures} or ${plan.maxFailurePercent} %)`
            )
        return undefined
    }

    /** Per stage: its size, and how many devices are at each step. */
    summary() {
        return this.record.stages.map((plan, s) => {
            const steps: Partial<Record<DeviceStep, number>> = {}
            for (const d of this.byStage[s]) steps[d.step] = (steps[d.step] ?? 0) + 1
            return {
                stage: s,
                name: stageName(s),
                size: this.byStage[s].length,
                started: s <= this.record.stage,
                met: s <= this.record.stage && this.stageMet(s),
                plan,
                steps,
            }
        })
    }
}

/** "canary" for the first stage, "stage N" after. */
export function stageName(s: number): string {
    return s === 0 ? "canary" : `stage ${s + 1}`
}

/** Where each stage ends in a cohort of `n` (cumulative, never shrinking; the last takes the rest). */
export function stageEnds(stages: StagePlan[], n: number): number[] {
    let end = 0
    return stages.map((s, i) => {
        const want = "devices" in s.upTo ? s.upTo.devices : Math.ceil((s.upTo.percent * n) / 100)
        end = i === stages.length - 1 ? n : Math.min(n, Math.max(end, want))
        return end
    })
}
