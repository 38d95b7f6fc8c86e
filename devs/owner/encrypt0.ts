/**
 * COSE_Encrypt0 (RFC 9052 §5.2) with AES-CCM-16-64-256 (RFC 9053 §4.2,
 * algorithm 11: 13-byte nonce, 8-byte tag, 256-bit key) on node:crypto's
 * `aes-256-ccm`: the owner service's verification path, one CBOR pass and
 * no library between the bytes and the cipher. cose-js (./cose.ts) is the
 * independent implementation the tests hold this one to.
 *
 *   COSE_Encrypt0 = #6.16([ protected: bstr .cbor {1: 11}, unprotected: {4: kid, 6: Partial IV | 5: IV}, ciphertext ])
 *   nonce         = Context IV XOR (Partial IV left-padded to 13 bytes)       (§3.1, "Partial IV")
 *   AAD           = Enc_structure ["Encrypt0", protected, external_aad]      (§5.3)
 *
 * The device puts the algorithm in the protected header and kid and Partial
 * IV in the unprotected one; anything else is refused before a key is used.
 */
import { createCipheriv, createDecipheriv } from "node:crypto"
import { CborError, CborTagged, decodeCbor } from "./cbor.ts"

/** COSE algorithm AES-CCM-16-64-256 (RFC 9053 Table 10). */
export const AES_CCM_16_64_256 = 11
/** CCM nonce length L = 2 → 15 − 2 = 13 bytes; tag M = 64 bits (RFC 9053 §4.2). */
const NONCE_BYTES = 13
const TAG_BYTES = 8
/** COSE_Encrypt0's CBOR tag (RFC 9052 Table 1). */
const ENCRYPT0_TAG = 16
/** Header labels (RFC 9052 Table 3). */
const LABEL_ALG = 1
const LABEL_KID = 4
const LABEL_IV = 5
const LABEL_PARTIAL_IV = 6
/** The device's Partial IV is a counter below 2^40. */
const MAX_PARTIAL_IV_BYTES = 5

/** Why a message is not an authentic COSE_Encrypt0 for this key. */
export class Encrypt0Error extends Error {
    constructor(
        readonly reason: "malformed" | "authentication",
        message: string
    ) {
        super(message)
        this.name = "Encrypt0Error"
    }
}

/** A parsed, not yet verified, message. */
export interface Encrypt0 {
    /** The protected header exactly as sent (it is authenticated as these bytes). */
    protectedBytes: Buffer
    kid: Buffer
    partialIv?: Buffer
    iv?: Buffer
    /** Ciphertext with the tag at its end. */
    ciphertext: Buffer
}

function bytes(v: unknown): Buffer | undefined {
    return Buffer.isBuffer(v) ? v : undefined
}

/** Parses the structure and checks the headers; verifies nothing yet. Throws `Encrypt0Error`. */
export function parseEncrypt0(message: Buffer): Encrypt0 {
    let outer
    try {
        outer = decodeCbor(message, { maxDepth: 3, maxItems: 32 })
    } catch (e) {
        throw new Encrypt0Error("malformed", `not CBOR: ${(e as Error).message}`)
    }
    if (!(outer instanceof CborTagged) || outer.tag !== ENCRYPT0_TAG || !Array.isArray(outer.value) || outer.value.length !== 3)
        throw new Encrypt0Error("malformed", "not a tagged COSE_Encrypt0")
    const [prot, unprot, ciphertext] = outer.value
    const protectedBytes = bytes(prot)
    if (!protectedBytes || !Buffer.isBuffer(ciphertext))
        throw new Encrypt0Error("malformed", "protected header and ciphertext must be bytes")
    if (ciphertext.length < TAG_BYTES) throw new Encrypt0Error("malformed", "ciphertext shorter than its tag")
    let p
    try {
        p = protectedBytes.length ? decodeCbor(protectedBytes, { maxDepth: 1, maxItems: 16 }) : new Map()
    } catch (e) {
        throw new Encrypt0Error("malformed", `protected header: ${e instanceof CborError ? e.message : "unreadable"}`)
    }
    if (!(p instanceof Map) || !(unprot instanceof Map)) throw new Encrypt0Error("malformed", "headers must be maps")
    if (p.get(LABEL_ALG) !== AES_CCM_16_64_256 || unprot.has(LABEL_ALG))
        throw new Encrypt0Error("malformed", "algorithm must be AES-CCM-16-64-256, protected")
    // RFC 9052 §3: a label may not appear in both buckets
    for (const label of p.keys()) if (unprot.has(label)) throw new Encrypt0Error("malformed", `header ${String(label)} in both buckets`)
    const kid = bytes(unprot.get(LABEL_KID))
    const iv = bytes(unprot.get(LABEL_IV))
    const partialIv = bytes(unprot.get(LABEL_PARTIAL_IV))
    if (!kid) throw new Encrypt0Error("malformed", "no kid")
    if ((iv === undefined) === (partialIv === undefined)) throw new Encrypt0Error("malformed", "exactly one of IV and Partial IV")
    if (iv && iv.length !== NONCE_BYTES) throw new Encrypt0Error("malformed", "IV must be 13 bytes")
    if (partialIv && (partialIv.length < 1 || partialIv.length > MAX_PARTIAL_IV_BYTES))
        throw new Encrypt0Error("malformed", "Partial IV must be 1..5 bytes")
    return { protectedBytes, kid, partialIv, iv, ciphertext }
}

