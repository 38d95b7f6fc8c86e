/**
 * The owner service's CBOR reader (RFC 8949): one pass over hostile bytes,
 * for the verification path where every microsecond counts. cbor2 stays the
 * independent cross-check in the tests.
 *
 * It reads the subset devices send and refuses the rest with a `CborError`
 * that says what and where, never a crash or a partial value:
 * - definite lengths only (the device encodes deterministically, RFC 8949 §4.2.1);
 * - integers only while JavaScript holds them exactly (|n| ≤ 2^53 − 1): no BigInt
 *   ever leaves this module, so nothing downstream meets one (JSON.stringify throws on it);
 * - nesting, item count and every length bounded by what is left of the input;
 * - text must be valid UTF-8 (§3.1: "a text string ... encoded as UTF-8");
 * - `decodeCbor` refuses trailing bytes (§5.3.1: not a well-formed single item).
 *
 * Values: numbers, strings, `Buffer` (a view into the input, not a copy),
 * arrays, `Map`, `CborTagged`, booleans, null and undefined.
 */

/** A tagged item (major type 6). */
export class CborTagged {
    constructor(
        readonly tag: number,
        readonly value: CborItem
    ) {}
}

/** What the reader returns. */
export type CborItem = number | string | boolean | null | undefined | Buffer | CborItem[] | Map<CborItem, CborItem> | CborTagged

/** Why bytes are not the CBOR this reader takes. */
export class CborError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "CborError"
    }
}

/** Bounds of one decode. */
export interface CborLimits {
    /** Arrays, maps and tags inside each other. Default 8. */
    maxDepth?: number
    /** Data items in total. Default 4096. */
    maxItems?: number
}

const MAJOR_UNSIGNED = 0
const MAJOR_NEGATIVE = 1
const MAJOR_BYTES = 2
const MAJOR_TEXT = 3
const MAJOR_ARRAY = 4
const MAJOR_MAP = 5
const MAJOR_TAG = 6
const MAJOR_SIMPLE = 7

/** Additional information 31: indefinite length (§3.2.1), refused here. */
const AI_INDEFINITE = 31
const SIMPLE_FALSE = 20
const SIMPLE_TRUE = 21
const SIMPLE_NULL = 22
const SIMPLE_UNDEFINED = 23
const FLOAT16 = 25
const FLOAT32 = 26
const FLOAT64 = 27

const utf8 = new TextDecoder("utf-8", { fatal: true })

class Reader {
    pos = 0
    items = 0

    constructor(
        readonly data: Buffer,
        readonly maxDepth: number,
        readonly maxItems: number
    ) {}

    fail(what: string): never {
        throw new CborError(`${what} at byte ${this.pos}`)
    }

    need(n: number) {
        if (n > this.data.length - this.pos) this.fail(`${n} bytes needed, ${this.data.length - this.pos} left`)
    }

    /** The argument of a head (§3): a length, a count, an integer's value, a tag number. */
    argument(ai: number): number {
        const d = this.data
        if (ai < 24) return ai
        if (ai === 24) {
            this.need(1)
            return d[this.pos++]
        }
        if (ai === 25) {
            this.need(2)
            const v = d.readUInt16BE(this.pos)
            this.pos += 2
            return v
        }
        if (ai === 26) {
            this.need(4)
            const v = d.readUInt32BE(this.pos)
            this.pos += 4
            return v
        }
        if (ai === 27) {
            this.need(8)
            const high = d.readUInt32BE(this.pos)
            // above 2^53 - 1 a number is no longer exact
            if (high > 0x1fffff) this.fail("integer beyond 2^53 - 1")
            const v = high * 0x1_0000_0000 + d.readUInt32BE(this.pos + 4)
            this.pos += 8
            return v
        }
        if (ai === AI_INDEFINITE) this.fail("indefinite length")
        return this.fail(`reserved additional information ${ai}`)
    }

    item(depth: number): CborItem {
        if (++this.items > this.maxItems) this.fail(`more than ${this.maxItems} items`)
        this.need(1)
        const head = this.data[this.pos++]
        const major = head >> 5
        const ai = head & 0x1f
        if (major === MAJOR_SIMPLE) return this.simple(ai)
        const n = this.argument(ai)
        switch (major) {
            case MAJOR_UNSIGNED:
                return n
            case MAJOR_NEGATIVE:
                return -1 - n
            case MAJOR_BYTES: {
                this.need(n)
                const b = this.data.subarray(this.pos, this.pos + n)
                this.pos += n
                return b
            }
            case MAJOR_TEXT: {
                this.need(n)
                const end = this.pos + n
                let ascii = true
                for (let i = this.pos; i < end; i++) if (this.data[i] > 0x7f) ascii = false
                let s: string
                try {
                    // names and units are ASCII: the fast path; anything else is checked as UTF-8
                    s = ascii ? this.data.toString("latin1", this.pos, end) : utf8.decode(this.data.subarray(this.pos, end))
                } catch {
                    return this.fail("text is not UTF-8")
                }
                this.pos = end
                return s
            }
            case MAJOR_ARRAY: {
                if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`)
                // each element takes at least a byte: a count beyond what is left is a lie, refused before allocating
                this.need(n)
                const a: CborItem[] = new Array(n)
                for (let i = 0; i < n; i++) a[i] = this.item(depth + 1)
                return a
            }
            case MAJOR_MAP: {
                if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`)
                this.need(2 * n)
                const m = new Map<CborItem, CborItem>()
                for (let i = 0; i < n; i++) {
                    const k = this.item(depth + 1)
                    if (m.has(k)) this.fail("duplicate map key")
                    m.set(k, this.item(depth + 1))
                }
                return m
            }
            case MAJOR_TAG:
                if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`)
                return new CborTagged(n, this.item(depth + 1))
        }
        return this.fail("unreachable")
    }

    simple(ai: number): CborItem {
        const d = this.data
        switch (ai) {
            case SIMPLE_FALSE:
                return false
            case SIMPLE_TRUE:
                return true
            case SIMPLE_NULL:
                return null
            case SIMPLE_UNDEFINED:
                return undefined
            case FLOAT16: {
                this.need(2)
                const v = halfToNumber(d.readUInt16BE(this.pos))
                this.pos += 2
                return v
            }
            case FLOAT32: {
                this.need(4)
                const v = d.readFloatBE(this.pos)
                this.pos += 4
                return v
            }
            case FLOAT64: {
                this.need(8)
                const v = d.readDoubleBE(this.pos)
                this.pos += 8
                return v
            }
        }
        return this.fail(ai === AI_INDEFINITE ? "break outside an indefinite item" : `simple value ${ai}`)
    }
}

/** IEEE 754 half precision (RFC 8949 Appendix D). */
function halfToNumber(h: number): number {
    const exp = (h >> 10) & 0x1f
    const mant = h & 0x3ff
    const sign = h & 0x8000 ? -1 : 1
    if (exp === 0) return sign * mant * 2 ** -24
    if (exp === 31) return mant === 0 ? sign * Infinity : NaN
    return sign * (mant + 1024) * 2 ** (exp - 25)
}

/** Decodes exactly one item that fills `data`. */
export function decodeCbor(data: Buffer, limits: CborLimits = {}): CborItem {
    const r = new Reader(data, limits.maxDepth ?? 8, limits.maxItems ?? 4096)
    const v = r.item(0)
    if (r.pos !== data.length) throw new CborError(`${data.length - r.pos} trailing bytes after the item`)
    return v
}
