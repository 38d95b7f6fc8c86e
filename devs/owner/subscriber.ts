/**
 * The owner's MQTT session: logs in with the owner's broker login, follows
 * each owned device's up topics, and hands every message to the verifier in
 * arrival order. Verified messages and rejections go to callbacks. Copies
 * of a message (a broker delivers at least once) are rejected as replays by
 * the verifier's window of (device, counter) pairs (./consumer.ts).
 */
import mqtt, { type MqttClient } from "mqtt"
import type { Keystore } from "./keystore.ts"
import { Rejected, UplinkVerifier, type Verified } from "./consumer.ts"

/** Options of `subscribeAsOwner`. */
export interface SubscriberOptions {
    /** `mqtts://host:port` of the broker. */
    url: string
    /** Every node of a broker cluster (`url`'s first): the session fails over between them, in turn. */
    nodes?: { host: string; port: number }[]
    /**
     * Keep the session across connections (clean session = 0, MQTT 3.1.1 §3.1.2.4): on a cluster its queue
     * is a quorum queue, so what arrives while the owner reconnects, to another node, waits for it. A client
     * id must keep one choice: RabbitMQ refuses a persistent session where a clean one's queue was.
     */
    persistent?: boolean
    /** CA certificate (PEM) the broker's certificate must chain to. */
    ca: Buffer
    keystore: Keystore
    onVerified: (message: Verified, topic: string) => void
    onRejected: (rejection: Rejected, topic: string) => void
}

/** A running owner session. */
export interface OwnerSubscriber {
    client: MqttClient
    /** Subscribes to a newly claimed device's up topics. */
    follow(deviceId: string): Promise<void>
    /** Resolves once every message received so far has been verified. */
    drain(): Promise<void>
    close(): Promise<void>
}

/** Connects as the owner and follows every device in the keystore. */
export async function subscribeAsOwner(options: SubscriberOptions): Promise<OwnerSubscriber> {
    const login = options.keystore.data.broker
    if (!login) throw new Error("the keystore has no broker login yet: claim a device first")
    const verifier = new UplinkVerifier(options.keystore)
    const client = await mqtt.connectAsync(options.url, {
        username: login.username,
        password: login.password,
        // the broker binds each login to one client id, its username (devs/broker/dynsec.ts)
        clientId: login.username,
        ca: options.ca,
        protocolVersion: 4,
        reconnectPeriod: 1000,
        clean: options.persistent !== true,
        ...(options.nodes ? { servers: options.nodes.map(n => ({ host: n.host, port: n.port, protocol: "mqtts" as const })) } : {}),
    })
    let chain = Promise.resolve()
    client.on("message", (topic, payload) => {
        // one at a time, in arrival order: the replay window depends on it
        chain = chain.then(async () => {
            try {
                options.onVerified(await verifier.verify(topic, Buffer.from(payload)), topic)
            } catch (e) {
                if (e instanceof Rejected) options.onRejected(e, topic)
                else throw e
            }
        })
    })
    const follow = async (deviceId: string) => {
        const granted = await client.subscribeAsync(`things/${deviceId}/up/#`, { qos: 1 })
        if (granted.some(g => g.qos === 128)) throw new Error(`the broker refused the subscription to ${deviceId}`)
    }
    for (const id of Object.keys(options.keystore.data.devices)) await follow(id)
    return { client, follow, drain: () => chain, close: async () => void (await client.endAsync()) }
}

/** One line per verified message, for people. */
export function describeVerified(m: Verified): string {
    const who = m.deviceId.slice(0, 8)
    if (m.kind === "readings")
        return `${who} #${m.counter} ` + m.readings.map(r => `${r.name.split(":").pop()}=${r.value ?? "?"}${r.unit ?? ""}`).join(" ")
    if (m.kind === "events") return `${who} #${m.counter} events: ` + m.events.map(e => `[${e.seq}] ${e.kind}: ${e.detail}`).join("; ")
    return `${who} #${m.counter} state: ${JSON.stringify(m.state)}`
}
