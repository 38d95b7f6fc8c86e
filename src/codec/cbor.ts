/**
 * A small CBOR (RFC 8949) encoder and decoder for the subset the firmware
 * needs: unsigned and negative integers, byte and text strings, arrays, maps,
 * tags, simple values and floats.
 *
 * The encoder always produces the deterministic encoding of RFC 8949 §4.2.1:
 * shortest heads, definite lengths, preferred (shortest exact) floats, map
 * keys in bytewise lexicographic order of their encodings.
 *
 * The decoder treats its input as hostile: every length is checked against
 * what is left, nesting and item counts are bounded, and any failure is a
 * `CborError` with a message that says what and where — never a crash, a
 * hang or a partial value.
 */
import { isValidUtf8 } from "../bytes/utf8"

/** A CBOR data item as the firmware sees it. */
export type CborValue = number | string | boolean | null | undefined | Buffer | CborValue[] | CborMap | CborTag | CborSimple | CborSpan

/** A CBOR map (major type 5). Keys keep their CBOR type (SenML uses integer keys). */
export class CborMap {
    readonly keys: CborValue[] = []
    readonly values: CborValue[] = []

    /** Appends an entry; the encoder sorts entries, so order here does not matter. */
    set(key: CborValue, value: CborValue): CborMap {
        const i = this.indexOf(key)
        if (i >= 0) this.values[i] = value
        else {
            this.keys.push(key)
            this.values.push(value)
        }
        return this
    }

    /** The value stored under an integer or text key, or `undefined`. */
    get(key: number | string): CborValue {
        const i = this.indexOf(key)
        return i >= 0 ? this.values[i] : undefined
    }

    /** Whether an integer or text key is present. */
    has(key: number | string): boolean {
        return this.indexOf(key) >= 0
    }

    /** Number of entries. */
    size(): number {
        return this.keys.length
    }

    private indexOf(key: CborValue): number {
        for (let i = 0; i < this.keys.length; ++i) if (this.keys[i] === key) return i
        return -1
    }
}

/** A tagged data item (major type 6). */
export class CborTag {
    constructor(
        readonly tag: number,
        readonly value: CborValue
    ) {}
}

/** A simple value other than false, true, null and undefined (major type 7). */
export class CborSimple {
    constructor(readonly value: number) {}
}

/**
 * A byte string left where it lies in the decoder's input (`CborDecodeOptions.spanAbove`): bytes
 * `at`..`at + length` of it. A signature of ~8 KB is read in place rather than copied, so a 64 KB heap
 * never holds it twice. It has no encoding of its own.
 */
export class CborSpan {
    constructor(
        readonly at: number,
        readonly length: number
    ) {}
}

/** Raised for any input the decoder refuses, and for values the encoder cannot represent. */
export class CborError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "CborError"
    }
}

/** Limits that keep a hostile input from exhausting the device. */
export interface CborDecodeOptions {
    /** Deepest nesting of arrays, maps and tags. Default 16. */
    maxDepth?: number
    /** Most data items in the whole input. Default 1024. */
    maxItems?: number
    /** Largest input accepted, in bytes. Default 4096. */
    maxBytes?: number
    /**
     * Refuse anything but the deterministic encoding of RFC 8949 §4.2.1
     * (shortest heads, preferred floats, sorted map keys). Default true;
     * the decoder accepts longer heads and non-preferred floats only when false.
     */
    deterministic?: boolean
    /** Where the data item starts in the input; it must end with the input. Default 0. */
    from?: number
    /** Byte strings longer than this decode as a `CborSpan` into the input, not a copy. Default: none. */
    spanAbove?: number
}

const TWO_32 = 4294967296
/** 2^53 - 1: larger integers cannot be held exactly in a number. */
const MAX_SAFE = 9007199254740991

const MT_UNSIGNED = 0
const MT_NEGATIVE = 1
const MT_BYTES = 2
const MT_TEXT = 3
/** Major type of arrays, for `CborWriter.head`. */
export const MT_ARRAY = 4
/** Major type of maps, for `CborWriter.head`. */
export const MT_MAP = 5
const MT_TAG = 6
const MT_SIMPLE = 7

