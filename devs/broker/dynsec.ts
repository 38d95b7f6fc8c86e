/**
 * Broker access (registry/broker-access.ts) through Mosquitto's
 * dynamic-security plugin: the registry's grants become dynsec clients and
 * roles, sent as JSON commands to `$CONTROL/dynamic-security/v1` over an
 * admin MQTT session (https://mosquitto.org/documentation/dynamic-security/).
 */
import { randomBytes } from "node:crypto"
import mqtt, { type MqttClient } from "mqtt"
import type { BrokerAccess } from "../registry/broker-access.ts"

/** One dynsec command's reply (`correlationData` is echoed from the command). */
interface DynsecResponse {
    command: string
    error?: string
    correlationData?: string
}

/**
 * Per-device broker logins through the dynamic-security plugin. Each device
 * gets a role that allows publishing to `things/<id>/up/#` and subscribing to
 * `things/<id>/down/#`, nothing else (dynsec denies publish and subscribe by default).
 *
 * Every login is bound to one client id, its username (dynsec's client
 * `clientid`: a login that presents another id is refused). MQTT lets a new
 * session take over any session with the same client id (MQTT 3.1.1 §3.1.4),
 * and device ids are public (they are in the topic names): unbound, any valid
 * login, another device's or an owner's, could keep a device offline by
 * connecting as it. The admin login, the registry's own, stays unbound.
 */
export class MosquittoDynsec implements BrokerAccess {
    private client: MqttClient | undefined
    /** Requests waiting for their responses, by the correlation data of their first command. */
    private readonly waiting = new Map<string, (r: DynsecResponse[]) => void>()
    private nextRequest = 1

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
            // matched by correlation data, not by order: a request that timed out must not take the next one's answer
            let responses: DynsecResponse[]
            try {
                responses = JSON.parse(payload.toString("utf8")).responses
            } catch {
                return
            }
            const id = Array.isArray(responses) ? responses[0]?.correlationData : undefined
            const waiter = id === undefined ? undefined : this.waiting.get(id)
            if (!waiter) return
            this.waiting.delete(id!)
            waiter(responses)
        })
        this.client = client
        return client
    }

    /** Sends commands in one request and returns their responses, one per command, in order. */
    private async send(commands: Record<string, unknown>[]): Promise<DynsecResponse[]> {
        const client = await this.connect()
        const id = String(this.nextRequest++)
        const tagged = commands.map((c, i) => ({ ...c, correlationData: `${id}.${i}` }))
        tagged[0].correlationData = id
        const reply = new Promise<DynsecResponse[]>((resolve, reject) => {
            const timer = setTimeout(() => {
                this.waiting.delete(id)
                reject(new Error("dynamic-security did not answer"))
            }, 5000)
            this.waiting.set(id, r => {
                clearTimeout(timer)
                if (r.length === commands.length) resolve(r)
                else reject(new Error(`dynamic-security answered ${r.length} of ${commands.length} commands`))
            })
        })
        await client.publishAsync("$CONTROL/dynamic-security/v1", JSON.stringify({ commands: tagged }))
        return reply
    }

    /** The login lasts until the registry's `revoke` (dynsec has no expiry of its own). */
    async grant(deviceId: string, password: string): Promise<void> {
        const role = `device-${deviceId}`
        const allow = (acltype: string, topic: string) => ({
            command: "addRoleACL",
            rolename: role,
            acltype,
            topic,
            allow: true,
            priority: 0,
        })
        const responses = await this.send([
            { command: "deleteClient", username: deviceId },
            { command: "deleteRole", rolename: role },
            { command: "createRole", rolename: role },
            allow("publishClientSend", `things/${deviceId}/up/#`),
            allow("subscribePattern", `things/${deviceId}/down/#`),
            allow("publishClientReceive", `things/${deviceId}/down/#`),
            { command: "createClient", username: deviceId, clientid: deviceId, password, roles: [{ rolename: role }] },
        ])
        // the two deletes may fail (nothing to delete); everything after must succeed
        const failed = responses.slice(2).find(r => r.error)
        if (failed) throw new Error(`dynamic-security ${failed.command}: ${failed.error}`)
    }

    async allowOwner(owner: string, deviceId: string): Promise<{ username: string; password: string } | undefined> {
        const username = `owner-${owner}`
        const role = username
        const password = randomBytes(24).toString("base64url")
        const allow = (acltype: string, topic: string) => ({
            command: "addRoleACL",
            rolename: role,
            acltype,
            topic,
            allow: true,
            priority: 0,
        })
        const [created] = await this.send([{ command: "createClient", username, clientid: username, password }])
        const responses = await this.send([
            // createRole and addClientRole fail harmlessly once done (a second device); the ACLs and the client id must succeed
            { command: "createRole", rolename: role },
            allow("subscribePattern", `things/${deviceId}/up/#`),
            allow("publishClientReceive", `things/${deviceId}/up/#`),
            allow("publishClientSend", `things/${deviceId}/down/#`),
            { command: "addClientRole", username, rolename: role },
            // an owner login made before logins were bound to their client id gets bound here
            { command: "setClientId", username, clientid: username },
        ])
        const failed = [...responses.slice(1, 4), responses[5]].find(r => r.error)
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
