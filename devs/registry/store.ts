/**
 * The registry's store: device verifiers, owners, security events, rate-limit
 * state and broker-credential expiries. Never a secret: SCRAM verifiers and a
 * salted slow hash of each claim code (seed: "never store actual credentials
 * centrally, even encrypted").
 *
 * `RegistryStore` is the seam for another database (PostgreSQL when one
 * machine is not enough); `SqliteStore` is the embedded default.
 */
import Database from "better-sqlite3"

/** A device as the registry knows it. */
export interface DeviceRecord {
    id: string
    scramSalt: Buffer
    scramIterations: number
    storedKey: Buffer
    serverKey: Buffer
    /** Claim verifier; cleared once the device is claimed, so the code works once. */
    claimSalt: Buffer | null
    claimIterations: number | null
    claimHash: Buffer | null
    owner: string | null
    enrolledAt: number
    claimedAt: number | null
    /** The owner envelope (COSE_Encrypt0 under a key only the claim code gives); ciphertext to the registry. */
    ownerEnvelope: Buffer
}

/** A security event kept by the registry. */
export interface SecurityEventRow {
    id?: number
    at: number
    kind: string
    /** Where the request came from (address), or "registry". */
    source: string
    /** The identity that was tried (device id or owner), never a credential. */
    identity: string
    detail: string
}

/** Failure counting for one rate-limit key. */
export interface RateLimitState {
    key: string
    failures: number
    windowStart: number
    lockedUntil: number
    lockouts: number
}

/** What the registry needs from a database. */
export interface RegistryStore {
    /** Adds a device; false if the id is taken. */
    insertDevice(device: DeviceRecord): boolean
    getDevice(id: string): DeviceRecord | undefined
    /** Marks a device claimed and forgets its claim verifier; false if it was already claimed. */
    claimDevice(id: string, owner: string, at: number): boolean
    addEvent(event: SecurityEventRow): void
    events(filter?: { kind?: string; identity?: string }): SecurityEventRow[]
    getRateLimit(key: string): RateLimitState | undefined
    putRateLimit(state: RateLimitState): void
    putBrokerExpiry(deviceId: string, expiresAt: number): void
    /** Devices whose broker credentials expired at or before `now`. */
    expiredBrokerCredentials(now: number): string[]
    deleteBrokerExpiry(deviceId: string): void
    close(): void
}

/**
 * Versioned schema migrations: each runs once, in order, inside a transaction,
 * and its number is recorded in `schema_migrations`.
 */
export const MIGRATIONS: { version: number; sql: string }[] = [
    {
        version: 1,
        sql: `
            CREATE TABLE devices (
                id TEXT PRIMARY KEY,
                scram_salt BLOB NOT NULL,
                scram_iterations INTEGER NOT NULL,
                stored_key BLOB NOT NULL,
                server_key BLOB NOT NULL,
                claim_salt BLOB,
                claim_iterations INTEGER,
                claim_hash BLOB,
                owner TEXT,
                enrolled_at INTEGER NOT NULL,
                claimed_at INTEGER
            );
            CREATE TABLE security_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at INTEGER NOT NULL,
                kind TEXT NOT NULL,
                source TEXT NOT NULL,
                identity TEXT NOT NULL,
                detail TEXT NOT NULL
            );
            CREATE INDEX security_events_kind ON security_events (kind);
            CREATE TABLE rate_limits (
                key TEXT PRIMARY KEY,
                failures INTEGER NOT NULL,
                window_start INTEGER NOT NULL,
                locked_until INTEGER NOT NULL,
                lockouts INTEGER NOT NULL
            );
            CREATE TABLE broker_credentials (
                device_id TEXT PRIMARY KEY REFERENCES devices (id),
                expires_at INTEGER NOT NULL
            );
        `,
    },
    {
        version: 2,
        sql: `ALTER TABLE devices ADD COLUMN owner_envelope BLOB NOT NULL DEFAULT x'';`,
    },
]

interface DeviceRow {
    id: string
    scram_salt: Buffer
    scram_iterations: number
    stored_key: Buffer
    server_key: Buffer
    claim_salt: Buffer | null
    claim_iterations: number | null
    claim_hash: Buffer | null
    owner: string | null
    enrolled_at: number
    claimed_at: number | null
    owner_envelope: Buffer
}

/** The embedded SQLite store. */
export class SqliteStore implements RegistryStore {
    private readonly db: Database.Database

