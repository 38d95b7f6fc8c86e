/**
 * How the owner gets the data keys without the registry or the broker ever
 * being able to read them.
 *
 * At first boot the device knows its claim code, which it shows once. From
 * that code it derives two unrelated values (`secure/keys.ts`):
 *
 * - the claim proof, which the owner presents to the registry. The registry
 *   stores only a salted PBKDF2 of the proof, and even at claim time sees only
 *   the proof, never the code;
 * - the envelope key, which seals the owner root into a COSE_Encrypt0 (the
 *   owner envelope) that the registry keeps and returns on a successful claim.
 *
 * Only someone holding the code can open the envelope: the owner, at the
 * console. The registry holds ciphertext under a 160-bit secret it never sees.
 */
import { randomBytes } from "../bytes/natives"
import { CCM_NONCE_BYTES } from "../secure/ccm"
import { seal } from "../secure/cose"
import { envelopeKey } from "../secure/keys"

/** External AAD of the envelope, so it cannot be passed off as any other message. */
export const ENVELOPE_AAD = "sentinel-node owner envelope"

/** Seals the owner root for the owner; kid is the device id, the IV random (a key used once). */
export async function sealOwnerEnvelope(root: Buffer, code: string, deviceId: string): Promise<Buffer> {
    return await seal(root, {
        key: envelopeKey(code, deviceId),
        kid: Buffer.from(deviceId, "hex"),
        iv: randomBytes(CCM_NONCE_BYTES),
        externalAad: Buffer.from(ENVELOPE_AAD),
    })
}
