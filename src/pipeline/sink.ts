/**
 * The seam between the sensor pipeline and whatever carries readings off the
 * device: the console sink, or the secure uplink.
 */
import { ReadingBatch } from "../codec/readings"

/** Takes batches of readings off the device. */
export interface ReadingSink {
    /** Delivers one batch. May throw; the caller counts the failure. */
    deliver(batch: ReadingBatch): Promise<void>
}
