/**
 * Options several programs share, declared once with their defaults (the
 * local stack's ports and CA, the owner service and its files under
 * var/owner), and the checks that turn a missing file into a line that says what to do.
 */
import { existsSync, readFileSync } from "node:fs"
import { OwnerApi } from "../owner/api-client.ts"
import { BROKER_PORT, KEYS_DIR, OWNER_FILES, OWNER_PORT, REGISTRY_PORT, stackFiles } from "../project.ts"
import { SqliteStore } from "../registry/store.ts"
import { KeyVault } from "../updates/key-vault.ts"
import { DEFAULT_ROOT_KEYS, DEFAULT_THRESHOLD } from "../updates/keyring.ts"
import { UpdateService } from "../updates/service.ts"
import { MAX_KEYS } from "../updates/trust.ts"
import { CommandError, displayPath, UsageError, type OptionSpec } from "./args.ts"

/** The owner service the clients talk to. */
export const SERVICE = {
    type: "string",
    value: "url",
    default: `http://127.0.0.1:${OWNER_PORT}`,
    help: "the owner service (npm run owner, or npm start)",
} as const satisfies OptionSpec

/** The owner service's API token. */
export const TOKEN_FILE = {
    type: "string",
    value: "file",
    default: OWNER_FILES.apiToken,
    help: "the owner service's API token (mode 0600; the service writes it)",
} as const satisfies OptionSpec

/** The owner service's store. */
export const STORE = {
    type: "string",
    value: "file",
    default: OWNER_FILES.store,
    help: "the owner store (SQLite, mode 0600): keys, counters, readings",
} as const satisfies OptionSpec

/** The device a program acts on. */
export const DEVICE_ID = {
    type: "string",
    value: "device id",
    required: true,
    help: "the device's id: 32 hex digits, as it prints at boot",
} as const satisfies OptionSpec

/** The broker the owner connects to. */
export const BROKER = {
    type: "string",
    value: "url",
    default: `mqtts://localhost:${BROKER_PORT}`,
    help: "the broker",
} as const satisfies OptionSpec

/** The registry the owner claims devices with. */
export const REGISTRY = {
    type: "string",
    value: "url",
    default: `https://localhost:${REGISTRY_PORT}`,
    help: "the registry",
} as const satisfies OptionSpec

/** The CA the services' certificates chain to. */
export const CA = {
    type: "string",
    value: "file",
    default: stackFiles().caCert,
    help: "CA certificate (PEM) the services' certificates must chain to",
} as const satisfies OptionSpec

/** A TCP port from the command line. */
export function port(option: string, text: string): number {
    const n = /^\d{1,5}$/.test(text) ? Number(text) : 0
    if (n < 1 || n > 65535) throw new UsageError(`${option} must be a port number 1..65535, not ${JSON.stringify(text)}`)
    return n
}

/** A sequence number from the command line: 0..2^32-1 (SUIT's sequence number is a uint). */
export function sequenceNumber(option: string, text: string): number {
    const n = /^\d{1,10}$/.test(text) ? Number(text) : NaN
    if (!(n <= 0xffffffff)) throw new UsageError(`${option} must be a whole number up to 4294967295, not ${JSON.stringify(text)}`)
    return n
}

/** Checks a device id given on the command line. */
export function deviceId(id: string): string {
    if (!/^[0-9a-f]{32}$/.test(id)) throw new UsageError(`--id ${JSON.stringify(id)} is not a device id (32 lower-case hex digits)`)
    return id
}

/** Reads the CA certificate, or says where one comes from. */
export function readCa(path: string): Buffer {
    if (!existsSync(path)) throw new CommandError(`no CA certificate at ${path}: npm start makes the local stack's, or pass --ca`)
    return readFileSync(path)
}

/** A client of the owner service with its token, or what to do to get one. */
export function ownerApi(values: { service: string; "token-file": string; ca: string }): OwnerApi {
    const path = values["token-file"]
    if (!existsSync(path))
        throw new CommandError(
            `no API token at ${displayPath(path)}: start the owner service first (npm start, or npm run owner -- --help)`
        )
    const ca = values.service.startsWith("https:") && existsSync(values.ca) ? readFileSync(values.ca) : undefined
    return new OwnerApi(values.service, readFileSync(path, "utf8").trim(), ca)
}

/** A passphrase from a file (never from the command line, where other users see it). */
export function readPassphrase(path: string): string {
    if (!existsSync(path)) throw new CommandError(`no passphrase file at ${displayPath(path)}`)
    return readFileSync(path, "utf8").replace(/\r?\n$/, "")
}

/** The registry's database, which the update service shares: where the tools publish. */
export const DB = {
    type: "string",
    value: "file",
    default: stackFiles().registryDb,
    help: "the registry's database (the update service's too)",
} as const satisfies OptionSpec

/** The owner's firmware keys and signed documents (devs/updates/keyring.ts). */
export const KEYS = {
    type: "string",
    value: "folder",
    default: KEYS_DIR,
    help: "the folder of the owner's firmware keys and signed documents",
} as const satisfies OptionSpec

/**
 * Runs `use` with the update service on the database at `db`, closed after. The tools only publish: the
 * service they open deploys nothing and seals no device key (an ephemeral vault).
 */
export async function withUpdateService<T>(db: string, use: (service: UpdateService) => T | Promise<T>): Promise<T> {
    if (!existsSync(db)) throw new CommandError(`no database at ${db}: npm start makes the local stack's, or pass --db`)
    const store = new SqliteStore(db)
    try {
        return await use(
            new UpdateService({ store, vault: KeyVault.ephemeral(), event: (kind, id, detail) => console.log(`${kind} ${id}: ${detail}`) })
        )
    } finally {
        await store.close()
    }
}

/** The keys of a new root. */
export const ROOT_KEYS = {
    type: "string",
    value: "n",
    default: String(DEFAULT_ROOT_KEYS),
    help: `root keys, 1..${MAX_KEYS}`,
} as const satisfies OptionSpec

/** How many of them sign each root and key list. */
export const THRESHOLD = {
    type: "string",
    value: "k",
    default: String(DEFAULT_THRESHOLD),
    help: "root keys that must sign each root and key list",
} as const satisfies OptionSpec

/** n and k of a root from the command line: 1 <= k <= n <= MAX_KEYS. */
export function rootShape(rootsText: string, thresholdText: string): { roots: number; threshold: number } {
    const roots = /^\d$/.test(rootsText) ? Number(rootsText) : NaN
    if (!(roots >= 1 && roots <= MAX_KEYS)) throw new UsageError(`--roots must be 1..${MAX_KEYS} (a device keeps its root in one setting)`)
    const threshold = /^\d$/.test(thresholdText) ? Number(thresholdText) : NaN
    if (!(threshold >= 1 && threshold <= roots)) throw new UsageError(`--threshold must be 1..${roots}`)
    return { roots, threshold }
}
