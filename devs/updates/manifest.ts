/**
 * Signed firmware manifests on the host: the same format as the device's
 * src/update/manifest.ts (read that file's comment for the layout), built with
 * cbor2 and signed and verified with @noble/post-quantum's SLH-DSA-SHA2-128s.
 *
 *   18([ << {1: "SLH-DSA-SHA2-128s"} >>, {4: kid}, << manifest >>, signature ])
 *
 * The kid is the first 8 bytes of SHA-256 of the public key, so an owner with
 * several keys can tell which one signed; the device does not rely on it.
 */
import { createHash } from "node:crypto"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"
import { decode, encode, Tag } from "cbor2"

/** COSE_Sign1 tag and the only algorithm (RFC 9052 §2, §3.1: a text `alg`). */
export const COSE_SIGN1_TAG = 18
export const MANIFEST_ALG = "SLH-DSA-SHA2-128s"
export const MANIFEST_FORMAT = 1

/**
 * The runtime keeps the program in its flash settings store as one large
 * entry, a 128-byte header (devsmgr.c) and the image, in whole flash pages;
 * the simulator's runtime (@devicescript/cli 2.16.4) has 27 pages of 4096
 * bytes for it. Measured in the simulator over WSSK (a script that sent
 * deploy_start with sizes bisected between 96 and 128 KB to fresh
 * simulators, then deployed whole padded images): 110,464 bytes are taken
 * and a whole deploy of that size completes; 110,496 to 114,560 are refused
 * (no free pages), after the runtime has stopped the running program; from
 * 114,592 the simulator aborts. test/host/wssk.test.ts keeps the first two facts.
 */
const FLASH_PAGE_BYTES = 4096
const PROGRAM_PAGES = 27
const PROGRAM_HEADER_BYTES = 128
/** The largest image a device takes (110,464 bytes): the signer, the service and the device refuse more. */
export const MAX_IMAGE_BYTES = PROGRAM_PAGES * FLASH_PAGE_BYTES - PROGRAM_HEADER_BYTES
/** DeviceScript images are whole 32-byte blocks (devsmgr.c's DEVSMGR_ALIGN). */
const IMAGE_ALIGN = 32

const DNS_NAMESPACE = Buffer.from("6ba7b8109dad11d180b400c04fd430c8", "hex")

/** Name-based UUID, version 5 (RFC 4122 §4.3). */
function uuidV5(namespace: Buffer, name: string): Buffer {
    const h = createHash("sha1").update(namespace).update(name).digest().subarray(0, 16)
    h[6] = (h[6] & 0x0f) | 0x50
    h[8] = (h[8] & 0x3f) | 0x80
    return Buffer.from(h)
}

/** Vendor and class ids of sentinel-node firmware (RFC 9124 §3.3, §3.4). */
export const VENDOR_ID = uuidV5(DNS_NAMESPACE, "sentinel-node.example")
export const CLASS_ID = uuidV5(VENDOR_ID, "esp32-sensor-node")

/** What a manifest says about one image. */
export interface FirmwareManifest {
    sequence: number
    vendorId: Buffer
    classId: Buffer
    digest: Buffer
    size: number
    minSequence: number
}

/** Where `npm run sign` writes the signed manifest of `imagePath`, and `npm run publish-firmware` looks for it. */
export function manifestPathFor(imagePath: string): string {
    return imagePath.replace(/\.devs$/, "") + ".manifest"
}

/** Raised for a signed manifest that is malformed or does not verify. */
export class ManifestError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "ManifestError"
    }
}

/**
 * Checks what a manifest says could be installed at all: an image a device takes, a sequence number, and a
 * lowest sequence to update from below it (a device takes only images above its own sequence, so a lowest
 * sequence at or above the image's shuts every device out). Returns the manifest; throws `ManifestError`.
 */
export function checkManifest(m: FirmwareManifest): FirmwareManifest {
    if (m.size === 0 || m.size % IMAGE_ALIGN !== 0)
        throw new ManifestError(`image size must be a non-zero multiple of ${IMAGE_ALIGN} (DeviceScript images are)`)
    if (m.size > MAX_IMAGE_BYTES) throw new ManifestError(`image of ${m.size} bytes: over the ${MAX_IMAGE_BYTES} bytes a device takes`)
    if (!Number.isInteger(m.sequence) || m.sequence < 1 || m.sequence > 0xffffffff) throw new ManifestError("sequence must be 1..2^32-1")
    if (!Number.isInteger(m.minSequence) || m.minSequence < 0 || m.minSequence >= m.sequence)
        throw new ManifestError(`lowest sequence ${m.minSequence} is not below the sequence ${m.sequence}`)
    return m
}

