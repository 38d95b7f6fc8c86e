/**
 * `npm run migrate-keystore`: moves a keystore of the CLIs before the owner
 * service (var/owner/<owner>.json) into the owner store, in one step: device
 * keys, both counters (the down counter a safe distance ahead), and the
 * legacy broker login the account's registration proves its earlier claims with.
 * The keystore file is left as it was; delete it once the service runs.
 *
 *   npm run migrate-keystore -- <keystore.json> [--store var/owner/owner.db]
 */
import { runCommand, CommandError } from "../cli/args.ts"
import { STORE } from "../cli/options.ts"
import { migrateKeystore, MigrationError } from "../owner/keystore-migration.ts"
import { OwnerStore } from "../owner/store.ts"

const spec = {
    name: "migrate-keystore",
    summary: "Moves an owner keystore (var/owner/<owner>.json) into the owner service's store.",
    positionals: { usage: "<keystore.json>", min: 1, max: 1 },
    options: { store: STORE },
    notes: ["Then start the service (npm run owner, or npm start): it registers the owner's account and follows the devices."],
} as const

await runCommand(spec, ({ values, positionals: [path] }) => {
    const store = new OwnerStore(values.store)
    try {
        const { owner, devices } = migrateKeystore(path, store)
        console.log(`${devices.length} device(s) of ${owner} moved into ${values.store}`)
    } catch (e) {
        if (e instanceof MigrationError) throw new CommandError(e.message)
        throw e
    } finally {
        store.close()
    }
})
