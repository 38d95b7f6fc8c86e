/**
 * The device's key schedule: every key it derives, in one place. From the
 * device secret, with HKDF-SHA-256 (RFC 5869), each bound to the device id
 * (salt) and to its use (info), so one key never serves two purposes:
 *
 *   owner root      = HKDF(secret, salt = id, "sentinel-node owner root v1")         handed to the owner once, sealed
 *   up key / IV     = HKDF(owner root, salt = id, "sentinel-node up key|iv")          device -> owner messages
 *   down key / IV   = HKDF(owner root, salt = id, "sentinel-node down key|iv")        owner -> device commands
 *   WSSK master key = HKDF(secret, salt = id, "sentinel-node wssk master key v1")     the update channel (src/update)
 *   slot-record key = HKDF(secret, salt = id, "sentinel-node slot records v1")        authenticates the update records in flash
 *
 * and from the claim code, in canonical form (upper-case base32, no separators):
 *
 *   claim proof     = HMAC-SHA-256(key = code, "sentinel-node claim proof")           what the owner shows the registry, as hex
 *   envelope key    = HKDF(code, salt = id, "sentinel-node owner envelope key")       seals the owner root (identity/owner-envelope.ts)
 *
 * An IV is the first 13 bytes of its HKDF output (the CCM nonce length). The
 * SCRAM password is the secret itself; the owner root cannot be turned back
 * into it. The owner derives the channel keys from the root, and the proof
 * and envelope key from the code, with the same labels (devs/owner/keys.ts),
 * so both ends agree without the secret leaving the device.
 */
import { expectBuffer } from "../bytes/expect-buffer"
import { hkdfSha256, hmacSha256 } from "../bytes/natives"
import { canonicalClaimCode } from "../codec/base32"
import { CCM_NONCE_BYTES } from "./ccm"

/** Length of the device secret. */
export const SECRET_BYTES = 32

/** The key, Context IV and kid of one direction. */
export interface ChannelKeys {
    key: Buffer
    contextIv: Buffer
    /** COSE kid: the device id's 16 bytes. */
    kid: Buffer
}

/** HKDF of the device secret for one use, bound to the device id. */
function fromSecret(secret: Buffer, deviceId: string, use: string): Buffer {
    expectBuffer(secret, "device secret", SECRET_BYTES)
    return hkdfSha256(secret, use, Buffer.from(deviceId, "hex"))
}

/** The root the owner receives at claim time. */
export function ownerRoot(secret: Buffer, deviceId: string): Buffer {
    return fromSecret(secret, deviceId, "sentinel-node owner root v1")
}

/** The keys of one direction, from the owner root. */
export function channelKeys(root: Buffer, deviceId: string, direction: "up" | "down"): ChannelKeys {
    const id = Buffer.from(deviceId, "hex")
    return {
        key: hkdfSha256(root, `sentinel-node ${direction} key`, id),
        contextIv: hkdfSha256(root, `sentinel-node ${direction} iv`, id).slice(0, CCM_NONCE_BYTES),
        kid: id,
    }
}

/**
 * The master key of the runtime's update channel (WSSK). Handed once to the
 * update service inside a SCRAM-authenticated exchange; it opens nothing else.
 */
export function wsskMasterKey(secret: Buffer, deviceId: string): Buffer {
    return fromSecret(secret, deviceId, "sentinel-node wssk master key v1")
}

/** The HMAC key of the update records in flash (`update/slots.ts`); used for nothing else. */
export function slotRecordKey(secret: Buffer, deviceId: string): Buffer {
    return fromSecret(secret, deviceId, "sentinel-node slot records v1")
}

/** What the owner sends the registry instead of the claim code: upper-case hex of HMAC(code, label). */
export function claimProof(code: string): string {
    return hmacSha256(Buffer.from(canonicalClaimCode(code)), ["sentinel-node claim proof"])
        .toString("hex")
        .toUpperCase()
}

/** The key that seals the owner envelope, from the claim code. */
export function envelopeKey(code: string, deviceId: string): Buffer {
    return hkdfSha256(Buffer.from(canonicalClaimCode(code)), "sentinel-node owner envelope key", Buffer.from(deviceId, "hex"))
}