    /** Opens (or creates) the database at `path` (":memory:" for tests) and migrates it. */
    constructor(path: string) {
        this.db = new Database(path)
        this.db.pragma("journal_mode = WAL")
        this.db.pragma("foreign_keys = ON")
        this.migrate()
    }

    /** Schema version after migration. */
    schemaVersion(): number {
        const row = this.db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null }
        return row.v ?? 0
    }

    private migrate() {
        this.db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        const current = this.schemaVersion()
        for (const m of MIGRATIONS) {
            if (m.version <= current) continue
            this.db.transaction(() => {
                this.db.exec(m.sql)
                this.db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(m.version, Date.now())
            })()
        }
    }

    insertDevice(d: DeviceRecord): boolean {
        const r = this.db
            .prepare(
                `INSERT OR IGNORE INTO devices (id, scram_salt, scram_iterations, stored_key, server_key,
                 claim_salt, claim_iterations, claim_hash, owner, enrolled_at, claimed_at, owner_envelope)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
            )
            .run(d.id, d.scramSalt, d.scramIterations, d.storedKey, d.serverKey, d.claimSalt, d.claimIterations, d.claimHash, d.owner, d.enrolledAt, d.claimedAt, d.ownerEnvelope)
        return r.changes === 1
    }

    getDevice(id: string): DeviceRecord | undefined {
        const r = this.db.prepare("SELECT * FROM devices WHERE id = ?").get(id) as DeviceRow | undefined
        if (!r) return undefined
        return {
            id: r.id,
            scramSalt: r.scram_salt,
            scramIterations: r.scram_iterations,
            storedKey: r.stored_key,
            serverKey: r.server_key,
            claimSalt: r.claim_salt,
            claimIterations: r.claim_iterations,
            claimHash: r.claim_hash,
            owner: r.owner,
            enrolledAt: r.enrolled_at,
            claimedAt: r.claimed_at,
            ownerEnvelope: r.owner_envelope,
        }
    }

    claimDevice(id: string, owner: string, at: number): boolean {
        const r = this.db
            .prepare(
                `UPDATE devices SET owner = ?, claimed_at = ?, claim_salt = NULL, claim_iterations = NULL, claim_hash = NULL
                 WHERE id = ? AND owner IS NULL`
            )
            .run(owner, at, id)
        return r.changes === 1
    }

    addEvent(e: SecurityEventRow) {
        this.db.prepare("INSERT INTO security_events (at, kind, source, identity, detail) VALUES (?, ?, ?, ?, ?)").run(e.at, e.kind, e.source, e.identity, e.detail)
    }

    events(filter: { kind?: string; identity?: string } = {}): SecurityEventRow[] {
        return this.db
            .prepare(
                `SELECT * FROM security_events WHERE (? IS NULL OR kind = ?) AND (? IS NULL OR identity = ?) ORDER BY id`
            )
            .all(filter.kind ?? null, filter.kind ?? null, filter.identity ?? null, filter.identity ?? null) as SecurityEventRow[]
    }

    getRateLimit(key: string): RateLimitState | undefined {
        const r = this.db.prepare("SELECT * FROM rate_limits WHERE key = ?").get(key) as
            | { key: string; failures: number; window_start: number; locked_until: number; lockouts: number }
            | undefined
        return r && { key: r.key, failures: r.failures, windowStart: r.window_start, lockedUntil: r.locked_until, lockouts: r.lockouts }
    }

    putRateLimit(s: RateLimitState) {
        this.db
            .prepare(
                `INSERT INTO rate_limits (key, failures, window_start, locked_until, lockouts) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start,
                 locked_until = excluded.locked_until, lockouts = excluded.lockouts`
            )
            .run(s.key, s.failures, s.windowStart, s.lockedUntil, s.lockouts)
    }

    putBrokerExpiry(deviceId: string, expiresAt: number) {
        this.db
            .prepare(
                `INSERT INTO broker_credentials (device_id, expires_at) VALUES (?, ?)
                 ON CONFLICT (device_id) DO UPDATE SET expires_at = excluded.expires_at`
            )
            .run(deviceId, expiresAt)
    }

    expiredBrokerCredentials(now: number): string[] {
        return (this.db.prepare("SELECT device_id FROM broker_credentials WHERE expires_at <= ?").all(now) as { device_id: string }[]).map(r => r.device_id)
    }

    deleteBrokerExpiry(deviceId: string) {
        this.db.prepare("DELETE FROM broker_credentials WHERE device_id = ?").run(deviceId)
    }

    close() {
        this.db.close()
    }
}
