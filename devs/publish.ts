/**
 * `devs publish`: hands a signed image to the update service (its store,
 * shared with the registry). The service verifies the signature with the
 * owner's public key and the image against the manifest before taking it;
 * devices then find it with their next update check.
 *
 *   npx tsx devs/publish.ts <image.devs> [--manifest image.manifest] [--db var/stack/registry.db] [--key var/keys/firmware-signing.json]
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { SIGNING_KEY_PATH } from "./project.ts"
import { SqliteStore } from "./registry/store.ts"
import { KeyVault } from "./updates/key-vault.ts"
import { manifestPathFor } from "./updates/manifest.ts"
import { UpdateService } from "./updates/service.ts"
import { loadPublicKey } from "./updates/signing-key.ts"

const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
        manifest: { type: "string" },
        db: { type: "string", default: "var/stack/registry.db" },
        key: { type: "string", default: SIGNING_KEY_PATH },
    },
})
if (positionals.length !== 1) {
    console.error("usage: devs/publish.ts <image.devs> [--manifest FILE] [--db FILE] [--key FILE]")
    process.exit(2)
}
const store = new SqliteStore(values.db!)
try {
    const service = new UpdateService({
        store,
        // publishing seals no device key: a vault that is never written
        vault: KeyVault.ephemeral(),
        signingKeys: [loadPublicKey(values.key!)],
        event: (kind, identity, detail) => console.log(`${kind} ${identity}: ${detail}`),
    })
    const image = readFileSync(positionals[0])
    const row = service.publish(readFileSync(values.manifest ?? manifestPathFor(positionals[0])), image)
    console.log(`published sequence ${row.sequence} (${image.length} B, sha256 ${row.digest})`)
} catch (e) {
    console.error((e as Error).message)
    process.exitCode = 1
} finally {
    store.close()
}
