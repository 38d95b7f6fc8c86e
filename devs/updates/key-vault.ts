/**
 * Seals the devices' WSSK master keys at rest: AES-256-GCM under a vault key
 * that lives in its own file (mode 0600), never in the database, so a copy of
 * the database alone opens no device's update channel. The device id is the
 * associated data: a sealed key cannot be moved to another device's row.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import { createSecretFile } from "../files/private.ts"

const VERSION = 1
const IV_BYTES = 12
const TAG_BYTES = 16

/** A vault key and the sealing it does. */
export class KeyVault {
    private constructor(private readonly key: Buffer) {
        if (key.length !== 32) throw new Error("vault key must be 32 bytes")
    }

    /** Opens the vault key at `path`, making one if the file does not exist. */
    static open(path: string): KeyVault {
        if (!existsSync(path)) createSecretFile(path, randomBytes(32).toString("hex") + "\n")
        return new KeyVault(Buffer.from(readFileSync(path, "utf8").trim(), "hex"))
    }

    /** A vault with a key held in memory only (tests). */
    static ephemeral(): KeyVault {
        return new KeyVault(randomBytes(32))
    }

    /** version || iv || ciphertext || tag. */
    seal(deviceId: string, secret: Buffer): Buffer {
        const iv = randomBytes(IV_BYTES)
        const c = createCipheriv("aes-256-gcm", this.key, iv)
        c.setAAD(Buffer.from(deviceId))
        const body = Buffer.concat([c.update(secret), c.final()])
        return Buffer.concat([Buffer.from([VERSION]), iv, body, c.getAuthTag()])
    }

    /** Opens a sealed key; throws if it was sealed for another device or altered. */
    open(deviceId: string, sealed: Buffer): Buffer {
        if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) throw new Error("sealed key malformed")
        const iv = sealed.subarray(1, 1 + IV_BYTES)
        const d = createDecipheriv("aes-256-gcm", this.key, iv)
        d.setAAD(Buffer.from(deviceId))
        d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
        return Buffer.concat([d.update(sealed.subarray(1 + IV_BYTES, sealed.length - TAG_BYTES)), d.final()])
    }
}
