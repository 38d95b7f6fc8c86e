/**
 * Files only their owner may read: the project's `var/` holds keys, the
 * registry's database (ServerKeys, enough to impersonate the registry to a
 * device), Mosquitto's dynamic-security state (password hashes), the vault
 * key and keystores. Every folder there is made 0700 and every file 0600 when
 * it is created, never loosened first and tightened after, and without
 * relying on the umask: a mode passed to mkdir or open applies at creation.
 * Programs we start that write there (openssl, mosquitto) run under umask 077.
 */
import { chmodSync, closeSync, mkdirSync, openSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"

const FOLDER_MODE = 0o700
const FILE_MODE = 0o600

/** Makes `path` and any missing folder above it (mode 0700), or tightens it to 0700 if it exists. */
export function ensurePrivateDir(path: string) {
    mkdirSync(path, { recursive: true, mode: FOLDER_MODE })
    chmodSync(path, FOLDER_MODE)
}

/**
 * Makes `path` an empty file (mode 0600, folder 0700) unless it exists, and tightens an existing one,
 * before anything is written to it; SQLite gives its WAL and shared-memory files the mode of the database file.
 */
export function ensurePrivateFile(path: string) {
    ensurePrivateDir(dirname(path))
    closeSync(openSync(path, "a", FILE_MODE))
    chmodSync(path, FILE_MODE)
}

/** Creates `path` (mode 0600, folder 0700) with `contents`; throws if it exists, so a key is never overwritten. */
export function createSecretFile(path: string, contents: string) {
    ensurePrivateDir(dirname(path))
    // "wx": exclusive create, and the mode applies only to a file made here
    writeFileSync(path, contents, { mode: FILE_MODE, flag: "wx" })
}

/** Writes `contents` to `path`, a file made or tightened to 0600 before the write. */
export function writePrivateFile(path: string, contents: string) {
    ensurePrivateFile(path)
    writeFileSync(path, contents)
}

/** `command args…` as a child process that makes its files under umask 077: what to pass to spawn or execFile. */
export function underPrivateUmask(command: string, args: string[]): [string, string[]] {
    return ["sh", ["-c", 'umask 077 && exec "$0" "$@"', command, ...args]]
}
