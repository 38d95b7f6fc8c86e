/**
 * Signed firmware manifests: the elements of the SUIT information model
 * (RFC 9124) that a DeviceScript image needs, as a CBOR map in the payload of
 * a COSE_Sign1 (RFC 9052 §4.2) signed with SLH-DSA-SHA2-128s (FIPS 205).
 * Everything the owner signs for the device has this shape (the root
 * documents and key lists of `trust.ts` too):
 *
 *   18([ protected: << {1: "SLH-DSA-SHA2-128s", 4: kid} >>, unprotected: {}, payload: << document >>, signature ])
 *
 *   manifest = { 1: 1 (format version), 2: sequence number, 3: vendor id, 4: class id,
 *                5: image SHA-256, 6: image size, ? 7: lowest sequence it may update from }
 *
 * The kid (first 8 bytes of SHA-256 of the signer's public key) is in the
 * protected header, so the signature covers the key it names; it only picks
 * which trusted key to verify with. The algorithm is named by text (RFC 9052
 * §3.1 allows a tstr `alg`): the COSE registration of SLH-DSA is still a
 * draft and its number may change. The signature covers the Sig_structure of
 * RFC 9052 §4.4 with empty external AAD, signed with FIPS 205 pure SLH-DSA
 * and an empty context. Exactly one algorithm is accepted, so there is
 * nothing to downgrade to.
 */
import { constantTimeEqual } from "../bytes/constant-time"
import { sha256 } from "../bytes/natives"
import { CborMap, CborSpan, CborTag, CborValue, CborWriter, decodeCbor, encodeCbor, MT_ARRAY } from "../codec/cbor"
import { slhDsaVerify } from "./slh-dsa"

/** CBOR tag of COSE_Sign1 (RFC 9052 §2). */
export const COSE_SIGN1_TAG = 18
/** The only signature algorithm accepted. */
export const MANIFEST_ALG = "SLH-DSA-SHA2-128s"
/** Version of the manifest map below (RFC 9124 §3.1 "Manifest Element: Version ID"). */
export const MANIFEST_FORMAT = 1
/** Largest signed document accepted: a 7856-byte signature plus a small manifest, root or key list. */
export const MAX_SIGNED_BYTES = 8192
/** Bytes of a kid: the first of SHA-256 of the public key. */
export const KEY_ID_BYTES = 8
/** Byte strings of a signed document longer than this (its signature) are read where they lie, not copied. */
const SPAN_ABOVE_BYTES = 1024

/** Manifest map keys. */
const M_FORMAT = 1
const M_SEQUENCE = 2
const M_VENDOR = 3
const M_CLASS = 4
const M_DIGEST = 5
const M_SIZE = 6
const M_MIN_SEQUENCE = 7

/**
 * Vendor and class of this firmware (RFC 9124 §3.3, §3.4), UUIDv5 as RFC 4122 §4.3:
 * vendor = UUIDv5(DNS namespace, "sentinel-node.example"), class = UUIDv5(vendor, "esp32-sensor-node").
 * test/host/updates.test.ts recomputes both.
 */
export const VENDOR_ID = hex`40f85174273453f5864116479b9ab97a`
export const CLASS_ID = hex`2d72f019dc67537094f6c5ca682a4701`

/** What a manifest says about one image. */
export interface FirmwareManifest {
    /** Sequence number (RFC 9124 §3.2), monotonic; the device never installs one at or below its security counter. */
    sequence: number
    vendorId: Buffer
    classId: Buffer
    /** SHA-256 of the image, as the runtime hashes the running program. */
    digest: Buffer
    /** Image size in bytes. */
    size: number
    /** Lowest running sequence this image may replace; 0 when any. */
    minSequence: number
}

/** Why a manifest was refused. */
export class ManifestError extends Error {
    constructor(
        readonly reason: "malformed" | "bad-signature" | "wrong-device" | "rollback" | "precondition" | "untrusted-key" | "signers",
        message: string
    ) {
        super(message)
        this.name = "ManifestError"
    }
}

