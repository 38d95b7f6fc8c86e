/**
 * The registry's store: device verifiers, owners, security events, rate-limit
 * state, broker-credential expiries, and the update service's signed images
 * and per-device update state. No login secret: SCRAM verifiers and a salted
 * slow hash of each claim code (seed: "never store actual credentials
 * centrally, even encrypted"). The one key held is each device's WSSK master
 * key, which the update service needs to reach the runtime; it is sealed
 * under a key kept outside the database (devs/updates/key-vault.ts).
 *
 * `RegistryStore` is the seam between the registry and its database; every
 * call is asynchronous, because a database across the network
 * (./postgres-store.ts, when one machine is not enough) answers later.
 * `SqliteStore` is the embedded default: better-sqlite3 answers at once, and
 * its methods only wrap those answers. What several registries must share
 * lives here too, so any number of them can serve behind one name: the
 * pending SCRAM exchanges (./exchanges.ts), each rate-limit count updated in
 * one step (./rate-limit.ts), the key of the decoy salts (./app.ts), and
 * each registry's login to the broker's management API, as a hash
 * (devs/broker/rabbitmq-auth.ts).
 */
import { randomBytes } from "node:crypto"
import Database from "better-sqlite3"
import { ensurePrivateFile } from "../files/private.ts"

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

/** A signed firmware image the update service may deploy (devs/updates). */
export interface FirmwareImageRow {
    /** SHA-256 of the image, hex: what devices approve and the runtime reports. */
    digest: string
    sequence: number
    /** Device class (hex UUID) the manifest names. */
    classId: string
    /** The COSE_Sign1 manifest exactly as signed. */
    signedManifest: Buffer
    image: Buffer
    publishedAt: number
}

/** Where one device's update stands, on the service's side. */
export interface DeviceUpdateRow {
    deviceId: string
    /** The device's WSSK master key, sealed under the service's at-rest key (never in clear here). */
    sealedWsskKey: Buffer | null
    /** "idle" | "approved" | "trial" | "rollback" */
    phase: string
    /** Digest the device approved (the only one the service will deploy to it, apart from rollback). */
    approvedDigest: string | null
    /** Digest of the confirmed image to put back if the candidate does not confirm. */
    rollbackDigest: string | null
    /** Time by which the candidate must confirm (ms since the epoch). */
    deadline: number | null
    /** The last candidate that failed its trial here: not deployed to this device again. */
    failedDigest: string | null
    updatedAt: number
}

/** An owner account: a name and its SCRAM verifier, nothing that logs in (devs/registry/owners.ts). */
export interface OwnerRecord {
    name: string
    scramSalt: Buffer
    scramIterations: number
    storedKey: Buffer
    serverKey: Buffer
    createdAt: number
}

/** Attempt counting for one rate-limit key (devs/registry/rate-limit.ts). */
export interface RateLimitState {
    key: string
    /** Attempts counted in the window (the column is named `failures`: they were all failures once). */
    attempts: number
    windowStart: number
    lockedUntil: number
    lockouts: number
}

