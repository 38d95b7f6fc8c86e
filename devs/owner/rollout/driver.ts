/**
 * The glue between rollouts (./engine.ts) and the world: it resolves a
 * cohort from the owner's devices, keeps every rollout in the owner store
 * (one transaction per event: the record and the devices that changed),
 * sends the `update` command to each device a rollout offers the release to,
 * and feeds the rollouts what the ingest path verified: every sealed update
 * report, and every device heard from. A clock tick each second runs the
 * time limits.
 *
 * One rollout is active at a time, so a device is never offered two
 * releases at once. What is sent and what is stored are told to listeners
 * (the console's event stream) as one small change, never the whole rollout.
 */
import type { OwnerStore } from "../store.ts"
import type { UpdateReport } from "../update-report.ts"
import {
    DEFAULT_TIMEOUTS,
    defaultStages,
    ONLINE_MS,
    Rollout,
    RolloutError,
    RolloutStatus,
    type Cohort,
    type DeviceTimeouts,
    type Effects,
    type Release,
    type RolloutEvent,
    type StagePlan,
} from "./engine.ts"

/** What the driver needs of the owner service. */
export interface RolloutHost {
    store: OwnerStore
    clock: () => number
    /** Sends the sealed `update` command naming `release`; rejects when it could not be sent. */
    sendUpdate(deviceId: string, release: Release): Promise<void>
    /** Whether the owner follows `deviceId`. */
    follows(deviceId: string): boolean
    /** A rollout changed (stored already). */
    changed(change: RolloutChange): void
    log(line: string): void
}

/** What listeners hear when a rollout changes. */
export interface RolloutChange {
    id: number
    status: RolloutStatus
    stage: number
    /** Devices whose step changed. */
    devices: number
}

/** What the owner asks for. */
export interface NewRollout {
    release: Release
    cohort: Cohort
    /** Default: `defaultStages()`. */
    stages?: StagePlan[]
    timeouts?: DeviceTimeouts
}

/** An owner's action on a rollout. */
export type RolloutAction = "pause" | "resume" | "abort" | "retry-failed"

/** How often the time limits are looked at. */
const TICK_MS = 1000

/** The owner's rollouts, driven. */
export class RolloutDriver {
    private readonly active = new Map<number, Rollout>()
    private timer: NodeJS.Timeout | undefined

    constructor(
        private readonly host: RolloutHost,
        private readonly onlineMs = ONLINE_MS
    ) {
        for (const record of host.store.rollouts([RolloutStatus.Running, RolloutStatus.Paused, RolloutStatus.Halted])) {
            const devices = new Map(host.store.rolloutDevices(record.id).map(d => [d.id, d]))
            this.active.set(record.id, new Rollout(record, devices, onlineMs))
        }
    }

    /** Starts the clock (and runs what came due while the service was down). */
    start() {
        this.timer = setInterval(() => this.tick(), TICK_MS)
        this.timer.unref()
        this.tick()
    }

    stop() {
        clearInterval(this.timer)
    }

    /** Runs the time limits of every active rollout. */
    tick() {
        for (const r of [...this.active.values()]) this.apply(r, { kind: "tick" })
    }

    /** Devices heard from (any verified message): a pending one that is online again gets its offer. */
    seen(deviceIds: string[]) {
        for (const r of [...this.active.values()]) if (deviceIds.some(id => r.devices.has(id))) this.apply(r, { kind: "seen", deviceIds })
    }

    /** A device's state report answered its update command: it took the offer. */
    taken(deviceId: string) {
        for (const r of [...this.active.values()]) if (r.devices.has(deviceId)) this.apply(r, { kind: "taken", deviceId })
    }

    /** A device's sealed update report, as verified. */
    report(deviceId: string, report: UpdateReport) {
        for (const r of [...this.active.values()]) if (r.devices.has(deviceId)) this.apply(r, { kind: "report", deviceId, report })
    }

