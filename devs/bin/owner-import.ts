/**
 * `npm run owner-import`: restores an owner store from `npm run owner-export`
 * on this machine, into a new store file. Console sessions and the API token
 * stay behind (this machine makes its own); every down counter moves ahead,
 * so commands sent from the old machine after the export do not make this
 * one's look like replays.
 *
 *   npm run owner-import -- <export file> --passphrase-file <file> [--store var/owner/owner.db]
 */
import { readFileSync } from "node:fs"
import { CommandError, runCommand } from "../cli/args.ts"
import { readPassphrase, STORE } from "../cli/options.ts"
import { ExportError, importStore } from "../owner/export.ts"

const spec = {
    name: "owner-import",
    summary: "Restores an owner store from an encrypted export (npm run owner-export) into a new store file.",
    positionals: { usage: "<export file>", min: 1, max: 1 },
    options: {
        "passphrase-file": { type: "string", value: "file", required: true, help: "the passphrase of the export" },
        store: STORE,
    },
} as const

await runCommand(spec, ({ values, positionals: [file] }) => {
    const passphrase = readPassphrase(values["passphrase-file"])
    try {
        const store = importStore(readFileSync(file), passphrase, values.store)
        const owner = store.account()?.name ?? "?"
        const devices = store.devices().length
        store.close()
        console.log(`owner store of ${owner} with ${devices} device(s) restored to ${values.store}; start it with npm run owner`)
    } catch (e) {
        if (e instanceof ExportError) throw new CommandError(e.message)
        throw e
    }
})
