/**
 * `npm run sign`: signs a compiled DeviceScript image (.devs) with a release
 * key, writing its manifest as a COSE_Sign1 (src/update/manifest.ts): by
 * default the newest release key of the current key list (npm run keys) whose
 * file is in var/keys. The sequence number must grow with every release:
 * devices refuse anything at or below the highest sequence they ever confirmed.
 *
 *   npm run sign -- <image.devs> --sequence N [--min-sequence M] [--key FILE | --keys var/keys] [--out image.manifest]
 */
import { readFileSync, writeFileSync } from "node:fs"
import { runCommand, UsageError } from "../cli/args.ts"
import { KEYS, sequenceNumber } from "../cli/options.ts"
import { keyId } from "../updates/cose-sign1.ts"
import { Keyring, loadKey } from "../updates/keyring.ts"
import { ManifestError, manifestFor, manifestPathFor, signManifest } from "../updates/manifest.ts"

const spec = {
    name: "sign",
    summary: "Signs a compiled image (.devs) with a release key of the current key list; writes its manifest (COSE_Sign1) beside it.",
    positionals: { usage: "<image.devs>", min: 1, max: 1 },
    options: {
        sequence: { type: "string", value: "N", required: true, help: "the release's sequence number, above every earlier release" },
        "min-sequence": {
            type: "string",
            value: "M",
            default: "0",
            help: "the lowest sequence a device may update from (below --sequence)",
        },
        key: { type: "string", value: "file", defaultText: "the current release key in --keys", help: "the release key file" },
        keys: KEYS,
        out: { type: "string", value: "file", defaultText: "<image>.manifest", help: "where the signed manifest goes" },
    },
} as const

/** What `manifestFor` refuses in the image given (too large, misaligned) is the caller's mistake. */
function usage<T>(make: () => T): T {
    try {
        return make()
    } catch (e) {
        throw e instanceof ManifestError ? new UsageError(e.message) : e
    }
}

await runCommand(spec, ({ values, positionals: [imagePath] }) => {
    const sequence = sequenceNumber("--sequence", values.sequence)
    if (sequence === 0) throw new UsageError("--sequence must be at least 1")
    const minSequence = sequenceNumber("--min-sequence", values["min-sequence"])
    // a device takes only images above its own sequence: a lowest sequence at or above this one shuts every device out
    if (minSequence >= sequence) throw new UsageError(`--min-sequence ${minSequence} must be below --sequence ${sequence}`)
    const image = readFileSync(imagePath)
    const manifest = usage(() => manifestFor(image, sequence, minSequence))
    const key = values.key ? loadKey(values.key) : new Keyring(values.keys).releaseKey()
    const signed = signManifest(manifest, key)
    const out = values.out ?? manifestPathFor(imagePath)
    writeFileSync(out, signed)
    const digest = manifest.digest.toString("hex")
    const kid = keyId(key.publicKey).toString("hex")
    console.log(`${out}: sequence ${manifest.sequence}, image ${image.length} B sha256 ${digest}, manifest ${signed.length} B, key ${kid}`)
})
