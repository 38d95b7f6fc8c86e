/**
 * `npm run publish-firmware`: hands a signed image to the update service (its
 * store, shared with the registry). The service verifies the signature with
 * the owner's public key and the image against the manifest before taking
 * it; devices then find it at their next update check.
 *
 *   npm run publish-firmware -- <image.devs> [--manifest image.manifest] [--db var/stack/registry.db] [--key FILE]
 */
import { existsSync, readFileSync } from "node:fs"
import { CommandError, displayPath, runCommand } from "../cli/args.ts"
import { SIGNING_KEY_PATH, stackFiles } from "../project.ts"
import { SqliteStore } from "../registry/store.ts"
import { KeyVault } from "../updates/key-vault.ts"
import { manifestPathFor } from "../updates/manifest.ts"
import { UpdateService } from "../updates/service.ts"
import { loadPublicKey } from "../updates/signing-key.ts"

const spec = {
    name: "publish-firmware",
    summary: "Publishes a signed image to the update service, which checks the signature and the image first.",
    positionals: { usage: "<image.devs>", min: 1, max: 1 },
    options: {
        manifest: { type: "string", value: "file", defaultText: "<image>.manifest", help: "the signed manifest (npm run sign writes it)" },
        db: { type: "string", value: "file", default: stackFiles().registryDb, help: "the registry's database (the update service's too)" },
        key: { type: "string", value: "file", default: SIGNING_KEY_PATH, help: "the signing key whose public half the service accepts" },
    },
} as const

await runCommand(spec, async ({ values, positionals: [imagePath] }) => {
    const manifestPath = values.manifest ?? manifestPathFor(imagePath)
    if (!existsSync(manifestPath)) throw new CommandError(`no manifest at ${manifestPath}: sign the image first (npm run sign -- --help)`)
    if (!existsSync(values.key)) throw new CommandError(`no signing key at ${displayPath(values.key)}: make one with npm run keygen`)
    const image = readFileSync(imagePath)
    const signedManifest = readFileSync(manifestPath)
    const store = new SqliteStore(values.db)
    try {
        const service = new UpdateService({
            store,
            // publishing seals no device key: a vault that is never written
            vault: KeyVault.ephemeral(),
            signingKeys: [loadPublicKey(values.key)],
            event: (kind, identity, detail) => console.log(`${kind} ${identity}: ${detail}`),
        })
        const row = await service.publish(signedManifest, image)
        console.log(`published sequence ${row.sequence} (${image.length} B, sha256 ${row.digest})`)
    } finally {
        await store.close()
    }
})
