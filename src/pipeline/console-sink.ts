/**
 * Prints each batch on the console: the SenML-CBOR pack in hex, for tools to
 * pick up, and a short human line.
 *
 * The runtime cuts a log line at about 280 characters, so the hex is split:
 * `senml-cbor <batch> <part>/<parts> <hex>`.
 */
import { encodeReadingBatch, ReadingBatch } from "../codec/readings"
import { QUANTITY_UNIT } from "../sensors/datasheet"
import { ReadingSink } from "./sink"

/** Line prefix of the hex pack. */
export const SENML_LINE_PREFIX = "senml-cbor"
/** Bytes of pack per line (twice as many hex digits). */
const BYTES_PER_LINE = 100

/** A sink that prints batches. */
export class ConsoleSink implements ReadingSink {
    /** Batches printed so far. */
    batches = 0

    async deliver(batch: ReadingBatch): Promise<void> {
        const pack = await encodeReadingBatch(batch)
        printHexLines(`${SENML_LINE_PREFIX} ${this.batches++}`, pack)
        console.log(summarize(batch, pack.length))
    }
}

/** Prints a buffer as `<prefix> <part>/<parts> <hex>` lines short enough for the log. */
export function printHexLines(prefix: string, data: Buffer) {
    const parts = Math.max(1, Math.ceil(data.length / BYTES_PER_LINE))
    for (let i = 0; i < parts; ++i) {
        // slice() does not clamp its end on this VM: past the end it pads with zeros
        const chunk = data.slice(i * BYTES_PER_LINE, Math.min(data.length, (i + 1) * BYTES_PER_LINE))
        console.log(`${prefix} ${i + 1}/${parts} ${chunk.toString("hex")}`)
    }
}

/** One human line: the latest value of each sensor quantity, and counters. */
export function summarize(batch: ReadingBatch, packBytes: number): string {
    const latest: string[] = []
    const seen: string[] = []
    for (let i = batch.readings.length - 1; i >= 0; --i) {
        const r = batch.readings[i]
        const key = `${r.sensor}/${r.quantity}`
        if (seen.indexOf(key) >= 0) continue
        seen.push(key)
        latest.unshift(`${key}=${r.value}${QUANTITY_UNIT[r.quantity]}`)
    }
    let line = `${batch.readings.length} readings, ${packBytes} B: ${latest.join(" ")}`
    for (const f of batch.faults) line += ` ${f.sensor}:faults=${f.count}`
    if (batch.dropped > 0) line += ` dropped=${batch.dropped}`
    return line
}