/** The manifest for `image`, with the sequence number that orders it. Throws `ManifestError`. */
export function manifestFor(image: Buffer, sequence: number, minSequence = 0): FirmwareManifest {
    return checkManifest({
        sequence,
        vendorId: VENDOR_ID,
        classId: CLASS_ID,
        digest: createHash("sha256").update(image).digest(),
        size: image.length,
        minSequence,
    })
}

/** A plain Uint8Array view: cbor2 encodes a Node Buffer as an object (via toJSON), not as a byte string. */
export function bstr(b: Uint8Array): Uint8Array {
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

/** The manifest map in deterministic CBOR (RFC 8949 §4.2.1). */
export function encodeManifest(m: FirmwareManifest): Buffer {
    const map = new Map<number, unknown>([
        [1, MANIFEST_FORMAT],
        [2, m.sequence],
        [3, bstr(m.vendorId)],
        [4, bstr(m.classId)],
        [5, bstr(m.digest)],
        [6, m.size],
    ])
    if (m.minSequence > 0) map.set(7, m.minSequence)
    return Buffer.from(encode(map, { cde: true }))
}

/** The bytes signed: Sig_structure (RFC 9052 §4.4) with empty external AAD. */
export function sigStructure(protectedHeader: Buffer, payload: Buffer): Buffer {
    return Buffer.from(encode(["Signature1", bstr(protectedHeader), new Uint8Array(0), bstr(payload)], { cde: true }))
}

/** First 8 bytes of SHA-256 of a public key. */
export function keyId(publicKey: Uint8Array): Buffer {
    return createHash("sha256").update(publicKey).digest().subarray(0, 8)
}

/** Signs a manifest: the COSE_Sign1 bytes. */
export function signManifest(m: FirmwareManifest, secretKey: Uint8Array, publicKey: Uint8Array): Buffer {
    const protectedHeader = Buffer.from(encode(new Map([[1, MANIFEST_ALG]]), { cde: true }))
    const payload = encodeManifest(m)
    const signature = slh_dsa_sha2_128s.sign(sigStructure(protectedHeader, payload), secretKey)
    return Buffer.from(
        encode(new Tag(COSE_SIGN1_TAG, [bstr(protectedHeader), new Map([[4, bstr(keyId(publicKey))]]), bstr(payload), bstr(signature)]), {
            cde: true,
        })
    )
}

function asBuffer(v: unknown, what: string): Buffer {
    if (!(v instanceof Uint8Array)) throw new ManifestError(`${what} must be a byte string`)
    return Buffer.from(v)
}

/** Verifies a signed manifest with `publicKey` and returns it. Throws `ManifestError`. */
export function verifySignedManifest(signed: Buffer, publicKey: Uint8Array): FirmwareManifest {
    const v = decodeCbor(signed, "signed manifest")
    if (!(v instanceof Tag) || Number(v.tag) !== COSE_SIGN1_TAG || !Array.isArray(v.contents) || v.contents.length !== 4)
        throw new ManifestError("not a COSE_Sign1")
    const [p, , payloadField, sigField] = v.contents as unknown[]
    const protectedHeader = asBuffer(p, "protected header")
    const header = decodeCbor(protectedHeader, "protected header")
    if (!(header instanceof Map) || header.size !== 1 || header.get(1) !== MANIFEST_ALG)
        throw new ManifestError(`protected header must name ${MANIFEST_ALG} only`)
    const payload = asBuffer(payloadField, "payload")
    const signature = asBuffer(sigField, "signature")
    const ok =
        signature.length === slh_dsa_sha2_128s.lengths.signature &&
        publicKey.length === slh_dsa_sha2_128s.lengths.publicKey &&
        slh_dsa_sha2_128s.verify(signature, sigStructure(protectedHeader, payload), publicKey)
    if (!ok) throw new ManifestError("signature does not verify")
    return checkManifest(decodeManifest(payload))
}

/** One CBOR item, or a `ManifestError` that names `what` was not CBOR. */
function decodeCbor(bytes: Buffer, what: string): unknown {
    try {
        return decode(bytes)
    } catch {
        throw new ManifestError(`${what} is not CBOR`)
    }
}

/** Decodes a manifest map (payload bytes). */
export function decodeManifest(payload: Buffer): FirmwareManifest {
    const m = decodeCbor(payload, "payload")
    if (!(m instanceof Map) || m.get(1) !== MANIFEST_FORMAT) throw new ManifestError("unknown manifest format")
    const uint = (k: number) => {
        const x = m.get(k)
        if (typeof x !== "number" || !Number.isInteger(x) || x < 0)
            throw new ManifestError(`manifest element ${k} must be an unsigned integer`)
        return x
    }
    return {
        sequence: uint(2),
        vendorId: asBuffer(m.get(3), "vendor id"),
        classId: asBuffer(m.get(4), "class id"),
        digest: asBuffer(m.get(5), "digest"),
        size: uint(6),
        minSequence: m.has(7) ? uint(7) : 0,
    }
}
