/**
 * The owner service's store: the only place off the device where the
 * owner's keys, counters and readings are. SQLite through better-sqlite3:
 * WAL (readers never wait for the writer), a busy timeout (a second process
 * waits its turn instead of failing), versioned migrations, the file created
 * mode 0600 in a folder of mode 0700 (SQLite gives its -wal and -shm files
 * the database's mode).
 *
 * Every counter change is a transaction:
 * - the down counter is reserved ahead in blocks (`reserveDownCounters`): a
 *   process sends only counters of a block it reserved, so a crash skips the
 *   rest of its block and never reuses one, and two processes never share one;
 * - the uplink replay windows are written in the same transaction as the
 *   content of the messages that moved them (`commitIngest`, a group commit
 *   every few milliseconds): a crash before the commit loses both, so a copy
 *   the broker delivers again after a restart is a first delivery, never a duplicate.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs"
import { dirname } from "node:path"
import Database from "better-sqlite3"
import type { DeviceProgress, DeviceStep, RolloutRecord, RolloutStatus } from "./rollout/engine.ts"
import type { UpdateReport } from "./update-report.ts"
import type { Json, ReplayWindow, Verified } from "./verifier.ts"

/** Versioned migrations, each run once, in order, inside a transaction (as the registry's). */
const MIGRATIONS: { version: number; sql: string }[] = [
    {
        version: 1,
        sql: `
            CREATE TABLE account (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                name TEXT NOT NULL,
                registry TEXT NOT NULL,
                password BLOB NOT NULL,
                created_at INTEGER NOT NULL
            );
            CREATE TABLE devices (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                root BLOB NOT NULL,
                claimed_at INTEGER NOT NULL
            );
            CREATE TABLE down_counters (
                device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
                reserved_until INTEGER NOT NULL
            );
            CREATE TABLE up_windows (
                device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
                highest INTEGER NOT NULL,
                seen BLOB NOT NULL,
                last_seen INTEGER
            );
            CREATE TABLE series (
                id INTEGER PRIMARY KEY,
                device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                unit TEXT,
                UNIQUE (device_id, name, unit)
            );
            -- no foreign key here: its check on every row costs more than the insert (removeDevice deletes the rows)
            -- one B-tree, ordered as charts read it (a series over time)
            CREATE TABLE readings (
                series INTEGER NOT NULL,
                time_ms INTEGER NOT NULL,
                counter INTEGER NOT NULL,
                value REAL NOT NULL,
                received_at INTEGER NOT NULL,
                PRIMARY KEY (series, time_ms, counter)
            ) WITHOUT ROWID;
            CREATE TABLE device_events (
                device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
                boot INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                uptime_ms INTEGER NOT NULL,
                kind TEXT NOT NULL,
                detail TEXT NOT NULL,
                received_at INTEGER NOT NULL,
                UNIQUE (device_id, boot, seq)
            );
            CREATE TABLE states (
                device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
                counter INTEGER NOT NULL,
                state TEXT NOT NULL,
                received_at INTEGER NOT NULL
            );
            CREATE TABLE rejections (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                device_id TEXT,
                topic TEXT NOT NULL,
                reason TEXT NOT NULL,
                detail TEXT NOT NULL,
                at INTEGER NOT NULL
            );
            CREATE TABLE rejection_counts (
                device_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                count INTEGER NOT NULL,
                last_at INTEGER NOT NULL,
                PRIMARY KEY (device_id, reason)
            );
            CREATE TABLE commands (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
                counter INTEGER NOT NULL,
                command TEXT NOT NULL,
                sent_at INTEGER NOT NULL,
                status TEXT NOT NULL,
                reply TEXT,
                answered_at INTEGER,
                UNIQUE (device_id, counter)
            );
            CREATE TABLE console_password (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                hash TEXT NOT NULL,
                set_at INTEGER NOT NULL
            );
            CREATE TABLE console_sessions (
                id_hash BLOB PRIMARY KEY,
                csrf TEXT NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE TABLE login_attempts (
                source TEXT PRIMARY KEY,
                failures INTEGER NOT NULL,
                window_start INTEGER NOT NULL,
                locked_until INTEGER NOT NULL
            );
            CREATE TABLE last_visits (
                device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
                at INTEGER NOT NULL
            );
            CREATE TABLE api_tokens (
                hash BLOB PRIMARY KEY,
                created_at INTEGER NOT NULL
            );
            CREATE TABLE settings (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );
        `,
    },
    {
        version: 2,
        sql: `
            -- every update step a device reported, sealed under its up key (verifier.ts, up/update)
            CREATE TABLE update_reports (
                device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
                counter INTEGER NOT NULL,
                digest TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                step TEXT NOT NULL,
                reason TEXT,
                received_at INTEGER NOT NULL,
                PRIMARY KEY (device_id, counter)
            );
            CREATE TABLE device_tags (
                device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
                tag TEXT NOT NULL,
                PRIMARY KEY (device_id, tag)
            );
            -- rollouts and their devices, as rollout/engine.ts holds them (kept after a device is removed: history)
            CREATE TABLE rollouts (
                id INTEGER PRIMARY KEY,
                digest TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                cohort TEXT NOT NULL,
                stages TEXT NOT NULL,
                timeouts TEXT NOT NULL,
                status TEXT NOT NULL,
                reason TEXT,
                stage INTEGER NOT NULL,
                deadline INTEGER,
                remaining_ms INTEGER,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            );
            CREATE TABLE rollout_devices (
                rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
                device_id TEXT NOT NULL,
                stage INTEGER NOT NULL,
                step TEXT NOT NULL,
                at INTEGER NOT NULL,
                reason TEXT,
                offered_at INTEGER,
                offers INTEGER NOT NULL,
                PRIMARY KEY (rollout_id, device_id)
            );
        `,
    },
    {
        version: 3,
        sql: `
            -- offers made again to a device that sent no report (a command lost while it reconnected: rollout/engine.ts)
            ALTER TABLE rollout_devices ADD COLUMN last_offer_at INTEGER;
            ALTER TABLE rollout_devices ADD COLUMN reoffers INTEGER NOT NULL DEFAULT 0;
        `,
    },
]