function uint(m: CborMap, key: number, name: string): number {
    const v = m.get(key)
    if (typeof v !== "number" || v < 0 || v !== Math.floor(v) || v > 4294967295)
        throw new ManifestError("malformed", `${name} must be an unsigned integer`)
    return v
}

function bytes(m: CborMap, key: number, name: string, length: number): Buffer {
    const v = m.get(key)
    if (!(v instanceof Buffer) || v.length !== length) throw new ManifestError("malformed", `${name} must be ${length} bytes`)
    return v
}

/** Decodes and checks the shape of a manifest map. Throws `ManifestError("malformed")`. */
export function decodeManifest(payload: Buffer): FirmwareManifest {
    let v: CborValue
    try {
        v = decodeCbor(payload, { maxBytes: 256, maxDepth: 1, maxItems: 16 })
    } catch (e: any) {
        throw new ManifestError("malformed", "manifest is not CBOR")
    }
    if (!(v instanceof CborMap)) throw new ManifestError("malformed", "manifest is not a map")
    if (v.get(M_FORMAT) !== MANIFEST_FORMAT) throw new ManifestError("malformed", "unknown manifest format")
    for (const k of v.keys)
        if (typeof k !== "number" || k < M_FORMAT || k > M_MIN_SEQUENCE) throw new ManifestError("malformed", "unknown manifest element")
    const size = uint(v, M_SIZE, "size")
    if (size === 0 || size % 32 !== 0) throw new ManifestError("malformed", "size not a multiple of 32")
    return {
        sequence: uint(v, M_SEQUENCE, "sequence"),
        vendorId: bytes(v, M_VENDOR, "vendor id", 16),
        classId: bytes(v, M_CLASS, "class id", 16),
        digest: bytes(v, M_DIGEST, "digest", 32),
        size,
        minSequence: v.has(M_MIN_SEQUENCE) ? uint(v, M_MIN_SEQUENCE, "minimum sequence") : 0,
    }
}

/** Encodes a manifest map (deterministic CBOR); the owner tools build the same bytes on the host. */
export function encodeManifest(m: FirmwareManifest): Buffer {
    const map = new CborMap()
        .set(M_FORMAT, MANIFEST_FORMAT)
        .set(M_SEQUENCE, m.sequence)
        .set(M_VENDOR, m.vendorId)
        .set(M_CLASS, m.classId)
        .set(M_DIGEST, m.digest)
        .set(M_SIZE, m.size)
    if (m.minSequence > 0) map.set(M_MIN_SEQUENCE, m.minSequence)
    return encodeCbor(map)
}

/** The bytes SLH-DSA signs: Sig_structure = ["Signature1", protected, external_aad, payload] (RFC 9052 §4.4). */
export function sigStructure(protectedHeader: Buffer, payload: Buffer): Buffer {
    const w = new CborWriter()
    w.head(MT_ARRAY, 4)
    w.item("Signature1")
    w.item(protectedHeader)
    w.item(Buffer.alloc(0))
    w.item(payload)
    return w.result()
}

/** The parts of a COSE_Sign1, decoded but not yet verified. */
export interface SignedParts {
    protectedHeader: Buffer
    /** The key the signer claims to be (`KEY_ID_BYTES`). */
    kid: Buffer
    payload: Buffer
    /** The buffer the signature lies in, from `signatureAt` to its end: the received document itself, not a copy. */
    signature: Buffer
    signatureAt: number
}

/**
 * Decodes a signed document, `signed` from `at` (default 0) to its end, into
 * its parts, checking its shape and that it names our one algorithm and a
 * kid. Throws `ManifestError("malformed")`. Header and payload are copied
 * (small); the ~8 KB signature is not: the parts keep `signed`, so on a 64 KB
 * heap, where a second contiguous 8 KB block may not be found, one block holds
 * both from the socket to the end of the verification.
 */
