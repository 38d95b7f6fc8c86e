/**
 * Signed firmware manifests on the host: the same format as the device's
 * src/update/manifest.ts (read that file's comment for the layout), built with
 * cbor2 and signed with a release key as a COSE_Sign1 (./cose-sign1.ts): the
 * kid in the protected header names the key, which must be in the key list
 * the owner's root signed (./trust.ts).
 */
import { createHash } from "node:crypto"
import { encode } from "cbor2"
import { bstr, decodeCborItem, readCose, SignatureError, signCose, type SignedParts, type SigningKey } from "./cose-sign1.ts"

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

/** Raised for a manifest that is malformed, does not verify, or could not be installed. */
export class ManifestError extends SignatureError {
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

/** Signs a manifest with a release key: the COSE_Sign1 bytes. */
export function signManifest(m: FirmwareManifest, key: SigningKey): Buffer {
    return signCose(encodeManifest(m), key)
}

/** Reads a signed manifest: its parts (for the signature check, ./trust.ts) and what it says. Throws `ManifestError`. */
export function readSignedManifest(signed: Buffer): { parts: SignedParts; manifest: FirmwareManifest } {
    try {
        const parts = readCose(signed)
        return { parts, manifest: checkManifest(decodeManifest(parts.payload)) }
    } catch (e) {
        throw e instanceof SignatureError && !(e instanceof ManifestError) ? new ManifestError(e.message) : e
    }
}

function asBuffer(v: unknown, what: string): Buffer {
    if (!(v instanceof Uint8Array)) throw new ManifestError(`${what} must be a byte string`)
    return Buffer.from(v)
}

/** Decodes a manifest map (payload bytes). */
export function decodeManifest(payload: Buffer): FirmwareManifest {
    const m = decodeCborItem(payload, "payload")
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
