/**
 * SenML (RFC 8428) packs in CBOR: records as CBOR maps with the integer labels
 * of RFC 8428 §6, Table 4, base fields resolved as §4.6 says.
 */
import * as ds from "@devicescript/core"
import { CborDecodeOptions, CborMap, CborWriter, MT_ARRAY, MT_MAP, decodeCbor } from "./cbor"

/** RFC 8428 §6, Table 4: CBOR labels of the SenML fields. */
export const SenmlLabel = {
    bver: -1,
    bn: -2,
    bt: -3,
    bu: -4,
    bv: -5,
    bs: -6,
    n: 0,
    u: 1,
    v: 2,
    vs: 3,
    vb: 4,
    s: 5,
    t: 6,
    ut: 7,
    vd: 8,
}

/** One SenML record; field names as in RFC 8428 §4.1 and §4.2. */
export interface SenmlRecord {
    bver?: number
    bn?: string
    bt?: number
    bu?: string
    bv?: number
    bs?: number
    n?: string
    u?: string
    v?: number
    vs?: string
    vb?: boolean
    vd?: Buffer
    s?: number
    t?: number
    ut?: number
}

/** A record with base fields applied (RFC 8428 §4.6). */
export interface ResolvedSenmlRecord {
    name: string
    unit?: string
    value?: number
    stringValue?: string
    booleanValue?: boolean
    dataValue?: Buffer
    sum?: number
    /** Seconds; below 2^28 it is relative to now (RFC 8428 §4.5.3). */
    time: number
    updateTime?: number
}

/** Raised for a pack that is valid CBOR but not valid SenML. */
export class SenmlError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "SenmlError"
    }
}

const NUMBER_FIELDS = ["bver", "bt", "bv", "bs", "v", "s", "t", "ut"]
const STRING_FIELDS = ["bn", "bu", "n", "u", "vs"]
/** Fields in the order of their labels' CBOR encodings (0..8, then -1..-6): RFC 8949 §4.2.1 map order. */
const FIELD_ORDER = ["n", "u", "v", "vs", "vb", "s", "t", "ut", "vd", "bver", "bn", "bt", "bu", "bv", "bs"]

/** Records encoded between two yields: a pack of 64 readings with true (fractional) times exceeds the VM's step budget. */
const RECORDS_PER_YIELD = 16

/**
 * Encodes a pack as application/senml+cbor. Writes the maps directly in
 * deterministic key order: far cheaper on the VM than building `CborMap`s.
 */
export async function encodeSenml(pack: SenmlRecord[]): Promise<Buffer> {
    const w = new CborWriter()
    w.head(MT_ARRAY, pack.length)
    for (let i = 0; i < pack.length; ++i) {
        if (i % RECORDS_PER_YIELD === RECORDS_PER_YIELD - 1) await ds.sleep(0)
        const rec = pack[i]
        const r = rec as any
        let fields = 0
        for (const field of FIELD_ORDER) if (r[field] !== undefined) fields++
        w.head(MT_MAP, fields)
        for (const field of FIELD_ORDER) {
            const v = r[field]
            if (v === undefined) continue
            w.item((SenmlLabel as any)[field])
            w.item(v)
        }
    }
    return w.result()
}

/**
 * Decodes an application/senml+cbor pack and checks each field's type.
 * Unknown labels are ignored, as RFC 8428 §4.4 asks of labels that are not must-understand.
 */
export function decodeSenml(data: Buffer, options?: CborDecodeOptions): SenmlRecord[] {
    const root = decodeCbor(data, options)
    if (!Array.isArray(root)) throw new SenmlError("pack is not an array")
    const pack: SenmlRecord[] = []
    for (let i = 0; i < root.length; ++i) {
        const m = root[i]
        if (!(m instanceof CborMap)) throw new SenmlError(`record ${i} is not a map`)
        const rec: any = {}
        for (const field of FIELD_ORDER) {
            const label = (SenmlLabel as any)[field]
            if (!m.has(label)) continue
            const v = m.get(label)
            if (NUMBER_FIELDS.indexOf(field) >= 0) {
                if (typeof v !== "number" || v !== v) throw new SenmlError(`record ${i}: ${field} must be a number`)
            } else if (STRING_FIELDS.indexOf(field) >= 0) {
                if (typeof v !== "string") throw new SenmlError(`record ${i}: ${field} must be text`)
            } else if (field === "vb") {
                if (typeof v !== "boolean") throw new SenmlError(`record ${i}: vb must be a boolean`)
            } else if (!(v instanceof Buffer)) throw new SenmlError(`record ${i}: vd must be a byte string`)
            rec[field] = v
        }
        pack.push(rec)
    }
    return pack
}

/** Applies base fields to every record (RFC 8428 §4.6) and validates names (§4.5.1) and values (§4.5). */
export function resolveSenml(pack: SenmlRecord[]): ResolvedSenmlRecord[] {
    let bn = ""
    let bt = 0
    let bu: string = undefined
    let bv = 0
    let bs = 0
    const out: ResolvedSenmlRecord[] = []
    for (let i = 0; i < pack.length; ++i) {
        const r = pack[i]
        if (r.bver !== undefined && r.bver > 10) throw new SenmlError(`record ${i}: unsupported SenML version ${r.bver}`)
        if (r.bn !== undefined) bn = r.bn
        if (r.bt !== undefined) bt = r.bt
        if (r.bu !== undefined) bu = r.bu
        if (r.bv !== undefined) bv = r.bv
        if (r.bs !== undefined) bs = r.bs
        const name = bn + (r.n || "")
        if (!isValidSenmlName(name)) throw new SenmlError(`record ${i}: invalid name "${name}"`)
        let values = 0
        if (r.v !== undefined) values++
        if (r.vs !== undefined) values++
        if (r.vb !== undefined) values++
        if (r.vd !== undefined) values++
        // §4.5.2: exactly one value field, or none when a sum is present
        if (values > 1 || (values === 0 && r.s === undefined && r.bs === undefined))
            throw new SenmlError(`record ${i}: needs exactly one value`)
        const rec: ResolvedSenmlRecord = {
            name,
            unit: r.u !== undefined ? r.u : bu,
            time: bt + (r.t ?? 0),
        }
        if (r.v !== undefined) rec.value = bv + r.v
        if (r.vs !== undefined) rec.stringValue = r.vs
        if (r.vb !== undefined) rec.booleanValue = r.vb
        if (r.vd !== undefined) rec.dataValue = r.vd
        if (r.s !== undefined) rec.sum = bs + r.s
        if (r.ut !== undefined) rec.updateTime = r.ut
        out.push(rec)
    }
    return out
}

/** RFC 8428 §4.5.1: A-Z a-z 0-9 - : . / _ and starting with a letter or digit. */
export function isValidSenmlName(name: string): boolean {
    if (name.length === 0) return false
    for (let i = 0; i < name.length; ++i) {
        const c = name.charCodeAt(i)
        const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
        if (alnum) continue
        if (i === 0) return false
        if (c !== 0x2d && c !== 0x3a && c !== 0x2e && c !== 0x2f && c !== 0x5f) return false
    }
    return true
}
