/**
 * Base32 (RFC 4648 §6, upper-case alphabet, no padding) for claim codes: no
 * 0/1/8/9 to confuse with O/I/B/g, readable aloud and scannable.
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

/** Encodes bytes as base32 without padding. */
export function base32Encode(data: Buffer): string {
    let out = ""
    let bits = 0
    let acc = 0
    for (let i = 0; i < data.length; ++i) {
        acc = ((acc << 8) | data[i]) & 0xffff
        bits += 8
        while (bits >= 5) {
            out += ALPHABET[(acc >> (bits - 5)) & 31]
            bits -= 5
        }
    }
    if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31]
    return out
}

/**
 * Decodes base32, ignoring case, spaces and dashes (so grouped codes paste back).
 * Returns `undefined` for any other character or for leftover non-zero bits.
 */
export function base32Decode(text: string): Buffer {
    const clean: number[] = []
    const upper = text.toUpperCase()
    for (let i = 0; i < upper.length; ++i) {
        const c = upper[i]
        if (c === "-" || c === " ") continue
        const v = ALPHABET.indexOf(c)
        if (v < 0) return undefined
        clean.push(v)
    }
    const out = Buffer.alloc(Math.floor((clean.length * 5) / 8))
    let bits = 0
    let acc = 0
    let n = 0
    for (const v of clean) {
        acc = ((acc << 5) | v) & 0xffff
        bits += 5
        if (bits >= 8) {
            out[n++] = (acc >> (bits - 8)) & 0xff
            bits -= 8
        }
    }
    if ((acc & ((1 << bits) - 1)) !== 0) return undefined
    return out
}

/** Groups a code for people: `ABCD-EFGH-…`. */
export function groupCode(code: string, size = 4): string {
    const parts: string[] = []
    for (let i = 0; i < code.length; i += size) parts.push(code.slice(i, i + size))
    return parts.join("-")
}

/** A typed claim code in canonical form: upper-case base32, no separators. */
export function canonicalClaimCode(code: string): string {
    let out = ""
    const upper = code.toUpperCase()
    for (let i = 0; i < upper.length; ++i) if (upper[i] !== "-" && upper[i] !== " ") out += upper[i]
    return out
}