export function decodeSigned(signed: Buffer, at = 0): SignedParts {
    let v: CborValue = undefined
    let header: CborValue = undefined
    try {
        // other COSE libraries may not encode deterministically; the signature covers the exact payload bytes anyway
        v = decodeCbor(signed, {
            from: at,
            maxBytes: MAX_SIGNED_BYTES,
            maxDepth: 3,
            maxItems: 16,
            deterministic: false,
            spanAbove: SPAN_ABOVE_BYTES,
        })
        // the map and its two keys and two values are five data items
        header = decodeCbor(((v as CborTag).value as Buffer[])[0], { maxBytes: 64, maxDepth: 1, maxItems: 5, deterministic: false })
    } catch (e: any) {
        // not CBOR, or not shaped as below: refused there
    }
    const parts = v instanceof CborTag && v.tag === COSE_SIGN1_TAG && Array.isArray(v.value) ? v.value : []
    const protectedHeader = parts[0]
    const payload = parts[2]
    const signature = parts[3]
    const kid = header instanceof CborMap ? header.get(4) : undefined
    // a header or payload too long to copy is no document of ours; the signature, last, ends where `signed` does
    if (
        parts.length !== 4 ||
        !(protectedHeader instanceof Buffer) ||
        !(payload instanceof Buffer) ||
        !(signature instanceof Buffer || signature instanceof CborSpan)
    )
        throw new ManifestError("malformed", "not a COSE_Sign1")
    // a kid of another length matches no key (`keyId`), so its length needs no check of its own
    if (!(kid instanceof Buffer) || (header as CborMap).get(1) !== MANIFEST_ALG || (header as CborMap).size() !== 2)
        throw new ManifestError("malformed", `protected header must name ${MANIFEST_ALG} and a kid only`)
    if (signature instanceof CborSpan) return { protectedHeader, kid, payload, signature: signed, signatureAt: signature.at }
    return { protectedHeader, kid, payload, signature, signatureAt: 0 }
}

/** The kid of a public key: the first `KEY_ID_BYTES` of its SHA-256. */
export function keyId(publicKey: Buffer): Buffer {
    return sha256([publicKey]).slice(0, KEY_ID_BYTES)
}

/** Whether `publicKey` signed the decoded parts. */
export async function verifySignature(parts: SignedParts, publicKey: Buffer): Promise<boolean> {
    return await slhDsaVerify(publicKey, sigStructure(parts.protectedHeader, parts.payload), parts.signature, undefined, parts.signatureAt)
}

/**
 * Checks the signature of decoded manifest parts against a release key and
 * returns the manifest. Throws `ManifestError`: "bad-signature" when the
 * signature does not verify, "malformed" for a bad payload.
 */
export async function verifyManifestParts(parts: SignedParts, publicKey: Buffer): Promise<FirmwareManifest> {
    if (!(await verifySignature(parts, publicKey))) throw new ManifestError("bad-signature", "manifest signature does not verify")
    return decodeManifest(parts.payload)
}

/** What the device runs, for `checkManifestPolicy`. */
export interface ManifestPolicy {
    vendorId: Buffer
    classId: Buffer
    /** Highest sequence ever confirmed on this device (its anti-rollback security counter). */
    securityCounter: number
}

/**
 * Checks a verified manifest against the device: vendor and class must be
 * ours, the sequence above the anti-rollback security counter, and the running image
 * recent enough. Throws `ManifestError`.
 */
export function checkManifestPolicy(m: FirmwareManifest, policy: ManifestPolicy) {
    if (!constantTimeEqual(m.vendorId, policy.vendorId) || !constantTimeEqual(m.classId, policy.classId))
        throw new ManifestError("wrong-device", "other vendor or class")
    if (m.sequence <= policy.securityCounter)
        throw new ManifestError("rollback", `sequence ${m.sequence} is not above the security counter ${policy.securityCounter}`)
    if (m.minSequence > policy.securityCounter) throw new ManifestError("precondition", `needs sequence ${m.minSequence} installed first`)
}
