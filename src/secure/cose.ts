/**
 * COSE_Encrypt0 (RFC 9052 §5.2) with AES-CCM-16-64-256 (RFC 9053 §4.2,
 * algorithm 11): the runtime's native AES-256-CCM with a 13-byte nonce and an
 * 8-byte tag. Any COSE library reads these messages with the key.
 *
 *   16([ protected: << {1: 11} >>, unprotected: {4: kid, 6: partial IV}, ciphertext ])
 *
 * AES-CCM with the Enc_structure as associated data comes from `ccm.ts`.
 * The nonce is the Context IV XOR the zero-padded Partial IV (RFC 9052 §3.1),
 * so a message carries only its counter and the counter must never repeat
 * under one key (see `counter.ts`). A message with a full IV (label 5)
 * instead is accepted too: one-off messages such as the owner envelope use a
 * random IV.
 */
import { CborError, CborMap, CborTag, CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { CCM_NONCE_BYTES, CCM_TAG_BYTES, ccmOpen, ccmSeal } from "./ccm"

/** CBOR tag of COSE_Encrypt0 (RFC 9052 §2). */
export const COSE_ENCRYPT0_TAG = 16
/** COSE algorithm AES-CCM-16-64-256 (RFC 9053 §4.2). */
export const AES_CCM_16_64_256 = 11
/** Header labels (RFC 9052 §3.1). */
export const HEADER_ALG = 1
export const HEADER_KID = 4
export const HEADER_IV = 5
export const HEADER_PARTIAL_IV = 6

/** Longest Partial IV accepted: 5 bytes hold 2^40 messages, far more than flash endurance allows. */
export const MAX_PARTIAL_IV_BYTES = 5

/** `<< {1: 11} >>`: the protected header, always these three bytes. */
const PROTECTED = encodeCbor(new CborMap().set(HEADER_ALG, AES_CCM_16_64_256))

/** Raised for any message that is not a valid, authentic COSE_Encrypt0 under the given key. */
export class CoseError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "CoseError"
    }
}

/** What a message was sealed with besides the key. */
export interface SealOptions {
    key: Buffer
    /** Key identifier: here the device id. */
    kid: Buffer
    /** Bound into the tag but not sent (RFC 9052 §5.3), e.g. the topic. */
    externalAad: Buffer
    /** Partial IV (minimal big-endian counter bytes) with the Context IV it modifies... */
    partialIv?: Buffer
    contextIv?: Buffer
    /** ...or a full 13-byte IV. */
    iv?: Buffer
}

/** A verified, decrypted message. */
export interface OpenedMessage {
    kid: Buffer
    /** Empty when the message carried a full IV. */
    partialIv: Buffer
    plaintext: Buffer
}

/** Options of `open`. */
export interface OpenOptions {
    key: Buffer
    externalAad: Buffer
    /** Needed for messages with a Partial IV. */
    contextIv?: Buffer
    /** Largest message accepted. Default 2048 bytes. */
    maxBytes?: number
}

/**
 * The most bytes sealing adds to a plaintext below 64 KiB: tag and array
 * heads, the protected header, the unprotected map with a kid of `kidBytes`
 * (below 24) and a Partial IV of at most `MAX_PARTIAL_IV_BYTES`, the
 * ciphertext's head and the CCM tag.
 */
export function sealOverhead(kidBytes: number): number {
    return 2 + (1 + PROTECTED.length) + 1 + (2 + kidBytes) + (2 + MAX_PARTIAL_IV_BYTES) + 3 + CCM_TAG_BYTES
}

/** The counter as a Partial IV: big-endian, no leading zero bytes, at least one byte (as OSCORE, RFC 8613 §6.1). */
export function partialIvFromCounter(counter: number): Buffer {
    if (!(counter >= 0) || counter !== Math.floor(counter) || counter >= 1099511627776) throw new CoseError("counter out of range")
    const bytes: number[] = [counter & 0xff]
    for (let n = Math.floor(counter / 256); n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff)
    return Buffer.from(bytes)
}

/** The counter a Partial IV holds. */
export function counterFromPartialIv(piv: Buffer): number {
    let n = 0
    for (let i = 0; i < piv.length; ++i) n = n * 256 + piv[i]
    return n
}

/** Context IV XOR left-padded Partial IV (RFC 9052 §3.1). */
export function nonceFor(contextIv: Buffer, partialIv: Buffer): Buffer {
    if (!contextIv || contextIv.length !== CCM_NONCE_BYTES) throw new CoseError("context IV must be 13 bytes")
    if (partialIv.length > MAX_PARTIAL_IV_BYTES) throw new CoseError("partial IV too long")
    const nonce = contextIv.slice(0, CCM_NONCE_BYTES)
    const offset = CCM_NONCE_BYTES - partialIv.length
    for (let i = 0; i < partialIv.length; ++i) nonce[offset + i] ^= partialIv[i]
    return nonce
}

