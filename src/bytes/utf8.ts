/**
 * Well-formed UTF-8 (RFC 3629 §4), the form every text from the network must
 * have before it becomes a string: CBOR text strings (RFC 8949 §3.1) and MQTT
 * topics (MQTT 3.1.1 §1.5.3). A code point takes one to four bytes:
 *
 *   U+0000..U+007F     0xxxxxxx
 *   U+0080..U+07FF     110xxxxx 10xxxxxx
 *   U+0800..U+FFFF     1110xxxx 10xxxxxx 10xxxxxx
 *   U+10000..U+10FFFF  11110xxx 10xxxxxx 10xxxxxx 10xxxxxx
 *
 * Ill-formed: a sequence cut short or a continuation byte where a lead is
 * expected; an overlong form (a code point in more bytes than it needs: C0
 * and C1 are never leads); the UTF-16 surrogates U+D800..U+DFFF (ED A0 80 ..
 * ED BF BF); anything above U+10FFFF (F5..FF are never leads).
 */

/**
 * Whether `b` is well-formed UTF-8; with `withoutNul`, also without U+0000 (which UTF-8 can only write as 00,
 * since its overlong forms are refused), as MQTT strings must be (MQTT-1.5.3-2).
 */
export function isValidUtf8(b: Buffer, withoutNul?: boolean): boolean {
    let i = 0
    const n = b.length
    while (i < n) {
        const c = b[i]
        if (c < 0x80) {
            if (c === 0 && withoutNul === true) return false
            i++
            continue
        }
        let len: number
        let min: number
        if (c >= 0xc2 && c <= 0xdf) {
            len = 1
            min = 0x80
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 2
            min = 0x800
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 3
            min = 0x10000
        } else return false
        if (i + len >= n) return false
        let cp = c & (0x3f >> len)
        for (let k = 1; k <= len; ++k) {
            const cc = b[i + k]
            if ((cc & 0xc0) !== 0x80) return false
            cp = (cp << 6) | (cc & 0x3f)
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false
        i += len + 1
    }
    return true
}
