/**
 * Collects readings from all samplers and hands them to a sink in batches.
 * Bounded: when full, the oldest reading is dropped and the drop counted.
 */
import * as ds from "@devicescript/core"
import { FaultTally, ReadingBatch } from "../codec/readings"
import { Reading, SensorFault } from "../sensors/types"
import { ReadingSink } from "./sink"

/** Options of a batcher. */
export interface BatcherOptions {
    sink: ReadingSink
    /** Time between flushes, in milliseconds. */
    flushIntervalMs: number
    /** Most readings held; older ones are dropped first. */
    maxReadings: number
}

/** Batches readings for a sink. */
export class ReadingBatcher {
    /** Readings dropped because the batch was full, since boot. */
    dropped = 0
    /** Batches the sink refused (it threw). */
    failedDeliveries = 0
    private readings: Reading[] = []
    private readonly tallies: FaultTally[] = []
    private timer: number = undefined
    /** Whether anything was counted since the last flush. */
    private countsChanged = false

    constructor(private readonly options: BatcherOptions) {}

    /** Number of readings waiting for the next flush. */
    pending(): number {
        return this.readings.length
    }

    /** Adds a reading, dropping the oldest when full. */
    add(reading: Reading) {
        if (this.readings.length >= this.options.maxReadings) {
            this.readings.shift()
            this.dropped++
            this.countsChanged = true
        }
        this.readings.push(reading)
    }

    /** Counts a fault against its sensor. */
    countFault(fault: SensorFault) {
        this.countsChanged = true
        for (const t of this.tallies)
            if (t.sensor === fault.sensor) {
                t.count++
                return
            }
        this.tallies.push({ sensor: fault.sensor, count: 1 })
    }

    /** Closes the current batch and delivers it; nothing is sent when there is nothing new. */
    async flush(): Promise<ReadingBatch> {
        if (this.readings.length === 0 && !this.countsChanged) return undefined
        const batch: ReadingBatch = {
            readings: this.readings,
            faults: this.tallies.map(t => ({ sensor: t.sensor, count: t.count })),
            dropped: this.dropped,
            closedAtMs: ds.millis(),
        }
        this.readings = []
        this.countsChanged = false
        try {
            await this.options.sink.deliver(batch)
        } catch (e) {
            this.failedDeliveries++
        }
        return batch
    }

    /** Starts periodic flushing. */
    start() {
        this.stop()
        const self = this
        this.timer = setInterval(async () => {
            await self.flush()
        }, this.options.flushIntervalMs)
    }

    /** Stops periodic flushing. */
    stop() {
        if (this.timer !== undefined) clearInterval(this.timer)
        this.timer = undefined
    }
}