/** Detailed rejections kept (the counts are kept for ever): a flood of garbage cannot fill the disk. */
const REJECTIONS_KEPT = 1000

/** The owner account at the registry. `password` is the owner's SCRAM password: a secret. */
export interface AccountRow {
    name: string
    registry: string
    password: Buffer
}

/** A claimed device as the store holds it. `root` is its owner root: a secret. */
export interface DeviceRow {
    id: string
    name: string
    root: Buffer
    claimedAt: number
}

/** A reading, resolved: `timeMs` is the host's estimate of when it was measured. */
export interface ReadingRow {
    name: string
    unit: string | null
    value: number
    timeMs: number
    counter: number
    receivedAt: number
}

/** A device security event as the device reported it. */
export interface DeviceEventRow {
    boot: number
    seq: number
    uptimeMs: number
    kind: string
    detail: string
    receivedAt: number
}

/** A command sent, and the device's reply once it came. */
export interface CommandRow {
    id: number
    deviceId: string
    counter: number
    command: Record<string, Json>
    sentAt: number
    status: "sent" | "answered"
    reply: Record<string, Json> | null
    answeredAt: number | null
}

/** An update step a device reported, with its counter and when it arrived. */
export interface UpdateReportRow extends UpdateReport {
    counter: number
    receivedAt: number
}

/** A message the verifier refused. */
export interface RejectionRow {
    deviceId: string | null
    topic: string
    reason: string
    detail: string
    at: number
}

/** What one group commit writes. */
export interface IngestBatch {
    verified: { message: Verified; receivedAt: number }[]
    rejections: RejectionRow[]
    /** The windows the verified messages moved, by device. */
    windows: Map<string, ReplayWindow>
}

/** Rows in one INSERT of readings (SQLite allows 32766 parameters; five a row). */
const MAX_ROWS_PER_INSERT = 10
/** SenML times below 2^28 s are relative to now (RFC 8428 §4.5.3). */
const SENML_RELATIVE_LIMIT = 2 ** 28

/** When a reading was measured, in host milliseconds: a SenML time (seconds, relative below 2^28) against its arrival. */
export function readingTimeMs(time: number, receivedAt: number): number {
    return Math.abs(time) < SENML_RELATIVE_LIMIT ? receivedAt + Math.round(time * 1000) : Math.round(time * 1000)
}

/** The owner store (one file). */
export class OwnerStore {
    readonly db: Database.Database
    private readonly statements = new Map<string, Database.Statement>()
    private readonly seriesCache = new Map<string, number>()

