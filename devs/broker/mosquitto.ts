/**
 * Mosquitto 2 as the broker: one TLS listener on loopback (with the policy of
 * ../net/tls.ts), no anonymous access, logins and ACLs from the
 * dynamic-security plugin, which the registry drives through
 * `$CONTROL/dynamic-security/v1` (./dynsec.ts).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { ensurePrivateDir, underPrivateUmask, writePrivateFile } from "../files/private.ts"
import { waitForPort } from "../net/ports.ts"
import { MOSQUITTO_TLS_LINES } from "../net/tls.ts"

const PLUGIN_CANDIDATES = [
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
]

/** A running broker and how to administer it. */
export interface MosquittoInstance {
    port: number
    /** The dynamic-security admin login (random per folder, kept in it). */
    admin: { username: string; password: string }
    process: ChildProcess
    stop(): Promise<void>
}

/** Options of `startMosquitto`. */
export interface MosquittoOptions {
    /** Folder for config, dynsec state and admin password. */
    dir: string
    port: number
    /** The server certificate and key files (PEM) of the TLS listener. */
    tls: { cert: string; key: string }
    /** Receives each line mosquitto logs. */
    onLog?: (line: string) => void
}

/** How to get Mosquitto, for the one-line messages when a part of it is missing. */
const INSTALL = "install it with: sudo apt-get install -y mosquitto"

/**
 * The mosquitto binary: in PATH, or in the sbin folders Debian installs it
 * to, which a normal user's PATH often lacks. Throws a one-line message when
 * there is none.
 */
export function mosquittoBinary(): string {
    const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/local/sbin", "/usr/sbin", "/sbin"]
    const found = dirs.map(d => join(d, "mosquitto")).find(p => p.startsWith("/") && existsSync(p))
    if (!found) throw new Error(`mosquitto (the MQTT broker) is not installed: ${INSTALL}`)
    return found
}

/** Starts mosquitto with a TLS listener and dynamic security; initializes dynsec on first use of `dir`. */
export async function startMosquitto(options: MosquittoOptions): Promise<MosquittoInstance> {
    const plugin = PLUGIN_CANDIDATES.find(p => existsSync(p))
    if (!plugin) throw new Error(`mosquitto's dynamic-security plugin is missing: ${INSTALL}`)
    const binary = mosquittoBinary()
    ensurePrivateDir(options.dir)
    const dynsec = join(options.dir, "dynamic-security.json")
    const passwordFile = join(options.dir, "admin.password")
    if (!existsSync(dynsec)) {
        const password = randomBytes(24).toString("base64url")
        execFileSync(...underPrivateUmask("mosquitto_ctrl", ["dynsec", "init", dynsec, "admin", password]), { stdio: "ignore" })
        writePrivateFile(passwordFile, password)
    }
    const admin = { username: "admin", password: readFileSync(passwordFile, "utf8").trim() }
    const conf = join(options.dir, "mosquitto.conf")
    writePrivateFile(
        conf,
        [
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            // root in a container: stay root so the files above stay readable
            "user root",
            `listener ${options.port} 127.0.0.1`,
            `certfile ${options.tls.cert}`,
            `keyfile ${options.tls.key}`,
            ...MOSQUITTO_TLS_LINES,
            `plugin ${plugin}`,
            `plugin_opt_config_file ${dynsec}`,
            "",
        ].join("\n")
    )
    // the plugin rewrites dynamic-security.json (password hashes) on every change, with the umask's mode
    const child = spawn(...underPrivateUmask(binary, ["-c", conf]), { stdio: ["ignore", "pipe", "pipe"] })
    const onData = (chunk: Buffer) => {
        for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) options.onLog?.(line)
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    await waitForPort(options.port, 10_000)
    return {
        port: options.port,
        admin,
        process: child,
        stop: () =>
            new Promise(resolve => {
                if (child.exitCode !== null) return resolve()
                child.once("exit", () => resolve())
                child.kill("SIGTERM")
            }),
    }
}
