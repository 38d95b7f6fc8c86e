/**
 * What the device does with its owner's commands, once the uplink has
 * verified and parsed them (`uplink/downlink.ts`), and the state report it
 * answers with: what an owner needs to see that the device is healthy.
 *
 *   interval <sensor> <ms>   sets a sensor's sampling interval, kept across reboots; answers the state
 *   events                   sends the security event log, a few events a message
 *   state                    answers the state
 *   update <digest> <seq>    lends the socket to the updater to install that release; answers the state
 *   update-check             does the same again for the release named last, if it is still pending; answers the state
 *
 * The state report names the command it answers by its down counter
 * (`answers`, beside the command's own `cmd` text), so the owner can show the
 * reply beside the command; how the update goes is reported on its own topic
 * (`update/report.ts`). `interval`, `update` and
 * `update-check` are recorded in the security event log.
 */
import * as ds from "@devicescript/core"
import { CborMap, encodeCbor } from "../codec/cbor"
import { EventLog, SecurityEvent } from "../events/log"
import { storeInterval } from "../pipeline/intervals"
import { Pipeline } from "../pipeline/pipeline"
import { StorageError } from "../storage/settings"
import { UPDATE_PHASE_NAMES } from "../update/slots"
import { Updater } from "../update/updater"
import { Command } from "../uplink/downlink"
import { CommandReply, CommandRunner, SecureUplink } from "../uplink/uplink"

/** Events per uplink message, so each fits a queue slot. */
const EVENTS_PER_MESSAGE = 5
/** Bytes of the running program's SHA-256 in the state report: enough to tell images apart at a glance. */
const IMAGE_DIGEST_BYTES = 8

/** What the commands act on. */
export interface CommandTargets {
    /** This boot's number, for the state report. */
    boot: number
    events: EventLog
    pipeline: Pipeline
    uplink: SecureUplink
    updater: Updater
}

/** The state report (`things/<id>/up/state`). */
export interface StateReport {
    /** The down counter of the command this report answers. */
    answers: number
    boot: number
    /** Milliseconds since this boot. */
    uptime: number
    /** The first `IMAGE_DIGEST_BYTES` of the running program's SHA-256. */
    image: Buffer
    /**
     * The sequence of the manifest the running image was installed from; 0 when none the device trusts names it
     * (a factory image, or one deployed by hand).
     */
    seq: number
    /** The update's phase: idle, approved, deploying, trial or rollback. */
    phase: string
    /** Security events recorded since the log was created. */
    events: number
    /** Messages in the outbound queue, and those it dropped since boot. */
    queued: number
    dropped: number
    /** Each sensor's sampling interval in milliseconds. */
    intervals: { sensor: string; ms: number }[]
}

/** A state report as a CBOR map with the field names of `StateReport` as text keys, `intervals` a map of sensor to ms. */
export function encodeStateReport(r: StateReport): Buffer {
    const intervals = new CborMap()
    for (const i of r.intervals) intervals.set(i.sensor, i.ms)
    return encodeCbor(
        new CborMap()
            .set("answers", r.answers)
            .set("boot", r.boot)
            .set("uptime", r.uptime)
            .set("image", r.image)
            .set("seq", r.seq)
            .set("phase", r.phase)
            .set("events", r.events)
            .set("queued", r.queued)
            .set("dropped", r.dropped)
            .set("intervals", intervals)
    )
}

/** Security events as one message (`things/<id>/up/events`): a CBOR array of [seq, boot, uptime ms, kind, detail]. */
export function encodeEventRecords(events: SecurityEvent[]): Buffer {
    return encodeCbor(events.map(e => [e.seq, e.boot, e.uptimeMs, e.kind, e.detail]))
}

/** Runs the owner's commands. */
export class CommandHandler implements CommandRunner {
    constructor(private readonly targets: CommandTargets) {}

    /** Runs one authenticated command that came with down counter `counter`; returns the reply to send, if any. */
    async run(c: Command, counter: number): Promise<CommandReply> {
        const { events, pipeline, uplink, updater } = this.targets
        if (c.cmd === "interval") {
            for (const s of pipeline.samplers)
                if (s.options.config.name === c.sensor) {
                    try {
                        s.setIntervalMs(c.ms)
                    } catch (e: any) {
                        await events.record("command", `interval ${c.sensor} refused: ${e.message}`)
                        return undefined
                    }
                    try {
                        await storeInterval(c.sensor, c.ms, events)
                    } catch (e: any) {
                        if (!(e instanceof StorageError)) throw e
                        await events.record("command", `interval ${c.sensor} not kept: ${e.message}`)
                    }
                    await events.record("command", `interval ${c.sensor} set to ${c.ms} ms`)
                    return this.stateReply(counter)
                }
            await events.record("command", `interval: no sensor ${c.sensor}`)
            return undefined
        }
        if (c.cmd === "events") {
            const list = await events.list()
            for (let i = 0; i < list.length; i += EVENTS_PER_MESSAGE)
                await uplink.send("events", encodeEventRecords(list.slice(i, Math.min(list.length, i + EVENTS_PER_MESSAGE))))
            return undefined
        }
        if (c.cmd === "update") updater.target = c
        // update-check runs the release named last again, if it is still pending (the registry was unreachable)
        if (c.cmd !== "state" && updater.target) {
            await events.record("command", "update requested")
            uplink.lendSocket(async () => await updater.checkAndWait())
        }
        return this.stateReply(counter)
    }

    /** The state report answering the command with down counter `counter`. */
    private stateReply(counter: number): CommandReply {
        const { boot, events, pipeline, uplink, updater } = this.targets
        const { image, state } = updater
        const report = encodeStateReport({
            answers: counter,
            boot,
            uptime: Math.round(ds.millis()),
            image: updater.running.slice(0, IMAGE_DIGEST_BYTES),
            seq: image ? image.sequence : 0,
            phase: UPDATE_PHASE_NAMES[state.phase],
            events: events.total(),
            queued: uplink.queue.size(),
            dropped: uplink.queue.dropped,
            intervals: pipeline.samplers.map(s => ({ sensor: s.options.config.name, ms: s.options.config.intervalMs })),
        })
        return { topic: "state", body: report }
    }
}