const AI_INDEFINITE = 31

/** Encodes one data item in deterministic CBOR. Throws `CborError` for values it cannot represent. */
export function encodeCbor(value: CborValue): Buffer {
    const w = new CborWriter()
    w.item(value)
    return w.result()
}

/** Decodes exactly one data item filling the whole buffer. */
export function decodeCbor(data: Buffer, options?: CborDecodeOptions): CborValue {
    const opts = options || {}
    const maxBytes = opts.maxBytes === undefined ? 4096 : opts.maxBytes
    const from = opts.from === undefined ? 0 : opts.from
    if (!(data instanceof Buffer)) throw new CborError("input is not a buffer")
    if (!(from >= 0 && from <= data.length)) throw new CborError("start outside the input")
    if (data.length === from) throw new CborError("empty input")
    if (data.length - from > maxBytes) throw new CborError(`input of ${data.length - from} bytes exceeds ${maxBytes}`)
    const reader = new Reader(data, {
        maxDepth: opts.maxDepth === undefined ? 16 : opts.maxDepth,
        maxItems: opts.maxItems === undefined ? 1024 : opts.maxItems,
        deterministic: opts.deterministic !== false,
        spanAbove: opts.spanAbove === undefined ? -1 : opts.spanAbove,
    })
    reader.pos = from
    const value = reader.item(0)
    if (reader.pos !== data.length) throw new CborError(`${data.length - reader.pos} trailing bytes after the data item`)
    return value
}

// ---- encoder ----

const ENCODER_MAX_DEPTH = 32

/**
 * A growable output buffer for CBOR: one allocation per doubling, not one per
 * item. Streaming encoders (SenML, COSE) write heads and items straight into it.
 */
export class CborWriter {
    buf = Buffer.alloc(64)
    len = 0

    private reserve(n: number) {
        if (this.len + n <= this.buf.length) return
        let size = this.buf.length * 2
        while (size < this.len + n) size *= 2
        const bigger = Buffer.alloc(size)
        bigger.blitAt(0, this.buf, 0, this.len)
        this.buf = bigger
    }

    byte(b: number) {
        this.reserve(1)
        this.buf[this.len++] = b
    }

    bytes(b: Buffer) {
        this.reserve(b.length)
        this.buf.blitAt(this.len, b, 0, b.length)
        this.len += b.length
    }

    /** A head: major type and argument, in the shortest form (RFC 8949 §4.2.1). */
    head(major: number, arg: number) {
        const mt = major << 5
        if (arg < 24) this.byte(mt | arg)
        else if (arg < 0x100) {
            this.byte(mt | 24)
            this.byte(arg)
        } else if (arg < 0x10000) {
            this.byte(mt | 25)
            this.byte(arg >> 8)
            this.byte(arg & 0xff)
        } else if (arg < TWO_32) {
            this.byte(mt | 26)
            this.u32(arg)
        } else {
            this.byte(mt | 27)
            const hi = Math.floor(arg / TWO_32)
            this.u32(hi)
            // not `arg % TWO_32`: the VM's remainder loses the low word of values above 2^32
            this.u32(arg - hi * TWO_32)
        }
    }

    private u32(v: number) {
        this.byte((v >>> 24) & 0xff)
        this.byte((v >>> 16) & 0xff)
        this.byte((v >>> 8) & 0xff)
        this.byte(v & 0xff)
    }

    /** Writes any data item in deterministic CBOR. */
    item(value: CborValue) {
        writeItem(this, value, 0)
    }

    /** The bytes written so far. */
    result(): Buffer {
        return this.buf.slice(0, this.len)
    }
}

function isInteger(v: number) {
    return Math.floor(v) === v && Math.abs(v) <= MAX_SAFE
}

