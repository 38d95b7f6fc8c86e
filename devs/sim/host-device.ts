/**
 * A device emulated on the host, for tests and benchmarks that need many
 * enrolled devices without running the firmware: its credentials, made as
 * the firmware makes them at first boot (src/identity/credentials.ts), and
 * the enrollment it would send, with its SCRAM verifier, the PBKDF2 of its
 * claim proof and its owner envelope sealed under the claim code.
 */
import { pbkdf2Sync, randomBytes } from "node:crypto"
import { sealEncrypt0 } from "../owner/cose.ts"
import { claimProof, ENVELOPE_AAD, envelopeKey, ownerRoot } from "../owner/keys.ts"
import { makeVerifier } from "../registry/scram.ts"

/** A device's credentials. */
export interface HostDevice {
    id: string
    password: Buffer
    claimCode: string
}

/** Makes a random device and its enrollment request body, as the firmware would (claim proof, sealed owner envelope). */
export async function makeHostDevice(): Promise<{ device: HostDevice; enrollment: Record<string, unknown> }> {
    const device = {
        id: randomBytes(16).toString("hex"),
        password: randomBytes(32),
        claimCode: randomBytes(20).toString("hex").toUpperCase(),
    }
    const envelope = await sealEncrypt0(ownerRoot(device.password, device.id), {
        key: envelopeKey(device.claimCode, device.id),
        kid: Buffer.from(device.id, "hex"),
        iv: randomBytes(13),
        externalAad: ENVELOPE_AAD,
    })
    const v = makeVerifier(device.password, randomBytes(16))
    const claimSalt = randomBytes(16)
    const proofHash = pbkdf2Sync(claimProof(device.claimCode), claimSalt, 4096, 32, "sha256")
    const enrollment = {
        id: device.id,
        scram: {
            salt: v.salt.toString("base64"),
            iterations: v.iterations,
            storedKey: v.storedKey.toString("base64"),
            serverKey: v.serverKey.toString("base64"),
        },
        claim: { salt: claimSalt.toString("base64"), iterations: 4096, hash: proofHash.toString("base64") },
        owner: { envelope: envelope.toString("base64") },
    }
    return { device, enrollment }
}