/** The counter a Partial IV holds (big-endian). */
export function counterFromPartialIv(piv: Buffer): number {
    let n = 0
    for (const b of piv) n = n * 256 + b
    return n
}

/** The counter as a minimal big-endian Partial IV, as the device makes them. */
export function partialIvFromCounter(counter: number): Buffer {
    if (!Number.isSafeInteger(counter) || counter < 0 || counter >= 2 ** (8 * MAX_PARTIAL_IV_BYTES))
        throw new RangeError("counter out of range")
    const out: number[] = []
    for (let n = counter; n > 0 || out.length === 0; n = Math.floor(n / 256)) out.unshift(n % 256)
    return Buffer.from(out)
}

/** Context IV XOR the left-padded Partial IV (RFC 9052 §3.1). */
function nonceOf(contextIv: Buffer, partialIv: Buffer): Buffer {
    const nonce = Buffer.from(contextIv)
    for (let i = 0; i < partialIv.length; i++) nonce[NONCE_BYTES - partialIv.length + i] ^= partialIv[i]
    return nonce
}

/** A CBOR head for a byte string of `n` bytes. */
function bstrHead(n: number): Buffer {
    if (n < 24) return Buffer.from([0x40 | n])
    if (n < 0x100) return Buffer.from([0x58, n])
    if (n < 0x10000) return Buffer.from([0x59, n >> 8, n & 0xff])
    const b = Buffer.alloc(5)
    b[0] = 0x5a
    b.writeUInt32BE(n, 1)
    return b
}

/** ["Encrypt0", protected, external_aad]: an array of 3 (0x83), the 8-letter text (0x68 …), two byte strings. */
const ENC_STRUCTURE_PREFIX = Buffer.from([0x83, 0x68, ...Buffer.from("Encrypt0")])

/** The Enc_structure (RFC 9052 §5.3), the AAD of the cipher. */
export function encStructure(protectedBytes: Buffer, externalAad: Buffer): Buffer {
    return Buffer.concat([ENC_STRUCTURE_PREFIX, bstrHead(protectedBytes.length), protectedBytes, bstrHead(externalAad.length), externalAad])
}

/** The key and Context IV of one direction of one device. */
export interface CipherKeys {
    key: Buffer
    contextIv: Buffer
}

/** Verifies and decrypts a parsed message; throws `Encrypt0Error("authentication")` on any mismatch. */
export function openParsed(m: Encrypt0, keys: CipherKeys, externalAad: Buffer): Buffer {
    const nonce = m.iv ?? nonceOf(keys.contextIv, m.partialIv!)
    const body = m.ciphertext.subarray(0, m.ciphertext.length - TAG_BYTES)
    const tag = m.ciphertext.subarray(m.ciphertext.length - TAG_BYTES)
    try {
        const d = createDecipheriv("aes-256-ccm", keys.key, nonce, { authTagLength: TAG_BYTES })
        d.setAuthTag(tag)
        d.setAAD(encStructure(m.protectedBytes, externalAad), { plaintextLength: body.length })
        const out = d.update(body)
        d.final()
        return out
    } catch {
        throw new Encrypt0Error("authentication", "authentication failed")
    }
}

/** Parses, verifies and decrypts. */
export function openEncrypt0(message: Buffer, keys: CipherKeys, externalAad: Buffer): { message: Encrypt0; plaintext: Buffer } {
    const m = parseEncrypt0(message)
    return { message: m, plaintext: openParsed(m, keys, externalAad) }
}

/** The protected header every message carries: {1: 11}. */
const PROTECTED = Buffer.from([0xa1, LABEL_ALG, AES_CCM_16_64_256])

/** Seals `plaintext` with a counter as Partial IV (commands to a device). */
export function sealEncrypt0(plaintext: Buffer, keys: CipherKeys & { kid: Buffer }, counter: number, externalAad: Buffer): Buffer {
    const piv = partialIvFromCounter(counter)
    const c = createCipheriv("aes-256-ccm", keys.key, nonceOf(keys.contextIv, piv), { authTagLength: TAG_BYTES })
    c.setAAD(encStructure(PROTECTED, externalAad), { plaintextLength: plaintext.length })
    const ciphertext = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()])
    // #6.16([h'a1010b', {4: kid, 6: piv}, ciphertext])
    return Buffer.concat([
        Buffer.from([0xd0, 0x83]),
        bstrHead(PROTECTED.length),
        PROTECTED,
        Buffer.from([0xa2, LABEL_KID]),
        bstrHead(keys.kid.length),
        keys.kid,
        Buffer.from([LABEL_PARTIAL_IV]),
        bstrHead(piv.length),
        piv,
        bstrHead(ciphertext.length),
        ciphertext,
    ])
}