/** What the registry needs from a database. */
export interface RegistryStore {
    /** Adds a device; false if the id is taken. */
    insertDevice(device: DeviceRecord): Promise<boolean>
    getDevice(id: string): Promise<DeviceRecord | undefined>
    /** Marks a device claimed and forgets its claim verifier; false if it was already claimed. */
    claimDevice(id: string, owner: string, at: number): Promise<boolean>
    addEvent(event: SecurityEventRow): Promise<void>
    events(filter?: { kind?: string; identity?: string }): Promise<SecurityEventRow[]>
    getRateLimit(key: string): Promise<RateLimitState | undefined>
    putRateLimit(state: RateLimitState): Promise<void>
    /** Drops the rate limits whose window started, and whose lockout ended, before `before`. */
    forgetRateLimits(before: number): Promise<void>
    putBrokerExpiry(deviceId: string, expiresAt: number): Promise<void>
    /** Devices whose broker credentials expired at or before `now`. */
    expiredBrokerCredentials(now: number): Promise<string[]>
    deleteBrokerExpiry(deviceId: string): Promise<void>
    /** Adds a firmware image; false if its digest, or its class and sequence, are already published. */
    insertFirmwareImage(image: FirmwareImageRow): Promise<boolean>
    getFirmwareImage(digest: string): Promise<FirmwareImageRow | undefined>
    /** The image with the highest sequence for a device class. */
    latestFirmwareImage(classId: string): Promise<FirmwareImageRow | undefined>
    getDeviceUpdate(deviceId: string): Promise<DeviceUpdateRow | undefined>
    putDeviceUpdate(update: DeviceUpdateRow): Promise<void>
    /** Adds a root document or key list (devs/updates/trust.ts) with its signatures in order; false if that version is published. */
    insertTrustDocument(document: TrustDocumentRow): Promise<boolean>
    /** Every trust document, roots first, each kind in version order. */
    trustDocuments(): Promise<TrustDocumentRow[]>
    /** How many trust documents (versions of either kind) are published: a cheap check for news. */
    trustDocumentCount(): Promise<number>
    /** One signature (a COSE_Sign1) of a trust document, by its place. */
    getTrustCopy(kind: string, version: number, copy: number): Promise<Buffer | undefined>
    /** Adds an owner account; false if the name is taken. */
    insertOwner(owner: OwnerRecord): Promise<boolean>
    getOwner(name: string): Promise<OwnerRecord | undefined>
    /** The devices claimed under an owner name. */
    devicesOf(owner: string): Promise<string[]>
    /** Keeps an owner session by the SHA-256 of its token. */
    putOwnerSession(tokenHash: Buffer, owner: string, expiresAt: number): Promise<void>
    /** The owner of a session still valid at `now`. */
    ownerSession(tokenHash: Buffer, now: number): Promise<string | undefined>
    deleteExpiredOwnerSessions(now: number): Promise<void>
    putOwnerBrokerExpiry(owner: string, expiresAt: number): Promise<void>
    /** Owners whose broker login expired at or before `now`. */
    expiredOwnerBrokerLogins(now: number): Promise<string[]>
    deleteOwnerBrokerExpiry(owner: string): Promise<void>
    /**
     * Runs `step` on a key's state (undefined when it has none) and stores what it returns (nothing when
     * undefined), as one step: no other registry on this store counts the same key in between.
     */
    updateRateLimit(key: string, step: (state: RateLimitState | undefined) => RateLimitState | undefined): Promise<void>
    /**
     * Keeps a pending exchange, after dropping those expired at `now`, unless its source holds
     * `limits.perSource` of them or the store `limits.total`: then says which.
     */
    openExchange(exchange: PendingExchangeRow, limits: { perSource: number; total: number }, now: number): Promise<ExchangeFull | undefined>
    /** Takes a pending exchange out (it is used once): its state, or undefined if unknown or expired at `now`. */
    takeExchange(sid: string, now: number): Promise<string | undefined>
    /** A 32-byte random secret of this store, made on first use: every registry on the store gets the same one. */
    sharedSecret(name: string): Promise<Buffer>
    /** Keeps a registry's broker management login: the SHA-256 of its password (devs/broker/rabbitmq-auth.ts). */
    putBrokerAdmin(username: string, passwordHash: Buffer, at: number): Promise<void>
    /** The SHA-256 a management login's password must match, whichever registry on this store made it. */
    brokerAdminHash(username: string): Promise<Buffer | undefined>
    deleteBrokerAdmin(username: string): Promise<void>
    /** Schema version after migration. */
    schemaVersion(): Promise<number>
    close(): Promise<void>
}

/** A SCRAM exchange between its two messages (./exchanges.ts). */
export interface PendingExchangeRow {
    /** The `sid` of RFC 7804 §5 (128 random bits, hex). */
    sid: string
    /** The source that opened it (./source.ts). */
    source: string
    /** What the final message is checked against (./exchanges.ts serializes it). */
    state: string
    expiresAt: number
}

/** Which bound a new exchange ran into. */
export type ExchangeFull = "source-full" | "full"

