/**
 * The broker logins the registry hands out when RabbitMQ is the broker, kept
 * where the auth backend (./rabbitmq-auth.ts) looks them up: per login the
 * SHA-256 of its password and when it expires, and which devices each owner
 * may follow. No password is stored. A broker password is 192 random bits
 * made by the registry, never chosen by a person, so a single fast hash is
 * enough: no dictionary exists to try against it, and 2^192 guesses stay out
 * of reach however fast each one is (a slow hash would only cost every CONNECT).
 *
 * Where the registry's store is SQLite, the logins are in a SQLite file of
 * their own beside it (`SqliteBrokerLogins`): one machine, as that store is.
 * Where it is PostgreSQL, they are tables of that database
 * (../registry/postgres-store.ts, `PostgresBrokerLogins`; the interface is the
 * registry's, ../registry/broker-access.ts), so every registry
 * on it grants logins that every other registry's auth backend accepts.
 */
import { createHash } from "node:crypto"
import Database from "better-sqlite3"
import { ensurePrivateFile } from "../files/private.ts"
import { PostgresStore } from "../registry/postgres-store.ts"
import type { RegistryStore } from "../registry/store.ts"
import type { BrokerLogin, BrokerLogins } from "../registry/broker-access.ts"

/** The SHA-256 a login keeps of its password. */
export function passwordHash(password: string): Buffer {
    return createHash("sha256").update(password, "utf8").digest()
}

/** Logins in a SQLite file (":memory:" for tests), mode 0600. */
export class SqliteBrokerLogins implements BrokerLogins {
    private readonly db: Database.Database
    private readonly sql

    constructor(path: string) {
        if (path !== ":memory:") ensurePrivateFile(path)
        this.db = new Database(path)
        this.db.pragma("journal_mode = WAL")
        this.db.exec(`
            CREATE TABLE IF NOT EXISTS broker_logins (
                username TEXT PRIMARY KEY,
                password_hash BLOB NOT NULL,
                expires_at INTEGER
            );
            CREATE TABLE IF NOT EXISTS owned_devices (
                owner TEXT NOT NULL,
                device_id TEXT NOT NULL,
                PRIMARY KEY (owner, device_id)
            );
        `)
        this.sql = {
            put: this.db.prepare(
                `INSERT INTO broker_logins (username, password_hash, expires_at) VALUES (?, ?, ?)
                 ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, expires_at = excluded.expires_at`
            ),
            insert: this.db.prepare("INSERT OR IGNORE INTO broker_logins (username, password_hash, expires_at) VALUES (?, ?, ?)"),
            get: this.db.prepare("SELECT * FROM broker_logins WHERE username = ?"),
            delete: this.db.prepare("DELETE FROM broker_logins WHERE username = ?"),
            addOwnedDevice: this.db.prepare("INSERT OR IGNORE INTO owned_devices (owner, device_id) VALUES (?, ?)"),
            owns: this.db.prepare("SELECT 1 FROM owned_devices WHERE owner = ? AND device_id = ?"),
            clearOwnedDevices: this.db.prepare("DELETE FROM owned_devices WHERE owner = ?"),
        }
    }

    async put(login: BrokerLogin) {
        this.sql.put.run(login.username, login.passwordHash, login.expiresAt)
    }

    async insert(login: BrokerLogin): Promise<boolean> {
        return this.sql.insert.run(login.username, login.passwordHash, login.expiresAt).changes === 1
    }

    async get(username: string): Promise<BrokerLogin | undefined> {
        const row = this.sql.get.get(username) as { username: string; password_hash: Buffer; expires_at: number | null } | undefined
        return row && { username: row.username, passwordHash: row.password_hash, expiresAt: row.expires_at }
    }

    async delete(username: string) {
        this.sql.delete.run(username)
    }

    async addOwnedDevice(owner: string, deviceId: string) {
        this.sql.addOwnedDevice.run(owner, deviceId)
    }

    async setOwnedDevices(owner: string, deviceIds: string[]) {
        this.db.transaction(() => {
            this.sql.clearOwnedDevices.run(owner)
            for (const id of deviceIds) this.sql.addOwnedDevice.run(owner, id)
        })()
    }

    async owns(owner: string, deviceId: string): Promise<boolean> {
        return this.sql.owns.get(owner, deviceId) !== undefined
    }

    async close() {
        this.db.close()
    }
}

/** The logins beside `store`: in its database if it is PostgreSQL, else in the SQLite file `file`. */
export function openBrokerLogins(store: RegistryStore, file: string): BrokerLogins {
    return store instanceof PostgresStore ? store.brokerLogins() : new SqliteBrokerLogins(file)
}