    /** Creates and starts a rollout. Throws `RolloutError` when it cannot be made as asked. */
    create(input: NewRollout): Rollout {
        const busy = [...this.active.values()][0]
        if (busy) throw new RolloutError(`rollout ${busy.record.id} is ${busy.record.status}: abort it or let it complete first`)
        const { store } = this.host
        const ids = this.cohortIds(input.cohort)
        const members = ids.map(id => ({ id, lastSeen: store.upWindow(id)?.lastSeen ?? null }))
        const now = this.host.clock()
        const { rollout, effects } = Rollout.create(
            store.nextRolloutId(),
            input.release,
            input.cohort,
            members,
            input.stages ?? defaultStages(),
            input.timeouts ?? DEFAULT_TIMEOUTS,
            now,
            this.onlineMs
        )
        this.active.set(rollout.record.id, rollout)
        const r = rollout.record
        this.host.log(
            `rollout ${r.id}: sequence ${r.release.sequence} (${r.release.digest.slice(0, 16)}…) to ${members.length} devices ` +
                `in ${r.stages.length} stages`
        )
        this.commit(rollout, effects)
        return rollout
    }

    /** The owner's action on rollout `id`. Throws `RolloutError` when it does not apply. */
    act(id: number, action: RolloutAction): Rollout {
        const r = this.active.get(id)
        if (!r) {
            const stored = this.host.store.rollouts().find(x => x.id === id)
            throw new RolloutError(stored ? `rollout ${id} is ${stored.status}` : `no rollout ${id}`)
        }
        this.apply(r, { kind: action } as RolloutEvent, true)
        this.host.log(`rollout ${id}: ${action} (${r.record.status})`)
        return r
    }

    /** A rollout as it is now: the active one from memory, an ended one from the store. */
    get(id: number): Rollout | undefined {
        const live = this.active.get(id)
        if (live) return live
        const record = this.host.store.rollouts().find(x => x.id === id)
        return record && new Rollout(record, new Map(this.host.store.rolloutDevices(id).map(d => [d.id, d])), this.onlineMs)
    }

    /** Every rollout's record, newest first. */
    list() {
        return this.host.store.rollouts().map(record => this.active.get(record.id)?.record ?? record)
    }

    private cohortIds(cohort: Cohort): string[] {
        const { store } = this.host
        const owned = store.devices().map(d => d.id)
        if ("all" in cohort) return owned
        if ("tag" in cohort) {
            const tagged = new Set(store.devicesTagged(cohort.tag))
            const ids = owned.filter(id => tagged.has(id))
            if (ids.length === 0) throw new RolloutError(`no device carries the tag ${cohort.tag}`)
            return ids
        }
        const unknown = cohort.devices.find(id => !this.host.follows(id))
        if (unknown) throw new RolloutError(`device ${unknown} is not claimed by this owner`)
        return [...new Set(cohort.devices)]
    }

    /** One event: the machine moves, the store follows, then the offers go out. */
    private apply(r: Rollout, event: RolloutEvent, ownerAction = false) {
        let effects: Effects
        try {
            effects = r.handle(event, this.host.clock())
        } catch (e) {
            if (ownerAction || !(e instanceof RolloutError)) throw e
            return
        }
        this.commit(r, effects)
    }

    private commit(r: Rollout, effects: Effects) {
        if (effects.changed.size || effects.recordChanged)
            this.host.store.saveRollout(
                r.record,
                [...effects.changed].map(id => r.devices.get(id)!)
            )
        if (!r.active) this.active.delete(r.record.id)
        if (effects.recordChanged && r.record.reason && r.record.status !== RolloutStatus.Running)
            this.host.log(`rollout ${r.record.id}: ${r.record.status}: ${r.record.reason}`)
        for (const id of effects.offers) void this.offer(r, id)
        if (effects.changed.size || effects.recordChanged)
            this.host.changed({ id: r.record.id, status: r.record.status, stage: r.record.stage, devices: effects.changed.size })
    }

    private async offer(r: Rollout, id: string) {
        try {
            await this.host.sendUpdate(id, r.record.release)
            if (this.active.get(r.record.id) === r) this.apply(r, { kind: "sent", deviceId: id })
        } catch (e) {
            this.host.log(`rollout ${r.record.id}: the offer to ${id} was not sent (${(e as Error).message}); it waits until heard from`)
            if (this.active.get(r.record.id) === r) this.apply(r, { kind: "unsent", deviceId: id })
        }
    }
}