function writeItem(w: CborWriter, v: CborValue, depth: number) {
    if (depth > ENCODER_MAX_DEPTH) throw new CborError("value nested too deeply")
    if (v === false) w.byte(0xf4)
    else if (v === true) w.byte(0xf5)
    else if (v === null) w.byte(0xf6)
    else if (v === undefined) w.byte(0xf7)
    else if (typeof v === "number") {
        if (isInteger(v)) {
            if (v >= 0) w.head(MT_UNSIGNED, v)
            else w.head(MT_NEGATIVE, -1 - v)
        } else writeFloat(w, v)
    } else if (typeof v === "string") {
        const b = Buffer.from(v)
        w.head(MT_TEXT, b.length)
        w.bytes(b)
    } else if (v instanceof Buffer) {
        w.head(MT_BYTES, v.length)
        w.bytes(v)
    } else if (Array.isArray(v)) {
        w.head(MT_ARRAY, v.length)
        for (const e of v) writeItem(w, e, depth + 1)
    } else if (v instanceof CborMap) {
        writeMap(w, v, depth)
    } else if (v instanceof CborTag) {
        if (!isInteger(v.tag) || v.tag < 0) throw new CborError("invalid tag number")
        w.head(MT_TAG, v.tag)
        writeItem(w, v.value, depth + 1)
    } else if (v instanceof CborSimple) {
        const s = v.value
        // RFC 8949 §3.3: 24..31 are not valid simple values; 20..23 have their own JS values
        if (!isInteger(s) || s < 0 || s > 255 || (s >= 20 && s < 32)) throw new CborError(`invalid simple value ${s}`)
        if (s < 24) w.byte(0xe0 | s)
        else {
            w.byte(0xf8)
            w.byte(s)
        }
    } else throw new CborError("value has no CBOR representation")
}

/**
 * The sort key of a map key whose encoding is one byte (integers -24..23):
 * that byte. -1 for any other key.
 */
function oneByteKey(k: CborValue): number {
    if (typeof k !== "number" || !isInteger(k) || k < -24 || k > 23) return -1
    return k >= 0 ? k : 0x20 + (-1 - k)
}

function writeMap(w: CborWriter, m: CborMap, depth: number) {
    const n = m.size()
    const order: number[] = []
    let small = true
    for (let i = 0; i < n; ++i) {
        order.push(i)
        if (oneByteKey(m.keys[i]) < 0) small = false
    }
    // RFC 8949 §4.2.1: keys sorted by the bytewise lexicographic order of their encodings.
    // One-byte keys (SenML's labels, COSE's header labels) sort by that byte, cheaply.
    let keys: Buffer[] = undefined
    if (small) order.sort((a, b) => oneByteKey(m.keys[a]) - oneByteKey(m.keys[b]))
    else {
        keys = m.keys.map(k => encodeCbor(k))
        order.sort((a, b) => compareBytes(keys[a], keys[b]))
    }
    for (let i = 1; i < n; ++i) {
        const a = order[i - 1]
        const b = order[i]
        const same = small ? oneByteKey(m.keys[a]) === oneByteKey(m.keys[b]) : compareBytes(keys[a], keys[b]) === 0
        if (same) throw new CborError("duplicate map key")
    }
    w.head(MT_MAP, n)
    for (const i of order) {
        if (small) writeItem(w, m.keys[i], depth + 1)
        else w.bytes(keys[i])
        writeItem(w, m.values[i], depth + 1)
    }
}

/** Bytewise lexicographic comparison (shorter prefix first). */
export function compareBytes(a: Buffer, b: Buffer): number {
    const n = Math.min(a.length, b.length)
    for (let i = 0; i < n; ++i) if (a[i] !== b[i]) return a[i] - b[i]
    return a.length - b.length
}

/**
 * Float conversions go through this one buffer (no allocation per float: a
 * pack of readings holds dozens). The VM stores floats little-endian, CBOR wants big-endian.
 */
const FLOAT_SCRATCH = Buffer.alloc(8)
/** `preferredFloat`'s answers besides half-precision bits. */
const SINGLE = -4
const DOUBLE = -8

/**
 * RFC 8949 §4.2.2 preferred serialization: the shortest float that holds `v`
 * exactly. Returns the half-precision bits (0..0xffff), or `SINGLE` or
 * `DOUBLE` with the value's little-endian bytes left in `FLOAT_SCRATCH`.
 */
