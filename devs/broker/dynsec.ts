/**
 * Broker access (registry/broker-access.ts) through Mosquitto's
 * dynamic-security plugin: the registry's grants become dynsec clients and
 * roles, sent as JSON commands to `$CONTROL/dynamic-security/v1` over an
 * admin MQTT session (https://mosquitto.org/documentation/dynamic-security/).
 */
import mqtt, { type MqttClient } from "mqtt"
import { ownerUsername, type BrokerAccess } from "../registry/broker-access.ts"

/** One dynsec command's reply. */
interface DynsecResponse {
    command: string
    error?: string
    data?: unknown
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

    /** The owner's role: read its devices' up topics, write their down topics. */
    private ownerAcls(role: string, deviceId: string) {
        const allow = (acltype: string, topic: string) => ({
            command: "addRoleACL",
            rolename: role,
            acltype,
            topic,
            allow: true,
            priority: 0,
        })
        return [
            allow("subscribePattern", `things/${deviceId}/up/#`),
            allow("publishClientReceive", `things/${deviceId}/up/#`),
            allow("publishClientSend", `things/${deviceId}/down/#`),
        ]
    }

    async grantOwner(owner: string, password: string, deviceIds: string[]): Promise<void> {
        const username = ownerUsername(owner)
        const role = username
        // the role and its ACLs may exist already (a renewal): those errors are expected
        const setup = await this.send([{ command: "createRole", rolename: role }, ...deviceIds.flatMap(id => this.ownerAcls(role, id))])
        const failed = setup.find(r => r.error && !/already exists/i.test(r.error))
        if (failed) throw new Error(`dynamic-security ${failed.command}: ${failed.error}`)
        const login = { command: "createClient", username, clientid: username, password, roles: [{ rolename: role }] }
        const [created] = await this.send([login])
        if (!created.error) return
        const [existing] = await this.send([{ command: "getClient", username }])
        const client = (existing.data as { client?: { clientid?: string; roles?: { rolename: string }[] } } | undefined)?.client
        if (client?.clientid === username && client.roles?.some(r => r.rolename === role)) {
            // a renewal: only a new password. Deleting the client, or changing its id or roles, would drop its connection
            const [renewed] = await this.send([{ command: "setClientPassword", username, password }])
            if (renewed.error) throw new Error(`dynamic-security setClientPassword: ${renewed.error}`)
            return
        }
        // a login from before logins were bound to their client id (or changed by hand): made again, bound
        const replaced = await this.send([{ command: "deleteClient", username }, login])
        if (replaced[1].error) throw new Error(`dynamic-security createClient: ${replaced[1].error}`)
    }

    async allowOwner(owner: string, deviceId: string): Promise<void> {
        const role = ownerUsername(owner)
        const responses = await this.send(this.ownerAcls(role, deviceId))
        // no role yet (the owner has not logged in with a broker): its first login installs the device
        const failed = responses.find(r => r.error && !/not found/i.test(r.error))
        if (failed) throw new Error(`dynamic-security ${failed.command}: ${failed.error}`)
    }

    async revokeOwner(owner: string): Promise<void> {
        await this.send([
            { command: "deleteClient", username: ownerUsername(owner) },
            { command: "deleteRole", rolename: ownerUsername(owner) },
        ])
    }

    async checkOwnerLogin(owner: string, password: string): Promise<boolean> {
        try {
            const client = await mqtt.connectAsync(`mqtts://${this.endpoint.host}:${this.adminPort}`, {
                username: ownerUsername(owner),
                // the one client id the login may use: this connection takes over a session the login holds
                clientId: ownerUsername(owner),
                password,
                ca: this.ca,
                protocolVersion: 4,
                reconnectPeriod: 0,
                connectTimeout: 5000,
            })
            await client.endAsync()
            return true
        } catch {
            return false
        }
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
