/**
 * The registry's stores, for suites that run against each: SQLite files in a
 * temporary folder, and PostgreSQL in a throwaway cluster
 * (devs/stack/pg-cluster.ts) started on first use, once per test file, with
 * one database per name. `close()` stops the cluster and removes everything.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { freePort } from "../../../devs/net/ports.ts"
import { PostgresStore } from "../../../devs/registry/postgres-store.ts"
import { SqliteStore, type RegistryStore } from "../../../devs/registry/store.ts"
import { startPgCluster, type PgCluster } from "../../../devs/stack/pg-cluster.ts"

/** One kind of store. */
export interface StoreBackend {
    readonly name: "sqlite" | "postgres"
    /** Opens (and migrates) the database `db`, made empty on its first open. Names: lower-case letters, digits, `_`. */
    open(db: string): Promise<RegistryStore>
    /** The URL or path `db` is opened from (what `openStore` and `npm run registry -- --database` take). */
    location(db: string): Promise<string>
    /** Every byte the database `db` has written to disk so far (a checkpoint first, for PostgreSQL). */
    files(db: string): Promise<Buffer[]>
    close(): Promise<void>
}

function filesUnder(dir: string): Buffer[] {
    return readdirSync(dir, { recursive: true, encoding: "utf8" })
        .map(f => join(dir, f))
        .filter(p => statSync(p).isFile())
        .map(p => readFileSync(p))
}

/** SQLite files in a folder of their own. */
export function sqliteBackend(): StoreBackend {
    const dir = mkdtempSync(join(tmpdir(), "registry-sqlite-"))
    return {
        name: "sqlite",
        open: async db => new SqliteStore(join(dir, `${db}.db`)),
        location: async db => join(dir, `${db}.db`),
        files: async db => readdirSync(dir).flatMap(f => (f.startsWith(`${db}.db`) ? [readFileSync(join(dir, f))] : [])),
        close: async () => rmSync(dir, { recursive: true, force: true }),
    }
}

/** Databases in one throwaway PostgreSQL cluster. */
export function postgresBackend(): StoreBackend {
    let cluster: Promise<PgCluster> | undefined
    const made = new Map<string, Promise<string>>()
    const opened: RegistryStore[] = []
    const location = async (db: string) => {
        cluster ??= freePort().then(port => startPgCluster(port))
        const c = await cluster
        if (!made.has(db)) made.set(db, c.createDatabase(db))
        return await made.get(db)!
    }
    return {
        name: "postgres",
        open: async db => {
            const store = await PostgresStore.open(await location(db))
            opened.push(store)
            return store
        },
        location,
        files: async db => {
            const c = await cluster!
            const admin = new pg.Client({ connectionString: await location(db) })
            await admin.connect()
            // everything in shared buffers goes to the data files
            await admin.query("CHECKPOINT")
            await admin.end()
            return filesUnder(c.dir)
        },
        close: async () => {
            // every store a test left open; one it closed itself refuses a second close, which is ignored
            await Promise.all(opened.map(s => s.close().catch(() => {})))
            if (cluster) await (await cluster).stop()
        },
    }
}

/** Both stores: every suite that takes a backend runs on each. */
export function storeBackends(): StoreBackend[] {
    return [sqliteBackend(), postgresBackend()]
}