function preferredFloat(v: number): number {
    if (v !== v) return 0x7e00 // the canonical NaN of §4.2.2
    FLOAT_SCRATCH.setAt(0, "f32", v)
    if (FLOAT_SCRATCH.getAt(0, "f32") === v) {
        const half = halfFromSingleBits(FLOAT_SCRATCH.getAt(0, "u32"))
        return half >= 0 ? half : SINGLE
    }
    FLOAT_SCRATCH.setAt(0, "f64", v)
    return DOUBLE
}

function writeFloat(w: CborWriter, v: number) {
    const form = preferredFloat(v)
    if (form >= 0) {
        w.byte(0xf9)
        w.byte(form >> 8)
        w.byte(form & 0xff)
        return
    }
    w.byte(form === SINGLE ? 0xfa : 0xfb)
    for (let i = -form - 1; i >= 0; --i) w.byte(FLOAT_SCRATCH[i])
}

/** The IEEE 754 half-precision bits for a single-precision value, or -1 if it does not fit exactly. */
function halfFromSingleBits(bits: number): number {
    const sign = (bits >>> 16) & 0x8000
    const exp = ((bits >>> 23) & 0xff) - 127
    const mant = bits & 0x7fffff
    if (exp === 128) return mant === 0 ? sign | 0x7c00 : -1 // ±Infinity (NaN handled before)
    if (exp === -127 && mant === 0) return sign // ±0
    if (exp >= -14 && exp <= 15) {
        if ((mant & 0x1fff) !== 0) return -1
        return sign | ((exp + 15) << 10) | (mant >> 13)
    }
    if (exp >= -24 && exp < -14) {
        const full = 0x800000 | mant
        const shift = 13 + (-14 - exp)
        if ((full & ((1 << shift) - 1)) !== 0) return -1
        return sign | (full >> shift)
    }
    return -1
}

// ---- decoder ----

interface ReaderLimits {
    maxDepth: number
    maxItems: number
    deterministic: boolean
    /** -1: every byte string is copied. */
    spanAbove: number
}

class Reader {
    pos = 0
    private items = 0

    constructor(
        readonly data: Buffer,
        readonly limits: ReaderLimits
    ) {}

    private fail(msg: string): never {
        throw new CborError(`${msg} at offset ${this.pos}`)
    }

    private need(n: number) {
        if (n > this.data.length - this.pos) this.fail(`truncated: ${n} bytes needed, ${this.data.length - this.pos} left`)
    }

    private u8(): number {
        this.need(1)
        return this.data[this.pos++]
    }

    private uint(n: number): number {
        this.need(n)
        let v = 0
        for (let i = 0; i < n; ++i) v = v * 256 + this.data[this.pos++]
        return v
    }

    /** Reads the argument of a head whose additional information is `ai`. */
    private argument(ai: number, major: number): number {
        if (ai < 24) return ai
        if (ai === AI_INDEFINITE) this.fail("indefinite length is not accepted")
        if (ai > 27) this.fail(`reserved additional information ${ai}`)
        const size = 1 << (ai - 24)
        let v: number
        if (size === 8) {
            const hi = this.uint(4)
            const lo = this.uint(4)
            if (hi > 0x1fffff) this.fail("integer above 2^53")
            v = hi * TWO_32 + lo
        } else v = this.uint(size)
        if (this.limits.deterministic) {
            const shortest = ai === 24 ? 24 : ai === 25 ? 0x100 : ai === 26 ? 0x10000 : TWO_32
            if (v < shortest) this.fail(`non-shortest head for major type ${major}`)
        }
        return v
    }

