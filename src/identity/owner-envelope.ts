/**
 * How the owner gets the data keys without the registry or the broker ever
 * being able to read them.
 *
 * At first boot the device knows its claim code, which it shows once. From
 * that code it derives two unrelated values (HMAC/HKDF with different labels):
 *
 * - the claim proof, which the owner presents to the registry. The registry
 *   stores only a salted PBKDF2 of the proof, and even at claim time sees only
 *   the proof, never the code;
 * - the envelope key, which seals the owner root (keys.ts) into a
 *   COSE_Encrypt0 that the registry keeps and returns on a successful claim.
 *
 * Only someone holding the code can open the envelope: the owner, at the
 * console. The registry holds ciphertext under a 160-bit secret it never sees.
 */
import { hmac, randomBuffer, sha256Hkdf } from "@devicescript/crypto"
import { canonicalClaimCode } from "./base32"
import { NONCE_BYTES, seal } from "../secure/cose"

/** External AAD of the envelope, so it cannot be passed off as any other message. */
export const ENVELOPE_AAD = "sentinel-node owner envelope"

/** What the owner sends the registry instead of the code: upper-case hex of HMAC(code, label). */
export function claimProof(code: string): string {
    return hmac(Buffer.from(canonicalClaimCode(code)), "sha256", "sentinel-node claim proof").toString("hex").toUpperCase()
}

/** The key sealing the envelope. */
export function envelopeKey(code: string, deviceId: string): Buffer {
    return sha256Hkdf(Buffer.from(canonicalClaimCode(code)), "sentinel-node owner envelope key", Buffer.from(deviceId, "hex"))
}

/** Seals the owner root for the owner; kid is the device id, the IV random (a key used once). */
export async function sealOwnerEnvelope(root: Buffer, code: string, deviceId: string): Promise<Buffer> {
    return await seal(root, {
        key: envelopeKey(code, deviceId),
        kid: Buffer.from(deviceId, "hex"),
        iv: randomBuffer(NONCE_BYTES),
        externalAad: Buffer.from(ENVELOPE_AAD),
    })
}