    /** Opens (or creates, mode 0600 in a 0700 folder) the store at `path` and migrates it. */
    constructor(readonly path: string) {
        if (path !== ":memory:") {
            const dir = dirname(path)
            if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
            // the file exists with its mode before SQLite opens it: never a moment readable by others
            if (!existsSync(path)) closeSync(openSync(path, "a", 0o600))
            chmodSync(path, 0o600)
        }
        this.db = new Database(path)
        this.db.pragma("journal_mode = WAL")
        // WAL with NORMAL is durable at each checkpoint and never corrupt; a power cut may lose the last commits,
        // which loses the window and the content together (see the module comment)
        this.db.pragma("synchronous = NORMAL")
        this.db.pragma("busy_timeout = 5000")
        this.db.pragma("foreign_keys = ON")
        this.migrate()
    }

    private migrate() {
        this.db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        this.db
            .transaction(() => {
                const current = (this.db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null }).v ?? 0
                for (const m of MIGRATIONS) {
                    if (m.version <= current) continue
                    this.db.exec(m.sql)
                    this.db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(m.version, Date.now())
                }
            })
            .immediate()
    }

    /** Schema version after migration. */
    schemaVersion(): number {
        return (this.db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number }).v
    }

    private st(sql: string): Database.Statement {
        let s = this.statements.get(sql)
        if (!s) this.statements.set(sql, (s = this.db.prepare(sql)))
        return s
    }

    // --- account

    account(): AccountRow | undefined {
        return this.st("SELECT name, registry, password FROM account WHERE id = 1").get() as AccountRow | undefined
    }

    setAccount(a: AccountRow, at: number) {
        this.st(
            `INSERT INTO account (id, name, registry, password, created_at) VALUES (1, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, registry = excluded.registry, password = excluded.password`
        ).run(a.name, a.registry, a.password, at)
    }

    /** Forgets an account whose registration failed. */
    forgetAccount() {
        this.st("DELETE FROM account").run()
    }

    // --- devices

    /** Adds a claimed device; its counters start afresh unless given (a migrated keystore gives them). */
    addDevice(d: DeviceRow, counters: { downReservedUntil?: number; upHighest?: number } = {}) {
        this.db.transaction(() => {
            this.st("INSERT INTO devices (id, name, root, claimed_at) VALUES (?, ?, ?, ?)").run(d.id, d.name, d.root, d.claimedAt)
            this.st("INSERT INTO down_counters (device_id, reserved_until) VALUES (?, ?)").run(d.id, counters.downReservedUntil ?? 0)
            // a known highest counter with an unknown past: everything at or below it counts as seen
            const seen = Buffer.alloc(8, counters.upHighest === undefined ? 0 : 0xff)
            this.st("INSERT INTO up_windows (device_id, highest, seen) VALUES (?, ?, ?)").run(d.id, counters.upHighest ?? -1, seen)
        })()
    }

    devices(): DeviceRow[] {
        return (
            this.st("SELECT id, name, root, claimed_at FROM devices ORDER BY claimed_at, id").all() as {
                id: string
                name: string
                root: Buffer
                claimed_at: number
            }[]
        ).map(r => ({ id: r.id, name: r.name, root: r.root, claimedAt: r.claimed_at }))
    }

    device(id: string): DeviceRow | undefined {
        return this.devices().find(d => d.id === id)
    }

    rename(id: string, name: string): boolean {
        return this.st("UPDATE devices SET name = ? WHERE id = ?").run(name, id).changes === 1
    }

    /** Forgets a device: its keys, counters, readings, events and commands. */
    removeDevice(id: string): boolean {
        for (const key of this.seriesCache.keys()) if (key.startsWith(`${id}\n`)) this.seriesCache.delete(key)
        return this.db.transaction(() => {
            this.st("DELETE FROM readings WHERE series IN (SELECT id FROM series WHERE device_id = ?)").run(id)
            return this.st("DELETE FROM devices WHERE id = ?").run(id).changes === 1
        })()
    }

    /** The stored replay window and last-seen time of a device. */
    upWindow(id: string): { highest: number; seen: Buffer; lastSeen: number | null } | undefined {
        const r = this.st("SELECT highest, seen, last_seen FROM up_windows WHERE device_id = ?").get(id) as
            { highest: number; seen: Buffer; last_seen: number | null } | undefined
        return r && { highest: r.highest, seen: r.seen, lastSeen: r.last_seen }
    }

    // --- the down counter

    /**
     * Reserves the next `block` counters of a device's command topic in one
     * immediate transaction (the write lock is taken before the read): the
     * caller may send exactly `first..last`, and no other process will.
     */
    reserveDownCounters(id: string, block: number): { first: number; last: number } {
        return this.db
            .transaction(() => {
                const r = this.st("SELECT reserved_until FROM down_counters WHERE device_id = ?").get(id) as
                    { reserved_until: number } | undefined
                if (!r) throw new Error(`device ${id} is not in the store`)
                this.st("UPDATE down_counters SET reserved_until = ? WHERE device_id = ?").run(r.reserved_until + block, id)
                return { first: r.reserved_until + 1, last: r.reserved_until + block }
            })
            .immediate()
    }

    // --- what devices send

    /** Writes a batch of verified messages, rejections and the windows they moved, in one transaction. */
    commitIngest(batch: IngestBatch) {
        try {
            this.ingestTransaction(batch)
        } catch (e) {
            // series made inside the rolled-back transaction are gone: forget their ids
            this.seriesCache.clear()
            throw e
        }
    }

    private ingestTransaction(batch: IngestBatch) {
        this.db.transaction(() => {
            const event = this.st(
                `INSERT OR IGNORE INTO device_events (device_id, boot, seq, uptime_ms, kind, detail, received_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)`
            )
            const state = this.st(
                `INSERT INTO states (device_id, counter, state, received_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (device_id) DO UPDATE SET
                 counter = excluded.counter, state = excluded.state, received_at = excluded.received_at`
            )
            const update = this.st(
                `INSERT OR IGNORE INTO update_reports (device_id, counter, digest, sequence, step, reason, received_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)`
            )
            const seen = new Map<string, number>()
            for (const { message: m, receivedAt } of batch.verified) {
                seen.set(m.deviceId, receivedAt)
                if (m.kind === "readings") {
                    // one statement per message (up to 10 readings): far cheaper than one per reading
                    const args: (number | null)[] = []
                    for (const r of m.readings) {
                        if (r.value === undefined) continue
                        const timeMs = readingTimeMs(r.time, receivedAt)
                        args.push(
                            this.seriesId(m.deviceId, r.name.split(":").pop()!, r.unit ?? null),
                            timeMs,
                            r.value,
                            m.counter,
                            receivedAt
                        )
                    }
                    for (let i = 0; i < args.length; i += 5 * MAX_ROWS_PER_INSERT) {
                        const rows = args.slice(i, i + 5 * MAX_ROWS_PER_INSERT)
                        this.st(
                            "INSERT OR IGNORE INTO readings (series, time_ms, value, counter, received_at) VALUES " +
                                Array(rows.length / 5)
                                    .fill("(?, ?, ?, ?, ?)")
                                    .join(", ")
                        ).run(...rows)
                    }
                } else if (m.kind === "events") {
                    for (const e of m.events) event.run(m.deviceId, e.boot, e.seq, e.uptimeMs, e.kind, e.detail, receivedAt)
                } else if (m.kind === "update") {
                    const r = m.report
                    update.run(m.deviceId, m.counter, r.digest, r.sequence, r.step, r.reason ?? null, receivedAt)
                } else state.run(m.deviceId, m.counter, JSON.stringify(m.state), receivedAt)
            }
            const window = this.st("UPDATE up_windows SET highest = ?, seen = ?, last_seen = COALESCE(?, last_seen) WHERE device_id = ?")
            for (const [id, w] of batch.windows) window.run(w.highest, w.seenBytes(), seen.get(id) ?? null, id)
            if (batch.rejections.length) {
                const rejection = this.st("INSERT INTO rejections (device_id, topic, reason, detail, at) VALUES (?, ?, ?, ?, ?)")
                const count = this.st(
                    `INSERT INTO rejection_counts (device_id, reason, count, last_at) VALUES (?, ?, 1, ?)
                     ON CONFLICT (device_id, reason) DO UPDATE SET count = count + 1, last_at = excluded.last_at`
                )
                for (const r of batch.rejections) {
                    rejection.run(r.deviceId, r.topic, r.reason, r.detail, r.at)
                    count.run(r.deviceId ?? "", r.reason, r.at)
                }
                this.st("DELETE FROM rejections WHERE id <= (SELECT MAX(id) FROM rejections) - ?").run(REJECTIONS_KEPT)
            }
        })()
    }

    /** The series of a device's quantity (name and unit), made on first use; cached, as every message asks. */
    private seriesId(deviceId: string, name: string, unit: string | null): number {
        const key = `${deviceId}\n${name}\n${unit}`
        let id = this.seriesCache.get(key)
        if (id === undefined) {
            this.st("INSERT OR IGNORE INTO series (device_id, name, unit) VALUES (?, ?, ?)").run(deviceId, name, unit)
            id = (
                this.st("SELECT id FROM series WHERE device_id = ? AND name = ? AND unit IS ?").get(deviceId, name, unit) as { id: number }
            ).id
            this.seriesCache.set(key, id)
        }
        return id
    }

    /** The quantities a device reported: name and unit. */
    quantities(deviceId: string): { name: string; unit: string | null }[] {
        return this.st("SELECT name, unit FROM series WHERE device_id = ? ORDER BY name, unit").all(deviceId) as {
            name: string
            unit: string | null
        }[]
    }

    readings(id: string, filter: { name?: string; since?: number; until?: number; limit?: number } = {}): ReadingRow[] {
        return (
            this.st(
                `SELECT s.name, s.unit, r.value, r.time_ms, r.counter, r.received_at FROM readings r JOIN series s ON s.id = r.series
                 WHERE s.device_id = ? AND (? IS NULL OR s.name = ?) AND r.time_ms >= ? AND r.time_ms <= ?
                 ORDER BY r.time_ms DESC, r.counter DESC LIMIT ?`
            ).all(
                id,
                filter.name ?? null,
                filter.name ?? null,
                filter.since ?? 0,
                filter.until ?? Number.MAX_SAFE_INTEGER,
                filter.limit ?? 10_000
            ) as { name: string; unit: string | null; value: number; time_ms: number; counter: number; received_at: number }[]
        )
            .reverse()
            .map(r => ({ name: r.name, unit: r.unit, value: r.value, timeMs: r.time_ms, counter: r.counter, receivedAt: r.received_at }))
    }

    /** How many readings the store holds (all devices). */
    readingCount(): number {
        return (this.st("SELECT COUNT(*) AS n FROM readings").get() as { n: number }).n
    }

    deviceEvents(id: string, limit = 200): DeviceEventRow[] {
        return (
            this.st(
                `SELECT boot, seq, uptime_ms, kind, detail, received_at FROM device_events WHERE device_id = ?
                 ORDER BY boot DESC, seq DESC LIMIT ?`
            ).all(id, limit) as { boot: number; seq: number; uptime_ms: number; kind: string; detail: string; received_at: number }[]
        ).map(r => ({ boot: r.boot, seq: r.seq, uptimeMs: r.uptime_ms, kind: r.kind, detail: r.detail, receivedAt: r.received_at }))
    }

    /** The latest state report of a device. */
    state(id: string): { counter: number; state: Record<string, Json>; receivedAt: number } | undefined {
        const r = this.st("SELECT counter, state, received_at FROM states WHERE device_id = ?").get(id) as
            { counter: number; state: string; received_at: number } | undefined
        return r && { counter: r.counter, state: JSON.parse(r.state), receivedAt: r.received_at }
    }

    /**
     * Whether the device runs an image no release it trusts names, as it last said: its latest `image-unknown`
     * security event (recorded at every boot of such an image, src/update/updater.ts) or its latest state report
     * naming sequence 0. Cleared by what came after: a state report naming a manifest's sequence from the same
     * boot or a later one, or a confirmed update report (an update, or the owner naming the image that runs).
     * `image` is the digest's first bytes in hex, as the device gave it; `since` when the owner service heard it.
     */
    unknownImage(id: string): { image: string; since: number } | undefined {
        const event = this.st(
            `SELECT boot, detail, received_at FROM device_events WHERE device_id = ? AND kind = 'image-unknown'
             ORDER BY boot DESC, seq DESC LIMIT 1`
        ).get(id) as { boot: number; detail: string; received_at: number } | undefined
        const confirmed = this.st("SELECT MAX(received_at) AS at FROM update_reports WHERE device_id = ? AND step = 'confirmed'").get(
            id
        ) as { at: number | null }
        const state = this.state(id)
        const seq = state?.state.seq
        const boot = typeof state?.state.boot === "number" ? state.state.boot : -1
        const after = (at: number) => confirmed.at !== null && confirmed.at >= at
        if (state && seq === 0 && !after(state.receivedAt)) return { image: String(state.state.image ?? ""), since: state.receivedAt }
        if (!event || after(event.received_at)) return undefined
        // a state report of that boot or a later one that names a sequence: the image is a release's now
        if (state && typeof seq === "number" && seq > 0 && boot >= event.boot) return undefined
        return { image: event.detail, since: event.received_at }
    }

    /** The latest update step a device reported: the highest counter, so a late copy from its flash queue hides no newer step. */
    updateReport(id: string): UpdateReportRow | undefined {
        return this.updateReports(id, 1)[0]
    }

    /** Rejections counted per device (`""`: the topic named none) and reason. */
    rejectionCounts(): { deviceId: string; reason: string; count: number; lastAt: number }[] {
        return (
            this.st("SELECT device_id, reason, count, last_at FROM rejection_counts ORDER BY device_id, reason").all() as {
                device_id: string
                reason: string
                count: number
                last_at: number
            }[]
        ).map(r => ({ deviceId: r.device_id, reason: r.reason, count: r.count, lastAt: r.last_at }))
    }

    /** The latest detailed rejections, newest first. */
    rejections(limit = 100, deviceId?: string): RejectionRow[] {
        return (
            this.st(
                "SELECT device_id, topic, reason, detail, at FROM rejections WHERE (? IS NULL OR device_id = ?) ORDER BY id DESC LIMIT ?"
            ).all(deviceId ?? null, deviceId ?? null, limit) as {
                device_id: string | null
                topic: string
                reason: string
                detail: string
                at: number
            }[]
        ).map(r => ({ deviceId: r.device_id, topic: r.topic, reason: r.reason, detail: r.detail, at: r.at }))
    }

    /** Deletes readings measured before `before` (the retention setting), series by series along the index. Returns how many. */
    deleteReadingsBefore(before: number): number {
        let n = 0
        for (const { id } of this.st("SELECT id FROM series").all() as { id: number }[])
            n += this.st("DELETE FROM readings WHERE series = ? AND time_ms < ?").run(id, before).changes
        return n
    }

    // --- commands

    recordCommand(deviceId: string, counter: number, command: Record<string, Json>, at: number): number {
        return Number(
            this.st("INSERT INTO commands (device_id, counter, command, sent_at, status) VALUES (?, ?, ?, ?, 'sent')").run(
                deviceId,
                counter,
                JSON.stringify(command),
                at
            ).lastInsertRowid
        )
    }

    /** Marks a command answered by a state report. */
    answerCommand(id: number, reply: Record<string, Json>, at: number) {
        this.st("UPDATE commands SET status = 'answered', reply = ?, answered_at = ? WHERE id = ? AND status = 'sent'").run(
            JSON.stringify(reply),
            at,
            id
        )
    }

    /** The latest commands sent to a device, newest first. */
    commands(deviceId: string, limit = 100): CommandRow[] {
        return this.commandRows(
            this.st(
                `SELECT id, device_id, counter, command, sent_at, status, reply, answered_at FROM commands WHERE device_id = ?
                 ORDER BY id DESC LIMIT ?`
            ).all(deviceId, limit)
        )
    }

    command(id: number): CommandRow | undefined {
        return this.commandRows(
            this.st("SELECT id, device_id, counter, command, sent_at, status, reply, answered_at FROM commands WHERE id = ?").all(id)
        )[0]
    }

    private commandRows(rows: unknown[]): CommandRow[] {
        return (
            rows as {
                id: number
                device_id: string
                counter: number
                command: string
                sent_at: number
                status: "sent" | "answered"
                reply: string | null
                answered_at: number | null
            }[]
        ).map(r => ({
            id: r.id,
            deviceId: r.device_id,
            counter: r.counter,
            command: JSON.parse(r.command),
            sentAt: r.sent_at,
            status: r.status,
            reply: r.reply === null ? null : JSON.parse(r.reply),
            answeredAt: r.answered_at,
        }))
    }

    /** The update steps a device reported, newest first. */
    updateReports(deviceId: string, limit = 50): UpdateReportRow[] {
        return (
            this.st(
                `SELECT counter, digest, sequence, step, reason, received_at FROM update_reports WHERE device_id = ?
                 ORDER BY counter DESC LIMIT ?`
            ).all(deviceId, limit) as {
                counter: number
                digest: string
                sequence: number
                step: UpdateReport["step"]
                reason: string | null
                received_at: number
            }[]
        ).map(r => ({
            counter: r.counter,
            digest: r.digest,
            sequence: r.sequence,
            step: r.step,
            ...(r.reason === null ? {} : { reason: r.reason }),
            receivedAt: r.received_at,
        }))
    }

    // --- tags

    /** A device's tags, in order. */
    tags(deviceId: string): string[] {
        return (this.st("SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag").all(deviceId) as { tag: string }[]).map(r => r.tag)
    }

    /** Replaces a device's tags. */
    setTags(deviceId: string, tags: string[]) {
        this.db.transaction(() => {
            this.st("DELETE FROM device_tags WHERE device_id = ?").run(deviceId)
            for (const tag of new Set(tags)) this.st("INSERT INTO device_tags (device_id, tag) VALUES (?, ?)").run(deviceId, tag)
        })()
    }

    /** The devices that carry `tag`. */
    devicesTagged(tag: string): string[] {
        return (this.st("SELECT device_id FROM device_tags WHERE tag = ?").all(tag) as { device_id: string }[]).map(r => r.device_id)
    }

    // --- rollouts

    /** The id the next rollout gets. */
    nextRolloutId(): number {
        return (this.st("SELECT COALESCE(MAX(id), 0) + 1 AS id FROM rollouts").get() as { id: number }).id
    }

    /** Writes a rollout's record and the devices given (all of them when it is new), in one transaction. */
    saveRollout(r: RolloutRecord, devices: DeviceProgress[]) {
        this.db.transaction(() => {
            this.st(
                `INSERT INTO rollouts (id, digest, sequence, cohort, stages, timeouts, status, reason, stage, deadline, remaining_ms,
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, reason = excluded.reason, stage = excluded.stage,
                 deadline = excluded.deadline, remaining_ms = excluded.remaining_ms, updated_at = excluded.updated_at`
            ).run(
                r.id,
                r.release.digest,
                r.release.sequence,
                JSON.stringify(r.cohort),
                JSON.stringify(r.stages),
                JSON.stringify(r.timeouts),
                r.status,
                r.reason,
                r.stage,
                r.deadline,
                r.remainingMs,
                r.createdAt,
                r.updatedAt
            )
            const device = this.st(
                `INSERT INTO rollout_devices (rollout_id, device_id, stage, step, at, reason, offered_at, offers, last_offer_at, reoffers)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (rollout_id, device_id) DO UPDATE SET step = excluded.step, at = excluded.at, reason = excluded.reason,
                 offered_at = excluded.offered_at, offers = excluded.offers, last_offer_at = excluded.last_offer_at,
                 reoffers = excluded.reoffers`
            )
            for (const d of devices)
                device.run(r.id, d.id, d.stage, d.step, d.at, d.reason, d.offeredAt, d.offers, d.lastOfferAt, d.reoffers)
        })()
    }

    /** Rollouts, newest first (`statuses`: only those). */
    rollouts(statuses?: RolloutStatus[]): RolloutRecord[] {
        const rows = this.st("SELECT * FROM rollouts ORDER BY id DESC").all() as {
            id: number
            digest: string
            sequence: number
            cohort: string
            stages: string
            timeouts: string
            status: RolloutStatus
            reason: string | null
            stage: number
            deadline: number | null
            remaining_ms: number | null
            created_at: number
            updated_at: number
        }[]
        return rows
            .filter(r => !statuses || statuses.includes(r.status))
            .map(r => ({
                id: r.id,
                release: { digest: r.digest, sequence: r.sequence },
                cohort: JSON.parse(r.cohort),
                stages: JSON.parse(r.stages),
                timeouts: JSON.parse(r.timeouts),
                status: r.status,
                reason: r.reason,
                stage: r.stage,
                deadline: r.deadline,
                remainingMs: r.remaining_ms,
                createdAt: r.created_at,
                updatedAt: r.updated_at,
            }))
    }

    /** A rollout's devices, with when each was last heard from. */
    rolloutDevices(rolloutId: number): DeviceProgress[] {
        return (
            this.st(
                `SELECT r.device_id, r.stage, r.step, r.at, r.reason, r.offered_at, r.offers, r.last_offer_at, r.reoffers, w.last_seen
                 FROM rollout_devices r
                 LEFT JOIN up_windows w ON w.device_id = r.device_id WHERE r.rollout_id = ? ORDER BY r.stage, r.rowid`
            ).all(rolloutId) as {
                device_id: string
                stage: number
                step: DeviceStep
                at: number
                reason: string | null
                offered_at: number | null
                offers: number
                last_offer_at: number | null
                reoffers: number
                last_seen: number | null
            }[]
        ).map(r => ({
            id: r.device_id,
            stage: r.stage,
            step: r.step,
            at: r.at,
            reason: r.reason,
            offeredAt: r.offered_at,
            lastSeen: r.last_seen,
            offers: r.offers,
            lastOfferAt: r.last_offer_at,
            reoffers: r.reoffers,
        }))
    }

    // --- the console and the API

    consolePasswordHash(): string | undefined {
        return (this.st("SELECT hash FROM console_password WHERE id = 1").get() as { hash: string } | undefined)?.hash
    }

    setConsolePasswordHash(hash: string, at: number) {
        this.db.transaction(() => {
            this.st(
                `INSERT INTO console_password (id, hash, set_at) VALUES (1, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at`
            ).run(hash, at)
            // a new password ends every session
            this.st("DELETE FROM console_sessions").run()
        })()
    }

    addSession(idHash: Buffer, csrf: string, expiresAt: number) {
        this.st("INSERT INTO console_sessions (id_hash, csrf, expires_at) VALUES (?, ?, ?)").run(idHash, csrf, expiresAt)
    }

    session(idHash: Buffer, now: number): { csrf: string } | undefined {
        return this.st("SELECT csrf FROM console_sessions WHERE id_hash = ? AND expires_at > ?").get(idHash, now) as
            { csrf: string } | undefined
    }

    deleteSession(idHash: Buffer) {
        this.st("DELETE FROM console_sessions WHERE id_hash = ?").run(idHash)
    }

    loginAttempts(source: string): { failures: number; windowStart: number; lockedUntil: number } | undefined {
        const r = this.st("SELECT failures, window_start, locked_until FROM login_attempts WHERE source = ?").get(source) as
            { failures: number; window_start: number; locked_until: number } | undefined
        return r && { failures: r.failures, windowStart: r.window_start, lockedUntil: r.locked_until }
    }

    putLoginAttempts(source: string, s: { failures: number; windowStart: number; lockedUntil: number }) {
        this.st(
            `INSERT INTO login_attempts (source, failures, window_start, locked_until) VALUES (?, ?, ?, ?)
             ON CONFLICT (source) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start,
             locked_until = excluded.locked_until`
        ).run(source, s.failures, s.windowStart, s.lockedUntil)
    }

    lastVisit(deviceId: string): number {
        return (this.st("SELECT at FROM last_visits WHERE device_id = ?").get(deviceId) as { at: number } | undefined)?.at ?? 0
    }

    setLastVisit(deviceId: string, at: number) {
        this.st("INSERT INTO last_visits (device_id, at) VALUES (?, ?) ON CONFLICT (device_id) DO UPDATE SET at = excluded.at").run(
            deviceId,
            at
        )
    }

    /** Device events received since `since`. */
    eventsSince(deviceId: string, since: number): number {
        return (
            this.st("SELECT COUNT(*) AS n FROM device_events WHERE device_id = ? AND received_at > ?").get(deviceId, since) as { n: number }
        ).n
    }

    /** Replaces the API tokens by one (its SHA-256). */
    setApiToken(hash: Buffer, at: number) {
        this.db.transaction(() => {
            this.st("DELETE FROM api_tokens").run()
            this.st("INSERT INTO api_tokens (hash, created_at) VALUES (?, ?)").run(hash, at)
        })()
    }

    hasApiToken(hash: Buffer): boolean {
        return this.st("SELECT 1 FROM api_tokens WHERE hash = ?").get(hash) !== undefined
    }

    setting(key: string): string | undefined {
        return (this.st("SELECT value FROM settings WHERE key = ?").get(key) as { value: string } | undefined)?.value
    }

    setSetting(key: string, value: string) {
        this.st("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(key, value)
    }

    deleteSetting(key: string) {
        this.st("DELETE FROM settings WHERE key = ?").run(key)
    }

    close() {
        this.db.close()
    }
}
