/**
 * Keys derived from the device secret with HKDF-SHA-256 (RFC 5869), each
 * bound to the device id (salt) and to its use (info), so one key never
 * serves two purposes:
 *
 *   owner root   = HKDF(secret, salt = id, "sentinel-node owner root v1")   handed to the owner once, sealed
 *   up key / IV  = HKDF(owner root, salt = id, "sentinel-node up key|iv")    device -> owner messages
 *   down key / IV = HKDF(owner root, salt = id, "sentinel-node down key|iv") owner -> device commands
 *   WSSK master key = HKDF(secret, salt = id, "sentinel-node wssk master key v1")  the update channel (src/update)
 *
 * The SCRAM password is the secret itself; the owner root cannot be turned
 * back into it. The owner derives the same channel keys from the root
 * (devs/owner/keys.ts), so both ends agree without the secret leaving the device.
 */
import { sha256Hkdf } from "@devicescript/crypto"
import { NONCE_BYTES } from "./cose"

/** The key, Context IV and kid of one direction. */
export interface ChannelKeys {
    key: Buffer
    contextIv: Buffer
    /** COSE kid: the device id's 16 bytes. */
    kid: Buffer
}

/** The root the owner receives at claim time. */
export function ownerRoot(secret: Buffer, deviceId: string): Buffer {
    return sha256Hkdf(secret, "sentinel-node owner root v1", Buffer.from(deviceId, "hex"))
}

/** The keys of one direction, from the owner root. */
export function channelKeys(root: Buffer, deviceId: string, direction: "up" | "down"): ChannelKeys {
    const id = Buffer.from(deviceId, "hex")
    return {
        key: sha256Hkdf(root, `sentinel-node ${direction} key`, id),
        contextIv: sha256Hkdf(root, `sentinel-node ${direction} iv`, id).slice(0, NONCE_BYTES),
        kid: id,
    }
}

/**
 * The master key of the runtime's update channel (WSSK). Handed once to the
 * update service inside a SCRAM-authenticated exchange; it opens nothing else.
 */
export function wsskMasterKey(secret: Buffer, deviceId: string): Buffer {
    return sha256Hkdf(secret, "sentinel-node wssk master key v1", Buffer.from(deviceId, "hex"))
}
