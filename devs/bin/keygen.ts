/**
 * `npm run keygen`: makes the owner's firmware keys (SLH-DSA-SHA2-128s): a
 * root of k of n keys (default 2 of 3) and a first release key, each in its
 * own file (mode 0600, git-ignored); signs root version 1 and key list
 * version 1 with the root; writes the firmware's trust anchor
 * (src/update/trust-anchor.ts) for that root; and publishes both documents to
 * the update service when its database exists (else npm run keys -- publish
 * does it later). An existing root is never replaced: npm run keys rotates keys.
 *
 *   npm run keygen -- [--roots 3] [--threshold 2] [--keys var/keys] [--anchor FILE] [--db FILE] [--if-missing]
 *
 * `--if-missing` keeps an existing root and only makes sure the trust anchor
 * matches it (what `npm run build`, `npm start` and `npm test` do on a fresh clone).
 */
import { existsSync } from "node:fs"
import { CommandError, displayPath, runCommand } from "../cli/args.ts"
import { DB, KEYS, ROOT_KEYS, rootShape, THRESHOLD, withUpdateService } from "../cli/options.ts"
import { TRUST_ANCHOR_PATH } from "../project.ts"
import { ensureKeyring, Keyring, publishDocuments, writeTrustAnchor } from "../updates/keyring.ts"

const spec = {
    name: "keygen",
    summary: "Makes the owner's root keys (k of n) and a first release key, signs the first root and key list, writes the trust anchor.",
    options: {
        roots: ROOT_KEYS,
        threshold: THRESHOLD,
        keys: KEYS,
        anchor: { type: "string", value: "file", default: TRUST_ANCHOR_PATH, help: "the firmware's trust anchor module" },
        db: { ...DB, help: "the update service's database to publish into, if it exists" },
        "if-missing": { type: "boolean", help: "keep an existing root; only bring the trust anchor up to date" },
    },
    notes: [
        "Then move each root-*.json to its own offline medium (npm run keys -- --help says when they are needed);",
        "keep release-*.json on the machine that signs releases.",
    ],
} as const

await runCommand(spec, async ({ values }) => {
    const keyring = new Keyring(values.keys)
    if (values["if-missing"]) {
        ensureKeyring(keyring, values.anchor)
        console.log(`root ${keyring.chain().root!.version} in ${displayPath(values.keys)}; trust anchor up to date`)
        return
    }
    const { roots, threshold } = rootShape(values.roots, values.threshold)
    if (keyring.exists())
        throw new CommandError(`${displayPath(values.keys)} holds a root already: it is never replaced here (npm run keys -- rotate-root)`)
    const documents = keyring.create(roots, threshold)
    writeTrustAnchor(keyring.anchor(), values.anchor)
    console.log(
        `root 1: ${threshold} of ${roots} keys, root-<kid>.json in ${displayPath(values.keys)}: move each to its own offline medium`
    )
    console.log(`release key ${displayPath(keyring.releaseKeyPath(keyring.releaseKey().publicKey))} (npm run sign uses it)`)
    console.log(`trust anchor written to ${displayPath(values.anchor)}: build and deploy the firmware so it trusts this root`)
    if (existsSync(values.db)) {
        await withUpdateService(values.db, service => publishDocuments(service, documents))
        console.log(`root 1 and key list 1 published to ${displayPath(values.db)}`)
    } else console.log(`no update service database at ${displayPath(values.db)}: npm run keys -- publish hands it the documents later`)
})
