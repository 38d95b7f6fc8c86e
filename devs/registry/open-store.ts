/**
 * The registry's store as configuration names it: a `postgres://` URL opens
 * PostgreSQL (./postgres-store.ts: several registries may share it), anything
 * else is the path of the embedded SQLite file (./store.ts: one registry).
 */
import { isPostgresUrl, PostgresStore } from "./postgres-store.ts"
import { SqliteStore, type RegistryStore } from "./store.ts"

/** Opens and migrates the store `database` names. */
export async function openStore(database: string): Promise<RegistryStore> {
    return isPostgresUrl(database) ? await PostgresStore.open(database) : new SqliteStore(database)
}

/** Where a store is, for messages: a URL without its password, or the file. */
export function describeStore(database: string): string {
    if (!isPostgresUrl(database)) return database
    try {
        const url = new URL(database)
        url.password = ""
        return url.toString()
    } catch {
        return "postgres://(unreadable URL)"
    }
}
