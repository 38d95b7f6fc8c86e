/**
 * The seam between the sensor pipeline and whatever carries readings off the device.
 * Today a console printer; the secure MQTT uplink implements the same interface.
 */
import { Reading } from "../sensors/types"

/** Faults counted for one sensor since boot. */
export interface FaultTally {
    sensor: string
    count: number
}

/** What the pipeline hands over at each flush. */
export interface ReadingBatch {
    readings: Reading[]
    /** Cumulative per-sensor fault counts (only sensors that had faults). */
    faults: FaultTally[]
    /** Readings dropped because the batch was full, since boot. */
    dropped: number
    /** `ds.millis()` when the batch was closed; reading times are relative to it. */
    closedAtMs: number
}

/** Takes batches of readings off the device. */
export interface ReadingSink {
    /** Delivers one batch. May throw; the caller counts the failure. */
    deliver(batch: ReadingBatch): Promise<void>
}
