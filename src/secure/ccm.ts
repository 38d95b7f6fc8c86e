/**
 * AES-256-CCM with associated data (RFC 3610; NIST SP 800-38C) for a 13-byte
 * nonce (L = 2) and an 8-byte tag (M = 8): COSE's AES-CCM-16-64-256.
 *
 * The runtime's native AES-CCM takes no associated data, and its CBC-MAC
 * starts from a B_0 whose Adata flag is clear, so it cannot produce the tag
 * COSE needs. Its counter mode, though, is exactly CCM's (A_i = L-1 || N || i,
 * from i = 1), so the payload is encrypted natively and only the CBC-MAC
 * and S_0 are computed here with the software block cipher.
 */
import * as ds from "@devicescript/core"
import { constantTimeEqual } from "../bytes/constant-time"
import { expectBuffer } from "../bytes/expect-buffer"
import { aes256CcmCtr } from "../bytes/natives"
import { AES256_KEY_BYTES, AES_BLOCK_BYTES, encryptBlock, expandKey256 } from "./aes"

/** Tag length M. */
export const CCM_TAG_BYTES = 8
/** Nonce length 15 - L. */
export const CCM_NONCE_BYTES = 13
/** Longest input: L = 2 counts at most 2^16 - 1 bytes; AAD is kept below 2^16 - 2^8 (§2.2's short form). */
const MAX_DATA_BYTES = 65279
/** Blocks encrypted before the fiber yields (the VM panics on ~128K steps without a yield). */
const BLOCKS_PER_YIELD = 8

let cachedKey: Buffer = undefined
let cachedSchedule: Buffer = undefined

function schedule(key: Buffer): Buffer {
    if (!constantTimeEqual(cachedKey, key)) {
        cachedSchedule = expandKey256(key)
        cachedKey = key.slice(0, key.length)
    }
    return cachedSchedule
}

/** Counter mode as CCM defines it, with the runtime's AES (tag length 0 = CTR only). */
function ctr(key: Buffer, nonce: Buffer, data: Buffer): Buffer {
    if (data.length === 0) return Buffer.alloc(0)
    return aes256CcmCtr(key, nonce, data)
}

/** The CBC-MAC of RFC 3610 §2.2 over B_0, the length-prefixed AAD and the message, encrypted with S_0 (§2.3). */
async function tag(key: Buffer, nonce: Buffer, aad: Buffer, message: Buffer): Promise<Buffer> {
    if (aad.length > MAX_DATA_BYTES || message.length > MAX_DATA_BYTES) throw new RangeError("CCM input too long")
    // start with a fresh step budget: the caller may have used much of it
    await ds.sleep(0)
    const w = schedule(key)
    const x = Buffer.alloc(AES_BLOCK_BYTES)
    // B_0: flags = 64·Adata + 8·(M-2)/2 + (L-1), nonce, l(m) in L = 2 bytes
    x[0] = (aad.length > 0 ? 64 : 0) + 8 * ((CCM_TAG_BYTES - 2) / 2) + 1
    x.blitAt(1, nonce, 0, CCM_NONCE_BYTES)
    x[14] = message.length >> 8
    x[15] = message.length & 0xff
    encryptBlock(w, x)
    let blocks = 1
    // the AAD with its two-byte length, then the message, each zero-padded to whole blocks
    const streams: Buffer[] = [aad.length > 0 ? Buffer.from([aad.length >> 8, aad.length & 0xff]).concat(aad) : Buffer.alloc(0), message]
    for (const data of streams) {
        for (let at = 0; at < data.length; at += AES_BLOCK_BYTES) {
            const n = Math.min(AES_BLOCK_BYTES, data.length - at)
            for (let i = 0; i < n; ++i) x[i] ^= data[at + i]
            encryptBlock(w, x)
            if (++blocks % BLOCKS_PER_YIELD === 0) await ds.sleep(0)
        }
    }
    // S_0 = E(K, A_0), A_0 = L-1 || N || 0
    const s0 = Buffer.alloc(AES_BLOCK_BYTES)
    s0[0] = 1
    s0.blitAt(1, nonce, 0, CCM_NONCE_BYTES)
    encryptBlock(w, s0)
    const t = Buffer.alloc(CCM_TAG_BYTES)
    for (let i = 0; i < CCM_TAG_BYTES; ++i) t[i] = x[i] ^ s0[i]
    return t
}

function checkSizes(key: Buffer, nonce: Buffer) {
    expectBuffer(key, "AES-256 key", AES256_KEY_BYTES)
    expectBuffer(nonce, "CCM nonce", CCM_NONCE_BYTES)
}

/** Encrypts and authenticates: ciphertext || 8-byte tag. */
export async function ccmSeal(key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer): Promise<Buffer> {
    checkSizes(key, nonce)
    const t = await tag(key, nonce, aad, plaintext)
    return ctr(key, nonce, plaintext).concat(t)
}

/** Verifies and decrypts; `undefined` when the tag does not match (nothing of the plaintext is returned). */
export async function ccmOpen(key: Buffer, nonce: Buffer, aad: Buffer, sealed: Buffer): Promise<Buffer> {
    checkSizes(key, nonce)
    if (sealed.length < CCM_TAG_BYTES) return undefined
    const bodyLength = sealed.length - CCM_TAG_BYTES
    const plaintext = ctr(key, nonce, sealed.slice(0, bodyLength))
    const expected = await tag(key, nonce, aad, plaintext)
    return constantTimeEqual(expected, sealed.slice(bodyLength, sealed.length)) ? plaintext : undefined
}
