/**
 * `npm run keygen`: makes the owner's firmware signing key (SLH-DSA-SHA2-128s)
 * and writes the firmware's trust anchor (src/update/trust-anchor.ts) for it.
 * The key file is git-ignored and mode 0600; an existing key is never overwritten.
 *
 *   npm run keygen -- [--key var/keys/firmware-signing.json] [--if-missing]
 *
 * `--if-missing` keeps an existing key and only makes sure the trust anchor
 * matches it (what `npm run build`, `npm start` and `npm test` do on a fresh clone).
 */
import { existsSync } from "node:fs"
import { CommandError, displayPath, runCommand } from "../cli/args.ts"
import { SIGNING_KEY_PATH, TRUST_ANCHOR_PATH } from "../project.ts"
import { keyId } from "../updates/manifest.ts"
import { ensureSigningKey, generateSigningKey, saveSigningKey, writeTrustAnchor } from "../updates/signing-key.ts"

const spec = {
    name: "keygen",
    summary: "Makes the owner's firmware signing key (SLH-DSA-SHA2-128s) and writes the firmware's trust anchor for it.",
    options: {
        key: {
            type: "string",
            value: "file",
            default: SIGNING_KEY_PATH,
            help: "where the key goes (mode 0600; keep it off the device, out of git)",
        },
        "if-missing": { type: "boolean", help: "keep an existing key; only bring the trust anchor up to date" },
    },
} as const

await runCommand(spec, ({ values }) => {
    if (values["if-missing"]) {
        const key = ensureSigningKey(values.key)
        console.log(`signing key ${keyId(key.publicKey).toString("hex")}; trust anchor up to date`)
        return
    }
    if (existsSync(values.key)) {
        const path = displayPath(values.key)
        throw new CommandError(`${path} exists: a signing key is never overwritten (devices trust it); --if-missing keeps it`)
    }
    const key = generateSigningKey()
    saveSigningKey(key, values.key)
    writeTrustAnchor(key.publicKey)
    console.log(`signing key ${keyId(key.publicKey).toString("hex")} in ${displayPath(values.key)} (keep it off the device and out of git)`)
    console.log(`trust anchor written to ${displayPath(TRUST_ANCHOR_PATH)}: rebuild and deploy the firmware so it trusts this key`)
})