/** The AAD: Enc_structure = ["Encrypt0", protected, external_aad] (RFC 9052 §5.3). */
function encStructure(protectedBytes: Buffer, externalAad: Buffer): Buffer {
    return encodeCbor(["Encrypt0", protectedBytes, externalAad])
}

/** Seals a plaintext as a tagged COSE_Encrypt0. */
export async function seal(plaintext: Buffer, options: SealOptions): Promise<Buffer> {
    const unprotected = new CborMap().set(HEADER_KID, options.kid)
    let nonce: Buffer
    if (options.iv) {
        if (options.iv.length !== CCM_NONCE_BYTES) throw new CoseError("IV must be 13 bytes")
        unprotected.set(HEADER_IV, options.iv)
        nonce = options.iv
    } else {
        unprotected.set(HEADER_PARTIAL_IV, options.partialIv)
        nonce = nonceFor(options.contextIv, options.partialIv)
    }
    const ciphertext = await ccmSeal(options.key, nonce, encStructure(PROTECTED, options.externalAad), plaintext)
    return encodeCbor(new CborTag(COSE_ENCRYPT0_TAG, [PROTECTED, unprotected, ciphertext]))
}

function bytesOrUndefined(v: CborValue, what: string): Buffer {
    if (v === undefined) return undefined
    if (!(v instanceof Buffer)) throw new CoseError(`${what} is not a byte string`)
    return v
}

/**
 * Parses, verifies and decrypts a COSE_Encrypt0. Everything is checked
 * before the plaintext is returned: structure, algorithm, IV sizes, tag.
 */
export async function open(message: Buffer, options: OpenOptions): Promise<OpenedMessage> {
    let v: CborValue
    try {
        // COSE does not require deterministic encoding of what it carries (RFC 9052 §9)
        v = decodeCbor(message, { maxBytes: options.maxBytes ?? 2048, maxDepth: 3, maxItems: 16, deterministic: false })
    } catch (e: any) {
        throw new CoseError(e instanceof CborError ? `not CBOR: ${e.message}` : "not CBOR")
    }
    if (!(v instanceof CborTag) || v.tag !== COSE_ENCRYPT0_TAG) throw new CoseError("not a tagged COSE_Encrypt0")
    const parts = v.value
    if (!Array.isArray(parts) || parts.length !== 3) throw new CoseError("COSE_Encrypt0 must have 3 parts")
    const protectedBytes = bytesOrUndefined(parts[0], "protected header")
    const unprotected = parts[1]
    const ciphertext = bytesOrUndefined(parts[2], "ciphertext")
    if (!protectedBytes || !ciphertext || !(unprotected instanceof CborMap)) throw new CoseError("malformed COSE_Encrypt0")
    let prot: CborValue
    try {
        const limits = { maxBytes: 64, maxDepth: 1, maxItems: 8, deterministic: false }
        prot = protectedBytes.length > 0 ? decodeCbor(protectedBytes, limits) : new CborMap()
    } catch (e) {
        throw new CoseError("protected header is not CBOR")
    }
    if (!(prot instanceof CborMap) || prot.get(HEADER_ALG) !== AES_CCM_16_64_256 || unprotected.has(HEADER_ALG))
        throw new CoseError("algorithm must be AES-CCM-16-64-256 in the protected header")
    const kid = bytesOrUndefined(unprotected.get(HEADER_KID), "kid")
    const iv = bytesOrUndefined(unprotected.get(HEADER_IV), "IV")
    const partialIv = bytesOrUndefined(unprotected.get(HEADER_PARTIAL_IV), "partial IV")
    if (!kid) throw new CoseError("no kid")
    let nonce: Buffer
    if (iv && !partialIv) {
        if (iv.length !== CCM_NONCE_BYTES) throw new CoseError("IV must be 13 bytes")
        nonce = iv
    } else if (partialIv && !iv) {
        if (partialIv.length < 1 || partialIv.length > MAX_PARTIAL_IV_BYTES) throw new CoseError("bad partial IV length")
        if (partialIv.length > 1 && partialIv[0] === 0) throw new CoseError("partial IV not minimal")
        nonce = nonceFor(options.contextIv, partialIv)
    } else throw new CoseError("needs one of IV and partial IV")
    if (ciphertext.length < CCM_TAG_BYTES) throw new CoseError("ciphertext shorter than the tag")
    const plaintext = await ccmOpen(options.key, nonce, encStructure(protectedBytes, options.externalAad), ciphertext)
    if (!plaintext) throw new CoseError("authentication failed")
    return { kid, partialIv: partialIv || Buffer.alloc(0), plaintext }
}
