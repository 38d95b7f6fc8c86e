/**
 * `npm run owner-export`: the whole owner store, encrypted under a
 * passphrase (scrypt, then AES-256-GCM; the format is in devs/owner/export.ts),
 * to restore the owner's keys and counters on another machine with
 * `npm run owner-import`. Stop the owner service first, or export while it runs
 * (the copy is a consistent snapshot either way).
 *
 *   npm run owner-export -- --out <file> --passphrase-file <file> [--store var/owner/owner.db]
 */
import { existsSync, writeFileSync } from "node:fs"
import { CommandError, runCommand, UsageError } from "../cli/args.ts"
import { readPassphrase, STORE } from "../cli/options.ts"
import { exportStore, MIN_PASSPHRASE_LENGTH } from "../owner/export.ts"
import { OwnerStore } from "../owner/store.ts"

const spec = {
    name: "owner-export",
    summary: "Writes the owner store encrypted under a passphrase, to restore it elsewhere with npm run owner-import.",
    options: {
        out: { type: "string", value: "file", required: true, help: "where the encrypted export goes (mode 0600)" },
        "passphrase-file": { type: "string", value: "file", required: true, help: `the passphrase (${MIN_PASSPHRASE_LENGTH}+ characters)` },
        store: STORE,
    },
} as const

await runCommand(spec, ({ values }) => {
    const passphrase = readPassphrase(values["passphrase-file"])
    if (passphrase.length < MIN_PASSPHRASE_LENGTH) throw new UsageError(`the passphrase needs at least ${MIN_PASSPHRASE_LENGTH} characters`)
    if (!existsSync(values.store)) throw new CommandError(`no owner store at ${values.store}`)
    if (existsSync(values.out)) throw new CommandError(`${values.out} exists: choose a new file`)
    const store = new OwnerStore(values.store)
    try {
        writeFileSync(values.out, exportStore(store, passphrase), { mode: 0o600 })
    } finally {
        store.close()
    }
    console.log(`owner store exported to ${values.out}; keep the passphrase apart from it`)
})
