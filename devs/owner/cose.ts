/**
 * COSE_Encrypt0 with AES-CCM-16-64-256 through cose-js: an implementation
 * independent of the device's and of the owner service's (./encrypt0.ts), so
 * tests prove what either side seals readable by a standard library
 * (RFC 9052/9053). Host-emulated devices seal with it too.
 *
 * cose-js decrypts but does not police headers, so `openEncrypt0` first checks
 * the structure itself: tag 16, algorithm 11 in the protected header only,
 * a kid, exactly one of IV and Partial IV.
 */
import { decode, Tag } from "cbor2"
// @ts-expect-error: cose-js ships no types
import cose from "cose-js"

/** COSE algorithm AES-CCM-16-64-256. */
export const AES_CCM_16_64_256 = 11
const ENCRYPT0_TAG = 16
const LABEL_ALG = 1
const LABEL_KID = 4
const LABEL_IV = 5
const LABEL_PARTIAL_IV = 6

/** Raised for any message that is not a well-formed, authentic COSE_Encrypt0. */
export class CoseRejection extends Error {
    constructor(
        readonly reason: "malformed" | "authentication",
        message: string
    ) {
        super(message)
        this.name = "CoseRejection"
    }
}

/** The unauthenticated headers of a message: enough to pick the key and check for replay. */
export interface Encrypt0Headers {
    kid: Buffer
    partialIv?: Buffer
    iv?: Buffer
}

function asMap(v: unknown): Map<unknown, unknown> {
    if (v instanceof Map) return v
    if (v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array))
        return new Map(Object.entries(v).map(([k, x]) => [Number(k), x]))
    throw new CoseRejection("malformed", "header is not a map")
}

function bytes(v: unknown): Buffer | undefined {
    return v instanceof Uint8Array ? Buffer.from(v) : undefined
}

/** Reads the headers of a COSE_Encrypt0 without verifying anything yet. */
export function readHeaders(message: Buffer): Encrypt0Headers {
    let v: unknown
    try {
        v = decode(message)
    } catch (e) {
        throw new CoseRejection("malformed", "not CBOR")
    }
    if (!(v instanceof Tag) || Number(v.tag) !== ENCRYPT0_TAG || !Array.isArray(v.contents) || v.contents.length !== 3)
        throw new CoseRejection("malformed", "not a tagged COSE_Encrypt0")
    const [prot, unprot, ciphertext] = v.contents
    const protBytes = bytes(prot)
    if (!protBytes || !bytes(ciphertext)) throw new CoseRejection("malformed", "protected header and ciphertext must be byte strings")
    let p: Map<unknown, unknown>
    try {
        p = asMap(protBytes.length ? decode(protBytes) : new Map())
    } catch (e) {
        if (e instanceof CoseRejection) throw e
        throw new CoseRejection("malformed", "protected header is not CBOR")
    }
    const u = asMap(unprot)
    if (p.get(LABEL_ALG) !== AES_CCM_16_64_256 || u.has(LABEL_ALG))
        throw new CoseRejection("malformed", "algorithm must be AES-CCM-16-64-256, protected")
    const kid = bytes(u.get(LABEL_KID))
    const iv = bytes(u.get(LABEL_IV))
    const partialIv = bytes(u.get(LABEL_PARTIAL_IV))
    if (!kid) throw new CoseRejection("malformed", "no kid")
    if (!!iv === !!partialIv) throw new CoseRejection("malformed", "exactly one of IV and Partial IV is required")
    if (iv && iv.length !== 13) throw new CoseRejection("malformed", "IV must be 13 bytes")
    if (partialIv && (partialIv.length < 1 || partialIv.length > 5)) throw new CoseRejection("malformed", "bad Partial IV length")
    return { kid, iv, partialIv }
}

/** Options of `openEncrypt0`. */
export interface OpenOptions {
    key: Buffer
    externalAad: Buffer
    /** Needed when the message carries a Partial IV. */
    contextIv?: Buffer
}

/** Verifies and decrypts with cose-js; throws `CoseRejection`. */
export async function openEncrypt0(message: Buffer, options: OpenOptions): Promise<{ headers: Encrypt0Headers; plaintext: Buffer }> {
    const headers = readHeaders(message)
    try {
        const plaintext: Buffer = await cose.encrypt.read(message, options.key, {
            externalAAD: options.externalAad,
            contextIv: options.contextIv,
            defaultType: ENCRYPT0_TAG,
        })
        return { headers, plaintext }
    } catch (e) {
        throw new CoseRejection("authentication", "authentication failed")
    }
}

/** The counter as a minimal big-endian Partial IV (as the device makes them). */
export function partialIvFromCounter(counter: number): Buffer {
    if (!Number.isSafeInteger(counter) || counter < 0 || counter >= 2 ** 40) throw new RangeError("counter out of range")
    const hex = counter.toString(16)
    return Buffer.from(hex.length % 2 ? "0" + hex : hex, "hex")
}

/** The counter a Partial IV holds. */
export function counterFromPartialIv(piv: Buffer): number {
    return piv.reduce((n, b) => n * 256 + b, 0)
}

/** Options of `sealEncrypt0`: a counter with its Context IV, or a full IV. */
export type SealOptions = { key: Buffer; kid: Buffer; externalAad: Buffer } & ({ counter: number; contextIv: Buffer } | { iv: Buffer })

/** Seals with cose-js. */
export async function sealEncrypt0(plaintext: Buffer, options: SealOptions): Promise<Buffer> {
    // cose-js draws the (Partial) IV from `randomSource`; handing it ours makes the IV deterministic
    const iv = "iv" in options ? options.iv : partialIvFromCounter(options.counter)
    return Buffer.from(
        await cose.encrypt.create(
            { p: { alg: "AES-CCM-16-64-256" }, u: { kid: options.kid } },
            plaintext,
            { key: options.key },
            {
                externalAAD: options.externalAad,
                contextIv: "iv" in options ? undefined : options.contextIv,
                randomSource: () => iv,
            }
        )
    )
}
