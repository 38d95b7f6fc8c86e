/**
 * Where this project's things are on this machine: the project root (where
 * package.json is), the git-ignored `var/` tree that holds every key,
 * certificate, database and broker state made here, and the well-known loopback
 * ports of the local stack and of the DeviceScript CLI. Paths are absolute, so the tools work from any folder.
 */
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

/** The project root (where package.json is). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")

/** State made on this machine, never in git: keys, certificates, databases, broker state. */
const VAR_DIR = join(PROJECT_ROOT, "var")

/**
/**
 * What `npm start` keeps from one run to the next (its stack, the owner's
 * store, the simulator's flash): `var/`, or the folder `SENTINEL_STATE_DIR`
 * names (a test runs npm start in a temporary one). The firmware keys stay in
 * var/keys whatever it says, as the trust anchor in src/ is made from them.
 */
const STATE_DIR = process.env.SENTINEL_STATE_DIR ? resolve(process.env.SENTINEL_STATE_DIR) : VAR_DIR

/**
 * The owner's firmware keys (devs/updates/keyring.ts): root keys (`root-<kid>.json`, to be moved offline),
 * release keys (`release-<kid>.json`), each mode 0600, and the documents the root signed (`trust/`, public).
 */
export const KEYS_DIR = join(VAR_DIR, "keys")

/** The firmware module holding the root the firmware trusts from the start, written by keygen (git-ignored too). */
export const TRUST_ANCHOR_PATH = join(PROJECT_ROOT, "src", "update", "trust-anchor.ts")

/** The root the OTA test's firmware images trust (test/device/fixtures/ota/firmware.ts): written by whoever builds them. */
export const OTA_ANCHOR_PATH = join(PROJECT_ROOT, "test", "device", "fixtures", "generated", "ota-anchor.ts")

/** How long each test file took last time on this machine: `npm test` starts the longest first. */
export const TEST_TIMES_PATH = join(VAR_DIR, "test-times.json")

/** An owner keystore of the CLIs before the owner service (`npm run migrate-keystore` moves one into the store). */
export function ownerKeystorePath(owner: string): string {
    return join(STATE_DIR, "owner", `${owner}.json`)
}

/** The owner service's files: its store (mode 0600, folder 0700) and the API token the CLIs read (mode 0600). */
export const OWNER_FILES = {
    store: join(STATE_DIR, "owner", "owner.db"),
    apiToken: join(STATE_DIR, "owner", "api-token"),
}

/** The files of a local stack kept in `dir`; `npm start` keeps its stack in `var/stack`. */
export function stackFiles(dir = join(STATE_DIR, "stack")) {
    const pki = join(dir, "pki")
    return {
        dir,
        /** The private CA and server certificates (stack/pki.ts). */
        pki,
        /** The CA certificate clients trust (`ensurePki` names it so). */
        caCert: join(pki, "ca.crt"),
        /** Mosquitto's configuration, dynamic-security state and admin password. */
        mosquitto: join(dir, "mosquitto"),
        /** The broker logins (password hashes, expiries) when the broker is a RabbitMQ cluster (devs/broker/rabbitmq-logins.ts). */
        brokerLogins: join(dir, "broker-logins.db"),
        /** The registry's SQLite database, shared with the update service. */
        registryDb: join(dir, "registry.db"),
        /** The key that seals devices' WSSK keys at rest: beside the database, never in it. */
        vaultKey: join(dir, "vault", "wssk.key"),
        /** The image `npm start` builds, publishes and runs. */
        localBuild: join(dir, "local-build.devs"),
    }
}

/**
 * The simulator `npm start` runs: its working folder, and the flash file the
 * DeviceScript CLI keeps under it (identity, event log, settings: a factory
 * reset deletes it). Before the owner console it was under the project root.
 */
export const SIMULATOR_FILES = {
    dir: join(STATE_DIR, "sim"),
    flash: join(STATE_DIR, "sim", ".devicescript", "flash", "sim.bin"),
    formerFlash: join(PROJECT_ROOT, ".devicescript", "flash", "sim.bin"),
}

/** What `npm run release` built, signed and published: `var/releases/<sequence>-<sha256 prefix>/` (image and manifest). */
export const RELEASES_DIR = join(STATE_DIR, "releases")

/** The simulators `npm run fleet` runs beside `npm start`: one folder (and flash) each, `var/fleet/<n>`. */
export const FLEET_DIR = join(STATE_DIR, "fleet")

/**
 * The local stack's well-known ports, which `npm start` and the programs' defaults use. The firmware in
 * the simulator expects the registry on REGISTRY_PORT (src/identity/endpoint.ts); tests run it against a
 * registry elsewhere through the port map of devs/sim/port-map.cjs. The registry tells devices the broker
 * and update ports, so those follow the stack.
 */
export const REGISTRY_PORT = 8443
/** The broker's TLS listener. */
export const BROKER_PORT = 8883
/** The update service's WSSK gateway. */
export const UPDATES_PORT = 9443
/** The owner service's HTTP API and console, on loopback. */
export const OWNER_PORT = 8080

/**
 * The DeviceScript devtools server's ports, fixed inside the DeviceScript CLI (devs devtools listens on
 * them, the simulator outside test mode connects to them); devs/sim/port-map.cjs moves them.
 */
export const DEVTOOLS_PORTS = {
    /** Dashboard and WebSocket bus: `devs run IMAGE` connects here. */
    web: 8081,
    /** Jacdac over TCP: `devs vm --devtools` connects here. */
    tcp: 8082,
    /** The debug adapter. */
    debug: 8083,
} as const
