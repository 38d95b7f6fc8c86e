/**
 * `npm run publish-firmware`: hands a signed image to the update service (its
 * store, shared with the registry). The service checks the manifest's signer
 * against the current key list (npm run keys), its signature, and the image
 * against the manifest before taking it; a device installs it once its owner
 * names it (the `update` command).
 *
 *   npm run publish-firmware -- <image.devs> [--manifest image.manifest] [--db var/stack/registry.db]
 */
import { existsSync, readFileSync } from "node:fs"
import { CommandError, runCommand } from "../cli/args.ts"
import { DB, withUpdateService } from "../cli/options.ts"
import { manifestPathFor } from "../updates/manifest.ts"

const spec = {
    name: "publish-firmware",
    summary: "Publishes a signed image to the update service, which checks its signer, its signature and the image first.",
    positionals: { usage: "<image.devs>", min: 1, max: 1 },
    options: {
        manifest: { type: "string", value: "file", defaultText: "<image>.manifest", help: "the signed manifest (npm run sign writes it)" },
        db: DB,
    },
} as const

await runCommand(spec, async ({ values, positionals: [imagePath] }) => {
    const manifestPath = values.manifest ?? manifestPathFor(imagePath)
    if (!existsSync(manifestPath)) throw new CommandError(`no manifest at ${manifestPath}: sign the image first (npm run sign -- --help)`)
    const image = readFileSync(imagePath)
    const signedManifest = readFileSync(manifestPath)
    const row = await withUpdateService(values.db, service => service.publish(signedManifest, image))
    console.log(`published sequence ${row.sequence} (${image.length} B, sha256 ${row.digest})`)
    console.log(`a device installs it when its owner names it: update ${row.digest} ${row.sequence}`)
})
