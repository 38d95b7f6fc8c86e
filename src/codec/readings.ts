/**
 * Reading batches as SenML packs (RFC 8428).
 *
 * The device has no wall clock, so record times are relative: RFC 8428 §4.5.3
 * reads a time below 2^28 as seconds relative to now, negative in the past.
 * The batch's close time is "now" and each reading carries its age.
 */
import { QUANTITY_UNIT } from "../sensors/datasheet"
import { Reading } from "../sensors/types"
import { SenmlRecord, encodeSenml } from "./senml"

/** Faults counted for one sensor since boot. */
export interface FaultTally {
    sensor: string
    count: number
}

/** The readings of one flush of the pipeline, with its counters. */
export interface ReadingBatch {
    readings: Reading[]
    /** Cumulative per-sensor fault counts (only sensors that had faults). */
    faults: FaultTally[]
    /** Readings dropped because the batch was full, since boot. */
    dropped: number
    /** `ds.millis()` when the batch was closed; reading times are relative to it. */
    closedAtMs: number
}

/** Options for turning a batch into a pack. */
export interface ReadingPackOptions {
    /** SenML base name, e.g. `urn:dev:...:`; record names are `<sensor>/<quantity>`. */
    baseName: string
}

/** SenML record name of a sensor's fault counter. */
export const FAULTS_SUFFIX = "faults"
/** SenML record name of the dropped-readings counter. */
export const DROPPED_NAME = "pipeline/dropped"

/** The SenML records of a batch: one per reading, then fault and drop counters. */
export function readingBatchToSenml(batch: ReadingBatch, options: ReadingPackOptions): SenmlRecord[] {
    const pack: SenmlRecord[] = []
    for (const r of batch.readings) {
        pack.push({
            n: `${r.sensor}/${r.quantity}`,
            u: QUANTITY_UNIT[r.quantity],
            v: r.value,
            // whole milliseconds keep the float short and exact enough
            t: Math.round(r.atMs - batch.closedAtMs) / 1000,
        })
    }
    for (const f of batch.faults) pack.push({ n: `${f.sensor}/${FAULTS_SUFFIX}`, v: f.count })
    if (batch.dropped > 0) pack.push({ n: DROPPED_NAME, v: batch.dropped })
    if (pack.length > 0) pack[0].bn = options.baseName
    return pack
}

/** A batch as application/senml+cbor. */
export async function encodeReadingBatch(batch: ReadingBatch, options: ReadingPackOptions): Promise<Buffer> {
    return await encodeSenml(readingBatchToSenml(batch, options))
}
