/**
 * The firmware signing key (SLH-DSA-SHA2-128s, FIPS 205): made by `npm run keygen`,
 * kept on the owner's machine in a git-ignored file (mode 0600), used by
 * `npm run sign`. The firmware carries only the public key, in
 * src/update/trust-anchor.ts, which keygen writes (also git-ignored:
 * each owner builds firmware that trusts their own key, and no default key exists).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"
import { SIGNING_KEY_PATH, TRUST_ANCHOR_PATH } from "../project.ts"
import { keyId } from "./manifest.ts"
import { createSecretFile } from "../files/private.ts"

/** A key pair. */
export interface SigningKey {
    publicKey: Uint8Array
    secretKey: Uint8Array
}

/** Makes a key pair (the library draws its seed from the platform's CSPRNG). */
export function generateSigningKey(): SigningKey {
    const { publicKey, secretKey } = slh_dsa_sha2_128s.keygen()
    return { publicKey, secretKey }
}

/** Writes the key file (mode 0600). Refuses to overwrite an existing key. */
export function saveSigningKey(key: SigningKey, path = SIGNING_KEY_PATH) {
    if (existsSync(path)) throw new Error(`${path} exists; not overwriting a signing key`)
    const body = {
        alg: "SLH-DSA-SHA2-128s",
        publicKey: Buffer.from(key.publicKey).toString("hex"),
        secretKey: Buffer.from(key.secretKey).toString("hex"),
    }
    createSecretFile(path, JSON.stringify(body, null, 2) + "\n")
}

/** Reads a key file. */
export function loadSigningKey(path = SIGNING_KEY_PATH): SigningKey {
    const body = JSON.parse(readFileSync(path, "utf8"))
    if (body.alg !== "SLH-DSA-SHA2-128s") throw new Error(`${path}: not an SLH-DSA-SHA2-128s key`)
    const publicKey = Buffer.from(body.publicKey, "hex")
    const secretKey = Buffer.from(body.secretKey, "hex")
    if (publicKey.length !== 32 || secretKey.length !== 64) throw new Error(`${path}: wrong key lengths`)
    return { publicKey, secretKey }
}

/** Only the public key from a key file (what a verifier needs). */
export function loadPublicKey(path = SIGNING_KEY_PATH): Uint8Array {
    return loadSigningKey(path).publicKey
}

/** Writes the firmware's trust anchor for `publicKey`. */
export function writeTrustAnchor(publicKey: Uint8Array, path = TRUST_ANCHOR_PATH) {
    const hex = Buffer.from(publicKey).toString("hex")
    writeFileSync(
        path,
        `/**
 * The firmware signing public key (SLH-DSA-SHA2-128s), key id ${keyId(publicKey).toString("hex")}.
 * Written by \`npm run keygen\` (devs/bin/keygen.ts); not in git: each owner's firmware trusts the owner's key.
 */
export const FIRMWARE_SIGNING_KEY = hex\`${hex}\`
`
    )
}

/** The key at `path`, made (with its trust anchor) if there is none yet: what `npm start` and the tests use. */
export function ensureSigningKey(path = SIGNING_KEY_PATH): SigningKey {
    if (!existsSync(path)) saveSigningKey(generateSigningKey(), path)
    const key = loadSigningKey(path)
    const anchor = existsSync(TRUST_ANCHOR_PATH) ? readFileSync(TRUST_ANCHOR_PATH, "utf8") : ""
    if (!anchor.includes(Buffer.from(key.publicKey).toString("hex"))) writeTrustAnchor(key.publicKey)
    return key
}
