/**
 * Base64 (RFC 4648 §4, with padding): SCRAM (RFC 5802) and HTTP carry binary
 * values in it, and the runtime's Buffer has only hex and UTF-8.
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

/** Encodes bytes as padded base64. */
export function base64Encode(data: Buffer): string {
    let out = ""
    let i = 0
    for (; i + 2 < data.length; i += 3) {
        const n = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2]
        out += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63]
    }
    const rest = data.length - i
    if (rest === 1) {
        const n = data[i] << 16
        out += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63] + "=="
    } else if (rest === 2) {
        const n = (data[i] << 16) | (data[i + 1] << 8)
        out += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + "="
    }
    return out
}

/**
 * Decodes padded base64 strictly: length a multiple of 4, padding only at the
 * end, unused bits zero (RFC 4648 §3.5). Returns `undefined` for anything else.
 */
export function base64Decode(text: string): Buffer {
    if (text.length % 4 !== 0) return undefined
    let pad = 0
    if (text.length > 0 && text[text.length - 1] === "=") pad++
    if (text.length > 1 && text[text.length - 2] === "=") pad++
    const out = Buffer.alloc((text.length / 4) * 3 - pad)
    let o = 0
    for (let i = 0; i < text.length; i += 4) {
        const last = i + 4 === text.length
        let n = 0
        for (let k = 0; k < 4; ++k) {
            const c = text[i + k]
            const isPad = last && k >= 4 - pad
            const v = isPad ? 0 : ALPHABET.indexOf(c)
            if (v < 0) return undefined
            n = (n << 6) | v
        }
        out[o++] = (n >> 16) & 0xff
        if (last && pad === 2) {
            if ((n & 0xffff) !== 0) return undefined
            break
        }
        out[o++] = (n >> 8) & 0xff
        if (last && pad === 1) {
            if ((n & 0xff) !== 0) return undefined
            break
        }
        out[o++] = n & 0xff
    }
    return out
}
