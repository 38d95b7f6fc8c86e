/**
 * Recovery: the whole owner store, encrypted under a passphrase, to carry to
 * another machine; and its import there.
 *
 * Format (all integers big-endian):
 *
 *   offset  size  field
 *   0       8     magic "SNOWNER1" (format 1)
 *   8       1     log2 N of scrypt (RFC 7914), 17 here
 *   9       1     r, 8 here
 *   10      1     p, 1 here
 *   11      16    salt (random)
 *   27      12    nonce (random; NIST SP 800-38D §8.2.2: 96 bits)
 *   39      …     AES-256-GCM ciphertext of the SQLite database (SQLite's own file format, `serialize()`)
 *   end−16  16    GCM tag
 *
 * key = scrypt(passphrase NFC, salt, 32 bytes, N, r, p); the 39 header bytes
 * are the GCM additional data, so a changed parameter or salt fails the tag.
 * A wrong passphrase and a damaged file are the same error.
 *
 * On import, what belongs to the old machine's sessions is dropped (console
 * sessions, login attempts, the API token: the new machine makes its own),
 * and every down counter jumps `IMPORT_COUNTER_JUMP` ahead: the old machine
 * may have sent commands after the export, and the device refuses a counter
 * it has seen.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from "node:crypto"
import { existsSync, rmSync } from "node:fs"
import Database from "better-sqlite3"
import { OwnerStore } from "./store.ts"

const MAGIC = Buffer.from("SNOWNER1")
const SCRYPT = { log2N: 17, r: 8, p: 1 }
const SALT_BYTES = 16
const NONCE_BYTES = 12
const TAG_BYTES = 16
const HEADER_BYTES = MAGIC.length + 3 + SALT_BYTES + NONCE_BYTES
/** scrypt needs 128·N·r bytes; room above that. */
const SCRYPT_MAXMEM = 256 * 1024 * 1024
/** The fewest characters of a passphrase. */
export const MIN_PASSPHRASE_LENGTH = 12
/** How far every down counter moves on import (far below the Partial IV's 2^40). */
export const IMPORT_COUNTER_JUMP = 1 << 20

/** A file that is not an export, a damaged one, or the wrong passphrase. */
export class ExportError extends Error {}

function keyOf(passphrase: string, salt: Buffer, log2N: number, r: number, p: number): Buffer {
    if (log2N < 14 || log2N > 20 || r < 1 || r > 32 || p < 1 || p > 4) throw new ExportError("unsupported scrypt parameters")
    return scryptSync(passphrase.normalize("NFC"), salt, 32, { N: 2 ** log2N, r, p, maxmem: SCRYPT_MAXMEM })
}

/** The store, encrypted under `passphrase`. */
export function exportStore(store: OwnerStore, passphrase: string): Buffer {
    if (passphrase.length < MIN_PASSPHRASE_LENGTH) throw new RangeError(`the passphrase needs at least ${MIN_PASSPHRASE_LENGTH} characters`)
    const salt = randomBytes(SALT_BYTES)
    const nonce = randomBytes(NONCE_BYTES)
    const header = Buffer.concat([MAGIC, Buffer.from([SCRYPT.log2N, SCRYPT.r, SCRYPT.p]), salt, nonce])
    const cipher = createCipheriv("aes-256-gcm", keyOf(passphrase, salt, SCRYPT.log2N, SCRYPT.r, SCRYPT.p), nonce)
    cipher.setAAD(header)
    const body = Buffer.concat([cipher.update(store.db.serialize()), cipher.final()])
    return Buffer.concat([header, body, cipher.getAuthTag()])
}

/** Decrypts an export into a new store at `path` (which must not exist) and opens it. */
export function importStore(data: Buffer, passphrase: string, path: string): OwnerStore {
    if (existsSync(path)) throw new ExportError(`${path} exists: import into a new file`)
    if (data.length < HEADER_BYTES + TAG_BYTES || !data.subarray(0, MAGIC.length).equals(MAGIC))
        throw new ExportError("not an owner store export")
    const header = data.subarray(0, HEADER_BYTES)
    const [log2N, r, p] = data.subarray(MAGIC.length, MAGIC.length + 3)
    const salt = data.subarray(MAGIC.length + 3, MAGIC.length + 3 + SALT_BYTES)
    const nonce = data.subarray(HEADER_BYTES - NONCE_BYTES, HEADER_BYTES)
    let plain: Buffer
    try {
        const decipher = createDecipheriv("aes-256-gcm", keyOf(passphrase, salt, log2N, r, p), nonce)
        decipher.setAAD(header)
        decipher.setAuthTag(data.subarray(data.length - TAG_BYTES))
        plain = Buffer.concat([decipher.update(data.subarray(HEADER_BYTES, data.length - TAG_BYTES)), decipher.final()])
    } catch (e) {
        if (e instanceof ExportError) throw e
        throw new ExportError("wrong passphrase, or the file is damaged")
    }
    // the decrypted database goes through SQLite in memory first, then into a file made with the store's modes.
    // A database serialized in WAL mode says so in its header (bytes 18 and 19 = 2, sqlite.org/fileformat2.html §1.3.3),
    // which an in-memory database cannot follow: it is read as a rollback-journal database (1)
    if (plain.length >= 100 && plain[18] === 2 && plain[19] === 2) plain[18] = plain[19] = 1
    const memory = new Database(plain)
    const store = new OwnerStore(path)
    try {
        store.db.exec("PRAGMA foreign_keys = OFF")
        const tables = (
            memory.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]
        )
            .map(t => t.name)
            .filter(t => !["schema_migrations", "console_sessions", "login_attempts", "api_tokens"].includes(t))
        const version = (memory.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number }).v
        if (version > store.schemaVersion())
            throw new ExportError(`the export is of a newer store (schema ${version}): update this copy first`)
        store.db.transaction(() => {
            for (const table of tables) {
                const rows = memory.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[]
                for (const row of rows) {
                    const cols = Object.keys(row)
                    store.db
                        .prepare(
                            `INSERT INTO "${table}" (${cols.map(c => `"${c}"`).join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`
                        )
                        .run(...cols.map(c => row[c]))
                }
            }
            store.db.prepare("UPDATE down_counters SET reserved_until = reserved_until + ?").run(IMPORT_COUNTER_JUMP)
        })()
        store.db.exec("PRAGMA foreign_keys = ON")
    } catch (e) {
        store.close()
        // no half-imported store is left behind
        for (const suffix of ["", "-wal", "-shm"]) rmSync(path + suffix, { force: true })
        throw e instanceof ExportError ? e : new ExportError(`the export holds no readable store: ${(e as Error).message}`)
    } finally {
        memory.close()
    }
    return store
}
