/**
 * The owner's side of the key schedule in src/secure/keys.ts, with Node's
 * HKDF and HMAC: the same labels, so both ends derive the same keys from the
 * owner root and the claim code.
 */
import { createHmac, hkdfSync } from "node:crypto"

/** Nonce length of AES-CCM-16-64-256. */
const NONCE_BYTES = 13

/** The key, Context IV and kid of one direction. */
export interface ChannelKeys {
    key: Buffer
    contextIv: Buffer
    kid: Buffer
}

function hkdf(ikm: Buffer, salt: Buffer, info: string, length: number): Buffer {
    return Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from(info), length))
}

/** A typed claim code in canonical form: upper-case, no separators. */
export function canonicalClaimCode(code: string): string {
    return code.toUpperCase().replace(/[-\s]/g, "")
}

/** What the owner presents to the registry instead of the code. */
export function claimProof(code: string): string {
    return createHmac("sha256", canonicalClaimCode(code)).update("sentinel-node claim proof").digest("hex").toUpperCase()
}

/** The key of the owner envelope. */
export function envelopeKey(code: string, deviceId: string): Buffer {
    return hkdf(Buffer.from(canonicalClaimCode(code)), Buffer.from(deviceId, "hex"), "sentinel-node owner envelope key", 32)
}

/** External AAD of the owner envelope. */
export const ENVELOPE_AAD = Buffer.from("sentinel-node owner envelope")

/** The owner root a device derives from its secret (host-made test devices use it). */
export function ownerRoot(secret: Buffer, deviceId: string): Buffer {
    return hkdf(secret, Buffer.from(deviceId, "hex"), "sentinel-node owner root v1", 32)
}

/** The keys of one direction. */
export function channelKeys(root: Buffer, deviceId: string, direction: "up" | "down"): ChannelKeys {
    const id = Buffer.from(deviceId, "hex")
    return {
        key: hkdf(root, id, `sentinel-node ${direction} key`, 32),
        contextIv: hkdf(root, id, `sentinel-node ${direction} iv`, NONCE_BYTES),
        kid: id,
    }
}
