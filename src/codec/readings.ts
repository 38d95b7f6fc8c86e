/**
 * Reading batches as SenML packs (RFC 8428) in CBOR, shaped for few bytes on
 * the wire while any SenML library reads them without help:
 *
 *   [ {0: "aht20/faults", 2: 3},                          counters first: no base name, no unit yet
 *     {-2: "shtc3/temperature", -4: "Cel", 2: 20.25, 6: -4.5},   a series: base name = its name, base unit
 *     {2: 20.5, 6: -2.5},                                 later records: only value and time (§4.1: base values stick)
 *     {-2: "sht30/temperature", 2: 20.75, 6: -3.25},      same unit: the base unit is not repeated
 *     {-2: "shtc3/humidity", -4: "%RH", 2: 44, 6: -4.5}, … ]
 *
 * Names are `<sensor>/<quantity>` relative to the device, which the topic
 * names (`things/<id>/up/readings`, bound into the COSE tag as external AAD),
 * so no record repeats the device id. Series are ordered by unit, so the base
 * unit changes as rarely as possible.
 *
 * Times: the device has no wall clock, so a time is the reading's age at the
 * batch's close, in seconds, negative (RFC 8428 §4.5.3: below 2^28 a time is
 * relative to now). Ages are rounded to `TIME_RESOLUTION_S` = 2^-8 s: a binary
 * fraction holds exactly in a float, and ages up to 8 s (a batch spans 5 s)
 * fit CBOR's half precision, 3 bytes, where whole milliseconds would need a
 * double, 9 bytes. Older ones take a single (5 bytes), still exact. No base
 * time: every time is already relative to the same instant, so it would be 0.
 */
import * as ds from "@devicescript/core"
import { QUANTITY_UNIT } from "../sensors/datasheet"
import { Quantity, Reading } from "../sensors/types"
import { CborWriter, MT_ARRAY, MT_MAP } from "./cbor"
import { SenmlLabel } from "./senml"

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

/** SenML record name suffix of a sensor's fault counter. */
export const FAULTS_SUFFIX = "faults"
/** SenML record name of the dropped-readings counter. */
export const DROPPED_NAME = "pipeline/dropped"
/** Subdivisions of a second in reading times: 2^8, so a time is a binary fraction. */
export const TIME_STEPS_PER_S = 256
/** Records written between two yields (the VM's step budget). */
const RECORDS_PER_YIELD = 16
/** Units in the order series are written. */
const QUANTITY_ORDER: Quantity[] = ["temperature", "humidity", "pressure", "gas"]

/** A reading's SenML time: its age at `closedAtMs` in seconds, negative, rounded to 1/`TIME_STEPS_PER_S`. */
export function readingTime(atMs: number, closedAtMs: number): number {
    return Math.round(((atMs - closedAtMs) * TIME_STEPS_PER_S) / 1000) / TIME_STEPS_PER_S
}

/** Indices into `readings` grouped per series (sensor and quantity), series ordered by unit, then first seen; readings keep their order. */
function seriesOf(readings: Reading[]): number[][] {
    const series: number[][] = []
    for (const q of QUANTITY_ORDER) {
        const names: string[] = []
        for (let i = 0; i < readings.length; ++i) {
            const r = readings[i]
            if (r.quantity !== q) continue
            const at = names.indexOf(r.sensor)
            if (at < 0) {
                names.push(r.sensor)
                series.push([i])
            } else series[series.length - names.length + at].push(i)
        }
    }
    return series
}

/**
 * A batch as application/senml+cbor: counters, then one run of records per
 * series. Deterministic CBOR (RFC 8949 §4.2.1: map keys in the bytewise order
 * of their encodings, 2 < 6 < -2 < -4). Yields now and then: a pack of 64
 * readings is more than the VM's step budget.
 */
export async function encodeReadingBatch(batch: ReadingBatch): Promise<Buffer> {
    const w = new CborWriter()
    const { readings, faults, dropped, closedAtMs } = batch
    w.head(MT_ARRAY, faults.length + (dropped > 0 ? 1 : 0) + readings.length)
    for (const f of faults) {
        w.head(MT_MAP, 2)
        w.item(SenmlLabel.n)
        w.item(`${f.sensor}/${FAULTS_SUFFIX}`)
        w.item(SenmlLabel.v)
        w.item(f.count)
    }
    if (dropped > 0) {
        w.head(MT_MAP, 2)
        w.item(SenmlLabel.n)
        w.item(DROPPED_NAME)
        w.item(SenmlLabel.v)
        w.item(dropped)
    }
    let unit: string = undefined
    let written = 0
    for (const indices of seriesOf(readings)) {
        for (let k = 0; k < indices.length; ++k) {
            const r = readings[indices[k]]
            const u = QUANTITY_UNIT[r.quantity]
            const first = k === 0
            const newUnit = first && u !== unit
            w.head(MT_MAP, first ? (newUnit ? 4 : 3) : 2)
            w.item(SenmlLabel.v)
            w.item(r.value)
            w.item(SenmlLabel.t)
            w.item(readingTime(r.atMs, closedAtMs))
            if (first) {
                w.item(SenmlLabel.bn)
                w.item(`${r.sensor}/${r.quantity}`)
            }
            if (newUnit) {
                w.item(SenmlLabel.bu)
                w.item(u)
                unit = u
            }
            if (++written % RECORDS_PER_YIELD === 0) await ds.sleep(0)
        }
    }
    return w.result()
}

/** `count` readings of `batch` from `start`; the counters ride with the first part. */
function part(batch: ReadingBatch, start: number, count: number): ReadingBatch {
    return {
        readings: batch.readings.slice(start, start + count),
        faults: start === 0 ? batch.faults : [],
        dropped: start === 0 ? batch.dropped : 0,
        closedAtMs: batch.closedAtMs,
    }
}

/**
 * A batch as as few packs of at most `maxBytes` as it takes, readings in
 * order, counters in the first. Each pack takes as many readings as fit: a
 * pack that is too large is cut where its bytes say it should be and encoded again.
 */
export async function encodeReadingPacks(batch: ReadingBatch, maxBytes: number): Promise<Buffer[]> {
    const packs: Buffer[] = []
    const total = batch.readings.length
    let start = 0
    for (;;) {
        let count = total - start
        let pack = await encodeReadingBatch(part(batch, start, count))
        while (pack.length > maxBytes && count > 1) {
            count = Math.max(1, Math.min(count - 1, Math.floor((count * maxBytes) / pack.length)))
            pack = await encodeReadingBatch(part(batch, start, count))
        }
        packs.push(pack)
        start += count
        // a batch of counters only is one pack too
        if (start >= total) return packs
    }
}