    item(depth: number): CborValue {
        if (depth > this.limits.maxDepth) this.fail(`nesting deeper than ${this.limits.maxDepth}`)
        if (++this.items > this.limits.maxItems) this.fail(`more than ${this.limits.maxItems} data items`)
        const ib = this.u8()
        const major = ib >> 5
        const ai = ib & 0x1f
        if (major === MT_SIMPLE) return this.simpleOrFloat(ai)
        const arg = this.argument(ai, major)
        switch (major) {
            case MT_UNSIGNED:
                return arg
            case MT_NEGATIVE:
                return -1 - arg
            case MT_BYTES:
                this.need(arg)
                this.pos += arg
                if (this.limits.spanAbove >= 0 && arg > this.limits.spanAbove) return new CborSpan(this.pos - arg, arg)
                return this.data.slice(this.pos - arg, this.pos)
            case MT_TEXT:
                return this.text(arg)
            case MT_ARRAY: {
                // every element takes at least one byte: a length beyond that is a lie
                this.need(arg)
                const arr: CborValue[] = []
                for (let i = 0; i < arg; ++i) arr.push(this.item(depth + 1))
                return arr
            }
            case MT_MAP:
                return this.map(arg, depth)
            default: {
                const value = this.item(depth + 1)
                return new CborTag(arg, value)
            }
        }
    }

    private text(len: number): string {
        this.need(len)
        const start = this.pos
        this.pos += len
        const bytes = this.data.slice(start, this.pos)
        if (!isValidUtf8(bytes)) {
            this.pos = start
            this.fail("text string is not valid UTF-8")
        }
        return bytes.toString("utf-8")
    }

    private map(n: number, depth: number): CborMap {
        this.need(2 * n)
        const m = new CborMap()
        const seen: Buffer[] = []
        for (let i = 0; i < n; ++i) {
            const keyStart = this.pos
            const key = this.item(depth + 1)
            const keyBytes = this.data.slice(keyStart, this.pos)
            if (this.limits.deterministic) {
                // sorted order makes a duplicate the immediate predecessor
                const prev = seen.length > 0 ? seen[seen.length - 1] : undefined
                if (prev && compareBytes(prev, keyBytes) >= 0)
                    this.fail(compareBytes(prev, keyBytes) === 0 ? "duplicate map key" : "map keys not in sorted order")
            } else {
                for (const k of seen) if (compareBytes(k, keyBytes) === 0) this.fail("duplicate map key")
            }
            seen.push(keyBytes)
            m.keys.push(key)
            m.values.push(this.item(depth + 1))
        }
        return m
    }

    private simpleOrFloat(ai: number): CborValue {
        if (ai < 20) return new CborSimple(ai)
        switch (ai) {
            case 20:
                return false
            case 21:
                return true
            case 22:
                return null
            case 23:
                return undefined
            case 24: {
                const s = this.u8()
                // RFC 8949 §3.3: simple values below 32 must use the one-byte form
                if (s < 32) this.fail(`simple value ${s} in two-byte form`)
                return new CborSimple(s)
            }
            case 25:
                return this.float(2)
            case 26:
                return this.float(4)
            case 27:
                return this.float(8)
            case AI_INDEFINITE:
                this.fail("unexpected break")
            default:
                this.fail(`reserved additional information ${ai}`)
        }
        return undefined
    }

    private float(size: number): number {
        const start = this.pos - 1
        this.need(size)
        const d = this.data
        let v: number
        if (size === 2) v = halfToNumber((d[this.pos] << 8) | d[this.pos + 1])
        else {
            for (let i = 0; i < size; ++i) FLOAT_SCRATCH[i] = d[this.pos + size - 1 - i]
            v = size === 4 ? FLOAT_SCRATCH.getAt(0, "f32") : FLOAT_SCRATCH.getAt(0, "f64")
        }
        this.pos += size
        if (this.limits.deterministic) {
            const form = preferredFloat(v)
            if ((form >= 0 ? 2 : -form) !== size) {
                this.pos = start
                this.fail("float not in its shortest form")
            }
        }
        return v
    }
}

/** RFC 8949 Appendix D: half-precision bits to a number. */
function halfToNumber(half: number): number {
    const exp = (half >> 10) & 0x1f
    const mant = half & 0x3ff
    let val: number
    if (exp === 0) val = mant * Math.pow(2, -24)
    else if (exp !== 31) val = (mant + 1024) * Math.pow(2, exp - 25)
    else val = mant === 0 ? Infinity : NaN
    return (half & 0x8000) !== 0 ? -val : val
}
