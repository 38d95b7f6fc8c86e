/**
 * The runtime's cryptography, called directly: SHA-256 and HMAC-SHA-256 over
 * a list of buffers and strings (`Buffer.digest`), AES-256 in CCM's counter
 * mode (`Buffer.encrypt` with no tag), and the hardware random source
 * (`Buffer.fillRandom`). @devicescript/crypto wraps the same natives with
 * argument checks and a rest array on every call; the firmware checks its
 * inputs once, where they enter, and its hot loops (PBKDF2, SLH-DSA) make
 * thousands of calls. Also less bytecode.
 */

/** A hash input: bytes, or a string hashed as its UTF-8 bytes. */
export type HashInput = Buffer | string

/** `Buffer.digest(hmacKey, "sha256", inputs)`: HMAC-SHA-256 under `hmacKey`, or plain SHA-256 when it is undefined. */
export const nativeDigest = (Buffer as any).digest as (hmacKey: HashInput, algo: "sha256", inputs: HashInput[]) => Buffer

/** SHA-256 of the concatenated `inputs`. */
export function sha256(inputs: HashInput[]): Buffer {
    return nativeDigest(undefined, "sha256", inputs)
}

/** HMAC-SHA-256 (RFC 2104) under `key` of the concatenated `inputs`. */
export function hmacSha256(key: HashInput, inputs: HashInput[]): Buffer {
    return nativeDigest(key, "sha256", inputs)
}

/** HKDF-SHA-256 (RFC 5869) of `ikm` with `salt`: the first 32 bytes of output for `info` (one HMAC block, T(1)). */
export function hkdfSha256(ikm: Buffer, info: string, salt: Buffer): Buffer {
    return hmacSha256(hmacSha256(salt, [ikm]), [info, hex`01`])
}

/** AES-256 in CCM's counter mode (A_i = flags || nonce || i from i = 1, RFC 3610 §2.3): 32-byte key, 13-byte nonce. */
export function aes256CcmCtr(key: Buffer, nonce: Buffer, data: Buffer): Buffer {
    return (data as any).encrypt("aes-256-ccm", key, nonce, 0) as Buffer
}

/** `length` bytes from the hardware random source. */
export function randomBytes(length: number): Buffer {
    const b = Buffer.alloc(length)
    ;(b as any).fillRandom()
    return b
}
