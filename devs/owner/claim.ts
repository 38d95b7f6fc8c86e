/**
 * Claiming a device as its owner: present the claim proof, receive the
 * sealed owner envelope, open it with the code, and keep the owner root (and,
 * on a first claim, the owner's broker login) in the keystore.
 */
import { claim, type Transport } from "../registry/client.ts"
import { ENVELOPE_AAD, claimProof, envelopeKey } from "./keys.ts"
import { openEncrypt0 } from "./cose.ts"
import type { Keystore } from "./keystore.ts"

/** Claims `deviceId` with the code it printed; throws with the registry's reason when refused. */
export async function claimDevice(t: Transport, keystore: Keystore, deviceId: string, code: string): Promise<void> {
    const reply = await claim(t, deviceId, claimProof(code), keystore.data.owner)
    if (reply.status !== 200) throw new Error(`claim refused (HTTP ${reply.status}): ${String(reply.body.error ?? "")}`)
    const envelope = Buffer.from(String(reply.body.envelope ?? ""), "base64")
    const opened = await openEncrypt0(envelope, { key: envelopeKey(code, deviceId), externalAad: ENVELOPE_AAD })
    if (opened.headers.kid.toString("hex") !== deviceId || opened.plaintext.length !== 32)
        throw new Error("the registry returned an envelope for another device")
    keystore.addDevice(deviceId, opened.plaintext)
    const broker = reply.body.broker as { username: string; password: string } | undefined
    if (broker) keystore.data.broker = { username: broker.username, password: broker.password }
    keystore.save()
}
