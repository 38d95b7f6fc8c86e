/**
 * What the device does with its owner's commands, once the uplink has
 * verified and parsed them (`uplink/downlink.ts`), and the state report it
 * answers with: what an owner needs to see that the device is healthy.
 *
 *   interval <sensor> <ms>  sets a sensor's sampling interval; answers the state
 *   events                  sends the security event log, a few events a message
 *   state                   answers the state
 *   update-check            lends the socket to the updater; answers the state
 *
 * `interval` and `update-check` are recorded in the security event log.
 */
import * as ds from "@devicescript/core"
import { CborMap, encodeCbor } from "../codec/cbor"
import { EventLog } from "../events/log"
import { Pipeline } from "../pipeline/pipeline"
import { Updater } from "../update/updater"
import { Command } from "../uplink/downlink"
import { CommandReply, CommandRunner, SecureUplink } from "../uplink/uplink"

/** Events per uplink message, so each fits a queue slot. */
const EVENTS_PER_MESSAGE = 5

/** What the commands act on. */
export interface CommandTargets {
    /** This boot's number, for the state report. */
    boot: number
    events: EventLog
    pipeline: Pipeline
    uplink: SecureUplink
    updater: Updater
}

/** Runs the owner's commands. */
export class CommandHandler implements CommandRunner {
    constructor(private readonly targets: CommandTargets) {}

    /** Runs one authenticated command; returns the reply to send, if any. */
    async run(c: Command): Promise<CommandReply> {
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
                    await events.record("command", `interval ${c.sensor} set to ${c.ms} ms`)
                    return this.stateReply()
                }
            await events.record("command", `interval: no sensor ${c.sensor}`)
            return undefined
        }
        if (c.cmd === "events") {
            const list = await events.list()
            for (let i = 0; i < list.length; i += EVENTS_PER_MESSAGE) {
                const part = list.slice(i, Math.min(list.length, i + EVENTS_PER_MESSAGE))
                await uplink.send("events", encodeCbor(part.map(e => [e.seq, e.boot, e.uptimeMs, e.kind, e.detail])))
            }
            return undefined
        }
        if (c.cmd === "update-check") {
            await events.record("command", "update check requested")
            uplink.lendSocket(async () => await updater.checkAndWait())
        }
        return this.stateReply()
    }

    /** The state report: boot, uptime, events logged, queue, sampling intervals. */
    private stateReply(): CommandReply {
        const { boot, events, pipeline, uplink } = this.targets
        const intervals = new CborMap()
        for (const s of pipeline.samplers) intervals.set(s.options.config.name, s.options.config.intervalMs)
        const report = new CborMap()
            .set("boot", boot)
            .set("uptime", Math.round(ds.millis()))
            .set("events", events.total())
            .set("queued", uplink.queue.size())
            .set("dropped", uplink.queue.dropped)
            .set("intervals", intervals)
        return { topic: "state", body: encodeCbor(report) }
    }
}
