/**
 * Moves an owner keystore of the CLIs that came before the owner service
 * (`var/owner/<owner>.json`: the owner's broker login and, per device, the
 * owner root and both counters) into an owner store.
 *
 * - The down counter starts `MIGRATION_COUNTER_JUMP` above the file's: the
 *   file was rewritten whole by every process from its own copy, so the
 *   device may have accepted counters the file no longer shows.
 * - The uplink window starts at the file's highest counter.
 * - Devices claimed before owner accounts hold their claims under the bare
 *   name, which the registry keeps from anyone who registers it; the legacy
 *   broker login proves the claims are this owner's, so it is kept in the
 *   store (a secret, like the rest of it) until the owner service registers
 *   the account with it (registry: `legacy` in `POST /v1/owners`), then deleted.
 */
import { readFileSync } from "node:fs"
import type { OwnerStore } from "./store.ts"

/** How far above the keystore's down counter the store starts. */
export const MIGRATION_COUNTER_JUMP = 1024
/** The store setting that holds the legacy broker password until registration. */
export const LEGACY_LOGIN_SETTING = "legacy-broker-password"

/** A keystore that cannot be migrated; the message says why. */
export class MigrationError extends Error {}

/** Imports the keystore at `path` into `store`; returns the owner's name and the devices imported. */
export function migrateKeystore(path: string, store: OwnerStore, at = Date.now()): { owner: string; devices: string[] } {
    let data: unknown
    try {
        data = JSON.parse(readFileSync(path, "utf8"))
    } catch (e) {
        throw new MigrationError(`${path} is not a keystore: ${(e as Error).message.split("\n")[0]}`)
    }
    const k = data as { owner?: unknown; broker?: { username?: unknown; password?: unknown }; devices?: unknown }
    if (typeof k.owner !== "string" || !k.devices || typeof k.devices !== "object") throw new MigrationError(`${path} is not a keystore`)
    const account = store.account()
    if (account && account.name !== k.owner) throw new MigrationError(`the store belongs to ${account.name}, the keystore to ${k.owner}`)
    const devices = Object.entries(k.devices as Record<string, { root?: unknown; downCounter?: unknown; upHighest?: unknown }>)
    for (const [id, d] of devices) {
        if (!/^[0-9a-f]{32}$/.test(id) || typeof d.root !== "string" || !/^[0-9a-f]{64}$/.test(d.root))
            throw new MigrationError(`${path}: device ${id.slice(0, 40)} has no usable owner root`)
        if (!Number.isSafeInteger(d.downCounter) || !Number.isSafeInteger(d.upHighest))
            throw new MigrationError(`${path}: device ${id} has bad counters`)
    }
    const imported: string[] = []
    store.db.transaction(() => {
        for (const [id, d] of devices) {
            if (store.device(id)) continue
            store.addDevice(
                { id, name: id.slice(0, 8), root: Buffer.from(d.root as string, "hex"), claimedAt: at },
                { downReservedUntil: (d.downCounter as number) + MIGRATION_COUNTER_JUMP, upHighest: d.upHighest as number }
            )
            imported.push(id)
        }
        if (!account && typeof k.broker?.password === "string") store.setSetting(LEGACY_LOGIN_SETTING, k.broker.password)
        if (!account) store.setSetting("owner-name", k.owner as string)
    })()
    return { owner: k.owner, devices: imported }
}
