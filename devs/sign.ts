/**
 * `devs sign`: signs a compiled DeviceScript image (.devs) with the owner's
 * firmware key, writing its manifest as a COSE_Sign1 (src/update/manifest.ts).
 * The sequence number must grow with every release: devices refuse anything
 * at or below the highest sequence they ever confirmed.
 *
 *   npx tsx devs/sign.ts <image.devs> --sequence N [--min-sequence M] [--key FILE] [--out image.manifest]
 */
import { readFileSync, writeFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { SIGNING_KEY_PATH } from "./project.ts"
import { manifestFor, manifestPathFor, signManifest } from "./updates/manifest.ts"
import { loadSigningKey } from "./updates/signing-key.ts"

const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
        sequence: { type: "string" },
        "min-sequence": { type: "string", default: "0" },
        key: { type: "string", default: SIGNING_KEY_PATH },
        out: { type: "string" },
    },
})
if (positionals.length !== 1 || !values.sequence) {
    console.error("usage: devs/sign.ts <image.devs> --sequence N [--min-sequence M] [--key FILE] [--out FILE]")
    process.exit(2)
}
try {
    const image = readFileSync(positionals[0])
    const key = loadSigningKey(values.key!)
    const manifest = manifestFor(image, Number(values.sequence), Number(values["min-sequence"]))
    const signed = signManifest(manifest, key.secretKey, key.publicKey)
    const out = values.out ?? manifestPathFor(positionals[0])
    writeFileSync(out, signed)
    console.log(`${out}: sequence ${manifest.sequence}, image ${image.length} B sha256 ${manifest.digest.toString("hex")}, manifest ${signed.length} B`)
} catch (e) {
    console.error((e as Error).message)
    process.exit(1)
}