/** A root document or key list as published: one COSE_Sign1 per signature, all over the same payload. */
export interface TrustDocumentRow {
    kind: "root" | "keys"
    version: number
    copies: Buffer[]
    publishedAt: number
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
    {
        version: 3,
        sql: `
            CREATE TABLE firmware_images (
                digest TEXT PRIMARY KEY,
                sequence INTEGER NOT NULL,
                class_id TEXT NOT NULL,
                signed_manifest BLOB NOT NULL,
                image BLOB NOT NULL,
                published_at INTEGER NOT NULL
            );
            CREATE INDEX firmware_images_class ON firmware_images (class_id, sequence);
            CREATE TABLE device_updates (
                device_id TEXT PRIMARY KEY REFERENCES devices (id),
                sealed_wssk_key BLOB,
                phase TEXT NOT NULL,
                approved_digest TEXT,
                rollback_digest TEXT,
                deadline INTEGER,
                failed_digest TEXT,
                updated_at INTEGER NOT NULL
            );
        `,
    },
    {
        // owner accounts (devs/registry/owners.ts): verifiers, hashed session tokens, broker login expiries
        version: 4,
        sql: `
            CREATE TABLE owners (
                name TEXT PRIMARY KEY,
                scram_salt BLOB NOT NULL,
                scram_iterations INTEGER NOT NULL,
                stored_key BLOB NOT NULL,
                server_key BLOB NOT NULL,
                created_at INTEGER NOT NULL
            );
            CREATE TABLE owner_sessions (
                token_hash BLOB PRIMARY KEY,
                owner TEXT NOT NULL REFERENCES owners (name),
                expires_at INTEGER NOT NULL
            );
            CREATE TABLE owner_broker_logins (
                owner TEXT PRIMARY KEY REFERENCES owners (name),
                expires_at INTEGER NOT NULL
            );
            CREATE INDEX devices_owner ON devices (owner);
        `,
    },
    {
        // what several registries on one database share: pending SCRAM exchanges, the decoy salts' key
        version: 5,
        sql: `
            CREATE TABLE scram_exchanges (
                sid TEXT PRIMARY KEY,
                source TEXT NOT NULL,
                state TEXT NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE INDEX scram_exchanges_source ON scram_exchanges (source);
            CREATE INDEX scram_exchanges_expiry ON scram_exchanges (expires_at);
            CREATE TABLE registry_secrets (
                name TEXT PRIMARY KEY,
                secret BLOB NOT NULL
            );
        `,
    },
    {
        // the owner's signed roots and key lists (devs/updates/trust.ts), each signature a row
        version: 6,
        sql: `
            CREATE TABLE trust_documents (
                kind TEXT NOT NULL,
                version INTEGER NOT NULL,
                copy INTEGER NOT NULL,
                signed BLOB NOT NULL,
                published_at INTEGER NOT NULL,
                PRIMARY KEY (kind, version, copy)
            );
        `,
    },
    {
        // each registry's login to the broker's management API, by the SHA-256 of its password: any registry's auth
        // backend accepts any registry's login, while the password itself stays in the memory of the one that made it
        version: 7,
        sql: `
            CREATE TABLE broker_admins (
                username TEXT PRIMARY KEY,
                password_hash BLOB NOT NULL,
                created_at INTEGER NOT NULL
            );
        `,
    },
    {
        // the broker logins RabbitMQ's auth backend checks (devs/broker/rabbitmq-logins.ts), by the SHA-256 of each
        // password, and the devices each owner follows: on PostgreSQL every registry grants and every backend checks
        // them here. A SQLite store's registry keeps them in a file of its own, so these tables stay empty there: one
        // list of migrations, one schema version for both stores.
        version: 8,
        sql: `
            CREATE TABLE broker_logins (
                username TEXT PRIMARY KEY,
                password_hash BLOB NOT NULL,
                expires_at INTEGER
            );
            CREATE TABLE broker_owned_devices (
                owner TEXT NOT NULL,
                device_id TEXT NOT NULL,
                PRIMARY KEY (owner, device_id)
            );
        `,
    },
]

/** A store's own key, made at random on first use (`RegistryStore.sharedSecret`). */
export const SHARED_SECRET_BYTES = 32

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

