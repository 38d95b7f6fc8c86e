/**
 * Mosquitto 2 as the local broker: one TLS listener on loopback, no anonymous
 * access, logins and ACLs from the dynamic-security plugin, which the
 * registry drives through `$CONTROL/dynamic-security/v1`.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import mqtt, { type MqttClient } from "mqtt"
import type { BrokerAccess } from "../registry/broker-access.ts"
import type { Pki } from "./pki.ts"
import { waitForPort } from "./ports.ts"

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
    pki: Pki
    /** Receives each line mosquitto logs. */
    onLog?: (line: string) => void
}

/** Starts mosquitto with a TLS listener and dynamic security; initializes dynsec on first use of `dir`. */
export async function startMosquitto(options: MosquittoOptions): Promise<MosquittoInstance> {
    const plugin = PLUGIN_CANDIDATES.find(p => existsSync(p))
    if (!plugin) throw new Error("mosquitto dynamic-security plugin not found: apt-get install mosquitto")
    mkdirSync(options.dir, { recursive: true })
    const dynsec = join(options.dir, "dynamic-security.json")
    const passwordFile = join(options.dir, "admin.password")
    if (!existsSync(dynsec)) {
        const password = randomBytes(24).toString("base64url")
        execFileSync("mosquitto_ctrl", ["dynsec", "init", dynsec, "admin", password], { stdio: "ignore" })
        writeFileSync(passwordFile, password, { mode: 0o600 })
    }
    const admin = { username: "admin", password: readFileSync(passwordFile, "utf8").trim() }
    const conf = join(options.dir, "mosquitto.conf")
    writeFileSync(
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
            `certfile ${options.pki.serverCert}`,
            `keyfile ${options.pki.serverKey}`,
            "tls_version tlsv1.2",
            `plugin ${plugin}`,
            `plugin_opt_config_file ${dynsec}`,
            "",
        ].join("\n")
    )
    const child = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] })
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

/** Removes a broker folder (tests). */
export function removeMosquittoState(dir: string) {
    rmSync(dir, { recursive: true, force: true })
}

/** One dynsec command's reply. */
interface DynsecResponse {
    command: string
    error?: string
}

/**
 * Per-device broker logins through the dynamic-security plugin. Each device
 * gets a role that allows publishing to `things/<id>/up/#` and subscribing to
 * `things/<id>/down/#`, nothing else (dynsec denies publish and subscribe by default).
 */
export class MosquittoDynsec implements BrokerAccess {
    private client: MqttClient | undefined
    private waiting: ((r: DynsecResponse[]) => void)[] = []

    /**
     * `endpoint` is where devices are told to connect; `adminPort` is the
     * broker's own port on `endpoint.host` (they differ when something sits in front).
     */
    constructor(
        readonly endpoint: { host: string; port: number },
        private readonly admin: { username: string; password: string },
        private readonly ca: Buffer,
        private readonly adminPort = endpoint.port
    ) {}

    private async connect(): Promise<MqttClient> {
        if (this.client?.connected) return this.client
        const client = await mqtt.connectAsync(`mqtts://${this.endpoint.host}:${this.adminPort}`, {
            username: this.admin.username,
            password: this.admin.password,
            ca: this.ca,
            protocolVersion: 5,
            reconnectPeriod: 0,
        })
        await client.subscribeAsync("$CONTROL/dynamic-security/v1/response")
        client.on("message", (_topic, payload) => {
            const next = this.waiting.shift()
            next?.(JSON.parse(payload.toString("utf8")).responses as DynsecResponse[])
        })
        this.client = client
        return client
    }

    /** Sends commands in one request and returns their responses (commands are answered in order). */
    private async send(commands: Record<string, unknown>[]): Promise<DynsecResponse[]> {
        const client = await this.connect()
        const reply = new Promise<DynsecResponse[]>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("dynamic-security did not answer")), 5000)
            this.waiting.push(r => {
                clearTimeout(timer)
                resolve(r)
            })
        })
        await client.publishAsync("$CONTROL/dynamic-security/v1", JSON.stringify({ commands }))
        return reply
    }

    async grant(deviceId: string, password: string): Promise<void> {
        const role = `device-${deviceId}`
        const allow = (acltype: string, topic: string) => ({ command: "addRoleACL", rolename: role, acltype, topic, allow: true, priority: 0 })
        const responses = await this.send([
            { command: "deleteClient", username: deviceId },
            { command: "deleteRole", rolename: role },
            { command: "createRole", rolename: role },
            allow("publishClientSend", `things/${deviceId}/up/#`),
            allow("subscribePattern", `things/${deviceId}/down/#`),
            allow("publishClientReceive", `things/${deviceId}/down/#`),
            { command: "createClient", username: deviceId, password, roles: [{ rolename: role }] },
        ])
        // the two deletes may fail (nothing to delete); everything after must succeed
        const failed = responses.slice(2).find(r => r.error)
        if (failed) throw new Error(`dynamic-security ${failed.command}: ${failed.error}`)
    }

    async allowOwner(owner: string, deviceId: string): Promise<{ username: string; password: string } | undefined> {
        const username = `owner-${owner}`
        const role = username
        const password = randomBytes(24).toString("base64url")
        const allow = (acltype: string, topic: string) => ({ command: "addRoleACL", rolename: role, acltype, topic, allow: true, priority: 0 })
        const [created] = await this.send([{ command: "createClient", username, password }])
        const responses = await this.send([
            // createRole fails harmlessly when the role exists; the ACLs and the role link must succeed
            { command: "createRole", rolename: role },
            allow("subscribePattern", `things/${deviceId}/up/#`),
            allow("publishClientReceive", `things/${deviceId}/up/#`),
            allow("publishClientSend", `things/${deviceId}/down/#`),
            { command: "addClientRole", username, rolename: role },
        ])
        const failed = responses.slice(1, 4).find(r => r.error)
        if (failed) throw new Error(`dynamic-security ${failed.command}: ${failed.error}`)
        return created.error ? undefined : { username, password }
    }

    async revoke(deviceId: string): Promise<void> {
        // deleting the client also disconnects its session
        await this.send([
            { command: "deleteClient", username: deviceId },
            { command: "deleteRole", rolename: `device-${deviceId}` },
        ])
    }

    async close() {
        await this.client?.endAsync()
        this.client = undefined
    }
}
