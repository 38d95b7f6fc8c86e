/**
 * `devs keygen`: makes the owner's firmware signing key (SLH-DSA-SHA2-128s)
 * and writes the firmware's trust anchor (src/update/trust-anchor.ts) for it.
 * The key file is git-ignored and mode 0600; an existing key is never overwritten.
 *
 *   npx tsx devs/keygen.ts [--key var/keys/firmware-signing.json] [--if-missing]
 *
 * `--if-missing` keeps an existing key and only makes sure the trust anchor
 * matches it (what `npm run build`, `npm start` and `npm test` do on a fresh clone).
 */
import { parseArgs } from "node:util"
import { SIGNING_KEY_PATH, TRUST_ANCHOR_PATH } from "./project.ts"
import { keyId } from "./updates/manifest.ts"
import { ensureSigningKey, generateSigningKey, saveSigningKey, writeTrustAnchor } from "./updates/signing-key.ts"

const { values } = parseArgs({ options: { key: { type: "string", default: SIGNING_KEY_PATH }, "if-missing": { type: "boolean", default: false } } })
if (values["if-missing"]) {
    const key = ensureSigningKey(values.key!)
    console.log(`signing key ${keyId(key.publicKey).toString("hex")}; trust anchor up to date`)
    process.exit(0)
}
try {
    const key = generateSigningKey()
    saveSigningKey(key, values.key!)
    writeTrustAnchor(key.publicKey)
    console.log(`signing key ${keyId(key.publicKey).toString("hex")} in ${values.key} (keep it off the device and out of git)`)
    console.log(`trust anchor written to ${TRUST_ANCHOR_PATH}: rebuild and deploy the firmware so it trusts this key`)
} catch (e) {
    console.error((e as Error).message)
    process.exit(1)
}