/** Every statement the store runs, prepared once when it opens, after the migrations have made the tables. */
function prepareStatements(db: Database.Database) {
    return {
        insertDevice: db.prepare(
            `INSERT OR IGNORE INTO devices (id, scram_salt, scram_iterations, stored_key, server_key,
             claim_salt, claim_iterations, claim_hash, owner, enrolled_at, claimed_at, owner_envelope)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
        ),
        getDevice: db.prepare("SELECT * FROM devices WHERE id = ?"),
        claimDevice: db.prepare(
            `UPDATE devices SET owner = ?, claimed_at = ?, claim_salt = NULL, claim_iterations = NULL, claim_hash = NULL
             WHERE id = ? AND owner IS NULL`
        ),
        addEvent: db.prepare("INSERT INTO security_events (at, kind, source, identity, detail) VALUES (?, ?, ?, ?, ?)"),
        events: db.prepare(`SELECT * FROM security_events WHERE (? IS NULL OR kind = ?) AND (? IS NULL OR identity = ?) ORDER BY id`),
        getRateLimit: db.prepare("SELECT * FROM rate_limits WHERE key = ?"),
        putRateLimit: db.prepare(
            `INSERT INTO rate_limits (key, failures, window_start, locked_until, lockouts) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start,
             locked_until = excluded.locked_until, lockouts = excluded.lockouts`
        ),
        forgetRateLimits: db.prepare("DELETE FROM rate_limits WHERE window_start < ? AND locked_until < ?"),
        putBrokerExpiry: db.prepare(
            `INSERT INTO broker_credentials (device_id, expires_at) VALUES (?, ?)
             ON CONFLICT (device_id) DO UPDATE SET expires_at = excluded.expires_at`
        ),
        expiredBrokerCredentials: db.prepare("SELECT device_id FROM broker_credentials WHERE expires_at <= ?"),
        deleteBrokerExpiry: db.prepare("DELETE FROM broker_credentials WHERE device_id = ?"),
        insertFirmwareImage: db.prepare(
            `INSERT OR IGNORE INTO firmware_images (digest, sequence, class_id, signed_manifest, image, published_at)
             SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM firmware_images WHERE class_id = ? AND sequence = ?)`
        ),
        getFirmwareImage: db.prepare("SELECT * FROM firmware_images WHERE digest = ?"),
        latestFirmwareImage: db.prepare("SELECT * FROM firmware_images WHERE class_id = ? ORDER BY sequence DESC, published_at LIMIT 1"),
        getDeviceUpdate: db.prepare("SELECT * FROM device_updates WHERE device_id = ?"),
        trustVersionExists: db.prepare("SELECT 1 FROM trust_documents WHERE kind = ? AND version = ?"),
        insertTrustCopy: db.prepare("INSERT INTO trust_documents (kind, version, copy, signed, published_at) VALUES (?, ?, ?, ?, ?)"),
        trustDocuments: db.prepare("SELECT * FROM trust_documents ORDER BY kind = 'keys', version, copy"),
        trustDocumentCount: db.prepare("SELECT COUNT(*) AS n FROM trust_documents WHERE copy = 0"),
        getTrustCopy: db.prepare("SELECT signed FROM trust_documents WHERE kind = ? AND version = ? AND copy = ?"),
        putDeviceUpdate: db.prepare(
            `INSERT INTO device_updates (device_id, sealed_wssk_key, phase, approved_digest, rollback_digest, deadline, failed_digest,
             updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (device_id) DO UPDATE SET sealed_wssk_key = excluded.sealed_wssk_key, phase = excluded.phase,
             approved_digest = excluded.approved_digest, rollback_digest = excluded.rollback_digest,
             deadline = excluded.deadline, failed_digest = excluded.failed_digest, updated_at = excluded.updated_at`
        ),
        insertOwner: db.prepare(
            `INSERT OR IGNORE INTO owners (name, scram_salt, scram_iterations, stored_key, server_key, created_at)
             VALUES (?, ?, ?, ?, ?, ?)`
        ),
        getOwner: db.prepare("SELECT * FROM owners WHERE name = ?"),
        devicesOf: db.prepare("SELECT id FROM devices WHERE owner = ? ORDER BY claimed_at"),
        putOwnerSession: db.prepare("INSERT INTO owner_sessions (token_hash, owner, expires_at) VALUES (?, ?, ?)"),
        ownerSession: db.prepare("SELECT owner FROM owner_sessions WHERE token_hash = ? AND expires_at > ?"),
        deleteExpiredOwnerSessions: db.prepare("DELETE FROM owner_sessions WHERE expires_at <= ?"),
        putOwnerBrokerExpiry: db.prepare(
            `INSERT INTO owner_broker_logins (owner, expires_at) VALUES (?, ?)
             ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at`
        ),
        expiredOwnerBrokerLogins: db.prepare("SELECT owner FROM owner_broker_logins WHERE expires_at <= ?"),
        deleteOwnerBrokerExpiry: db.prepare("DELETE FROM owner_broker_logins WHERE owner = ?"),
        dropExpiredExchanges: db.prepare("DELETE FROM scram_exchanges WHERE expires_at < ?"),
        exchangesOf: db.prepare("SELECT COUNT(*) AS n FROM scram_exchanges WHERE source = ?"),
        exchanges: db.prepare("SELECT COUNT(*) AS n FROM scram_exchanges"),
        openExchange: db.prepare("INSERT INTO scram_exchanges (sid, source, state, expires_at) VALUES (?, ?, ?, ?)"),
        takeExchange: db.prepare("DELETE FROM scram_exchanges WHERE sid = ? RETURNING state, expires_at"),
        addSecret: db.prepare("INSERT INTO registry_secrets (name, secret) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"),
        secret: db.prepare("SELECT secret FROM registry_secrets WHERE name = ?"),
        putBrokerAdmin: db.prepare(
            `INSERT INTO broker_admins (username, password_hash, created_at) VALUES (?, ?, ?)
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, created_at = excluded.created_at`
        ),
        brokerAdminHash: db.prepare("SELECT password_hash FROM broker_admins WHERE username = ?"),
        deleteBrokerAdmin: db.prepare("DELETE FROM broker_admins WHERE username = ?"),
        schemaVersion: db.prepare("SELECT MAX(version) AS v FROM schema_migrations"),
    }
}

/** The embedded SQLite store. */
export class SqliteStore implements RegistryStore {
    private readonly db: Database.Database
    private readonly sql: ReturnType<typeof prepareStatements>

    /** Opens (or creates, mode 0600) the database at `path` (":memory:" for tests) and migrates it. */
    constructor(path: string) {
        // it holds ServerKeys: private from its first byte, and its WAL and shared-memory files take its mode
        if (path !== ":memory:") ensurePrivateFile(path)
        this.db = new Database(path)
        this.db.pragma("journal_mode = WAL")
        this.db.pragma("foreign_keys = ON")
        this.migrate()
        this.sql = prepareStatements(this.db)
    }

    async schemaVersion(): Promise<number> {
        return (this.sql.schemaVersion.get() as { v: number | null }).v ?? 0
    }

    private migrate() {
        this.db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        const row = this.db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null }
        const current = row.v ?? 0
        for (const m of MIGRATIONS) {
            if (m.version <= current) continue
            this.db.transaction(() => {
                this.db.exec(m.sql)
                this.db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(m.version, Date.now())
            })()
        }
    }

    async insertDevice(d: DeviceRecord): Promise<boolean> {
        const r = this.sql.insertDevice.run(
            d.id,
            d.scramSalt,
            d.scramIterations,
            d.storedKey,
            d.serverKey,
            d.claimSalt,
            d.claimIterations,
            d.claimHash,
            d.owner,
            d.enrolledAt,
            d.claimedAt,
            d.ownerEnvelope
        )
        return r.changes === 1
    }

    async getDevice(id: string): Promise<DeviceRecord | undefined> {
        const r = this.sql.getDevice.get(id) as DeviceRow | undefined
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

    async claimDevice(id: string, owner: string, at: number): Promise<boolean> {
        const r = this.sql.claimDevice.run(owner, at, id)
        return r.changes === 1
    }

    async addEvent(e: SecurityEventRow) {
        this.sql.addEvent.run(e.at, e.kind, e.source, e.identity, e.detail)
    }

    async events(filter: { kind?: string; identity?: string } = {}): Promise<SecurityEventRow[]> {
        return this.sql.events.all(
            filter.kind ?? null,
            filter.kind ?? null,
            filter.identity ?? null,
            filter.identity ?? null
        ) as SecurityEventRow[]
    }

    async getRateLimit(key: string): Promise<RateLimitState | undefined> {
        return this.getRateLimitNow(key)
    }

    private getRateLimitNow(key: string): RateLimitState | undefined {
        const r = this.sql.getRateLimit.get(key) as
            { key: string; failures: number; window_start: number; locked_until: number; lockouts: number } | undefined
        return r && { key: r.key, attempts: r.failures, windowStart: r.window_start, lockedUntil: r.locked_until, lockouts: r.lockouts }
    }

    async putRateLimit(s: RateLimitState) {
        this.sql.putRateLimit.run(s.key, s.attempts, s.windowStart, s.lockedUntil, s.lockouts)
    }

    async forgetRateLimits(before: number) {
        this.sql.forgetRateLimits.run(before, before)
    }

    async putBrokerExpiry(deviceId: string, expiresAt: number) {
        this.sql.putBrokerExpiry.run(deviceId, expiresAt)
    }

    async expiredBrokerCredentials(now: number): Promise<string[]> {
        return (this.sql.expiredBrokerCredentials.all(now) as { device_id: string }[]).map(r => r.device_id)
    }

    async deleteBrokerExpiry(deviceId: string) {
        this.sql.deleteBrokerExpiry.run(deviceId)
    }

    async insertFirmwareImage(i: FirmwareImageRow): Promise<boolean> {
        // one statement, so two publishers cannot both pass the sequence check
        const r = this.sql.insertFirmwareImage.run(
            i.digest,
            i.sequence,
            i.classId,
            i.signedManifest,
            i.image,
            i.publishedAt,
            i.classId,
            i.sequence
        )
        return r.changes === 1
    }

    async getFirmwareImage(digest: string): Promise<FirmwareImageRow | undefined> {
        return imageFromRow(this.sql.getFirmwareImage.get(digest) as ImageRow | undefined)
    }

    async latestFirmwareImage(classId: string): Promise<FirmwareImageRow | undefined> {
        return imageFromRow(this.sql.latestFirmwareImage.get(classId) as ImageRow | undefined)
    }

    async getDeviceUpdate(deviceId: string): Promise<DeviceUpdateRow | undefined> {
        const r = this.sql.getDeviceUpdate.get(deviceId) as UpdateRow | undefined
        return (
            r && {
                deviceId: r.device_id,
                sealedWsskKey: r.sealed_wssk_key,
                phase: r.phase,
                approvedDigest: r.approved_digest,
                rollbackDigest: r.rollback_digest,
                deadline: r.deadline,
                failedDigest: r.failed_digest,
                updatedAt: r.updated_at,
            }
        )
    }

    async putDeviceUpdate(u: DeviceUpdateRow) {
        this.sql.putDeviceUpdate.run(
            u.deviceId,
            u.sealedWsskKey,
            u.phase,
            u.approvedDigest,
            u.rollbackDigest,
            u.deadline,
            u.failedDigest,
            u.updatedAt
        )
    }

    async insertTrustDocument(d: TrustDocumentRow): Promise<boolean> {
        // one transaction: the version is checked and all its copies written, or nothing
        return this.db.transaction(() => {
            if (this.sql.trustVersionExists.get(d.kind, d.version)) return false
            d.copies.forEach((signed, i) => this.sql.insertTrustCopy.run(d.kind, d.version, i, signed, d.publishedAt))
            return true
        })()
    }

    async trustDocuments(): Promise<TrustDocumentRow[]> {
        const rows = this.sql.trustDocuments.all() as { kind: "root" | "keys"; version: number; signed: Buffer; published_at: number }[]
        const documents: TrustDocumentRow[] = []
        for (const r of rows) {
            const last = documents[documents.length - 1]
            if (last && last.kind === r.kind && last.version === r.version) last.copies.push(r.signed)
            else documents.push({ kind: r.kind, version: r.version, copies: [r.signed], publishedAt: r.published_at })
        }
        return documents
    }

    async trustDocumentCount(): Promise<number> {
        return (this.sql.trustDocumentCount.get() as { n: number }).n
    }

    async getTrustCopy(kind: string, version: number, copy: number): Promise<Buffer | undefined> {
        return (this.sql.getTrustCopy.get(kind, version, copy) as { signed: Buffer } | undefined)?.signed
    }

    async insertOwner(o: OwnerRecord): Promise<boolean> {
        return this.sql.insertOwner.run(o.name, o.scramSalt, o.scramIterations, o.storedKey, o.serverKey, o.createdAt).changes === 1
    }

    async getOwner(name: string): Promise<OwnerRecord | undefined> {
        const r = this.sql.getOwner.get(name) as
            | { name: string; scram_salt: Buffer; scram_iterations: number; stored_key: Buffer; server_key: Buffer; created_at: number }
            | undefined
        return (
            r && {
                name: r.name,
                scramSalt: r.scram_salt,
                scramIterations: r.scram_iterations,
                storedKey: r.stored_key,
                serverKey: r.server_key,
                createdAt: r.created_at,
            }
        )
    }

    async devicesOf(owner: string): Promise<string[]> {
        return (this.sql.devicesOf.all(owner) as { id: string }[]).map(r => r.id)
    }

    async putOwnerSession(tokenHash: Buffer, owner: string, expiresAt: number) {
        this.sql.putOwnerSession.run(tokenHash, owner, expiresAt)
    }

    async ownerSession(tokenHash: Buffer, now: number): Promise<string | undefined> {
        return (this.sql.ownerSession.get(tokenHash, now) as { owner: string } | undefined)?.owner
    }

    async deleteExpiredOwnerSessions(now: number) {
        this.sql.deleteExpiredOwnerSessions.run(now)
    }

    async putOwnerBrokerExpiry(owner: string, expiresAt: number) {
        this.sql.putOwnerBrokerExpiry.run(owner, expiresAt)
    }

    async expiredOwnerBrokerLogins(now: number): Promise<string[]> {
        return (this.sql.expiredOwnerBrokerLogins.all(now) as { owner: string }[]).map(r => r.owner)
    }

    async deleteOwnerBrokerExpiry(owner: string) {
        this.sql.deleteOwnerBrokerExpiry.run(owner)
    }

    async updateRateLimit(key: string, step: (state: RateLimitState | undefined) => RateLimitState | undefined) {
        // one synchronous transaction: nothing else runs in this process in between, and SQLite serves one process
        this.db.transaction(() => {
            const next = step(this.getRateLimitNow(key))
            if (next) this.sql.putRateLimit.run(next.key, next.attempts, next.windowStart, next.lockedUntil, next.lockouts)
        })()
    }

    async openExchange(e: PendingExchangeRow, limits: { perSource: number; total: number }, now: number) {
        return this.db.transaction((): ExchangeFull | undefined => {
            this.sql.dropExpiredExchanges.run(now)
            if ((this.sql.exchangesOf.get(e.source) as { n: number }).n >= limits.perSource) return "source-full"
            if ((this.sql.exchanges.get() as { n: number }).n >= limits.total) return "full"
            this.sql.openExchange.run(e.sid, e.source, e.state, e.expiresAt)
            return undefined
        })()
    }

    async takeExchange(sid: string, now: number): Promise<string | undefined> {
        const r = this.sql.takeExchange.get(sid) as { state: string; expires_at: number } | undefined
        return r && r.expires_at >= now ? r.state : undefined
    }

    async sharedSecret(name: string): Promise<Buffer> {
        this.sql.addSecret.run(name, randomBytes(SHARED_SECRET_BYTES))
        return (this.sql.secret.get(name) as { secret: Buffer }).secret
    }

    async putBrokerAdmin(username: string, passwordHash: Buffer, at: number) {
        this.sql.putBrokerAdmin.run(username, passwordHash, at)
    }

    async brokerAdminHash(username: string): Promise<Buffer | undefined> {
        return (this.sql.brokerAdminHash.get(username) as { password_hash: Buffer } | undefined)?.password_hash
    }

    async deleteBrokerAdmin(username: string) {
        this.sql.deleteBrokerAdmin.run(username)
    }

    async close() {
        this.db.close()
    }
}

interface ImageRow {
    digest: string
    sequence: number
    class_id: string
    signed_manifest: Buffer
    image: Buffer
    published_at: number
}

interface UpdateRow {
    device_id: string
    sealed_wssk_key: Buffer | null
    phase: string
    approved_digest: string | null
    rollback_digest: string | null
    deadline: number | null
    failed_digest: string | null
    updated_at: number
}

function imageFromRow(r: ImageRow | undefined): FirmwareImageRow | undefined {
    return (
        r && {
            digest: r.digest,
            sequence: r.sequence,
            classId: r.class_id,
            signedManifest: r.signed_manifest,
            image: r.image,
            publishedAt: r.published_at,
        }
    )
}
