/**
 * SenML in CBOR (RFC 8428 §6) read on the host with cbor2, resolved as §4.6
 * describes: base name, time, unit and value applied to each record, base
 * values sticking until a record changes them (§4.1). This is all the
 * device's packs need: a series starts with its name as base name (and a base
 * unit when it changes), and its later records hold only a value and a time.
 */
import { decode } from "cbor2"

/** RFC 8428 §6, Table 6: CBOR labels. */
const LABEL = { bn: -2, bt: -3, bu: -4, bv: -5, n: 0, u: 1, v: 2, vs: 3, vb: 4, s: 5, t: 6, ut: 7, vd: 8 } as const

/** A resolved record. */
export interface SenmlReading {
    /** Base name + name: `<sensor>/<quantity>` for the device's readings, relative to the device the topic names. */
    name: string
    unit?: string
    value?: number
    /** Seconds; below 2^28 relative to now (§4.5.3), negative in the past. */
    time: number
}

/** Decodes and resolves a SenML-CBOR pack; throws on anything but an array of maps. */
export function decodeSenmlCbor(pack: Uint8Array): SenmlReading[] {
    return resolveSenml(decode(pack, { preferMap: true }))
}

/**
 * Resolves a decoded pack (an array of maps with integer labels, as cbor2 or
 * the owner service's reader return it); throws on anything else, and on a
 * field of the wrong type, so no record carries a value it did not mean.
 */
export function resolveSenml(records: unknown): SenmlReading[] {
    if (!Array.isArray(records)) throw new Error("SenML pack must be an array")
    let bn = ""
    let bt = 0
    let bu: string | undefined
    let bv = 0
    return records.map(r => {
        if (!(r instanceof Map)) throw new Error("SenML record must be a map")
        const get = (label: number) => r.get(label)
        if (typeof get(LABEL.bn) === "string") bn = get(LABEL.bn)
        if (typeof get(LABEL.bt) === "number") bt = get(LABEL.bt)
        if (typeof get(LABEL.bu) === "string") bu = get(LABEL.bu)
        if (typeof get(LABEL.bv) === "number") bv = get(LABEL.bv)
        const v = get(LABEL.v)
        const [n, u, t] = [get(LABEL.n), get(LABEL.u), get(LABEL.t)]
        if (
            (n !== undefined && typeof n !== "string") ||
            (u !== undefined && typeof u !== "string") ||
            (t !== undefined && typeof t !== "number")
        )
            throw new Error("SenML name and unit must be text, time a number")
        return {
            name: bn + (n ?? ""),
            unit: u ?? bu,
            value: typeof v === "number" ? bv + v : undefined,
            time: bt + (t ?? 0),
        }
    })
}
