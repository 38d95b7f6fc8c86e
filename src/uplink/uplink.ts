/**
 * The secure uplink: readings and reports sealed end to end, queued, and
 * carried over MQTT 3.1.1 on an outbound TLS connection. The device never
 * listens; it owns the one socket the runtime allows and schedules it:
 *
 *   registry (HTTPS, SCRAM-SHA-256) -> broker password -> MQTT session
 *   -> before the password expires: close MQTT, registry again, reconnect.
 *
 * Topics: `up/readings`, `up/events`, `up/state` and `up/update` (the updater's reports).
 *
 * Sealing and queueing never wait for the network, so a registry or broker
 * outage only fills the queue. Failures back off exponentially with jitter.
 * When the broker is a cluster the grant names every node, and a connection
 * that fails or breaks moves on to the next one; a message leaves the queue
 * only on its PUBACK, so what a dying node did not acknowledge is sent again.
 */
import * as ds from "@devicescript/core"
import { encodeReadingPacks, ReadingBatch } from "../codec/readings"
import { EventLog } from "../events/log"
import { DeviceIdentity } from "../identity/credentials"
import { BrokerGrant, registryExchange, RegistryError, RegistrySession } from "../identity/registry-client"
import { ScramKeyCache } from "../identity/scram"
import { backoffMs } from "../net/backoff"
import { Endpoint } from "../net/endpoint"
import { HttpsConnection } from "../net/https"
import { MqttClient, MqttError } from "../net/mqtt"
import { ReadingSink } from "../pipeline/sink"
import { partialIvFromCounter, seal, sealOverhead } from "../secure/cose"
import { CounterError, MessageCounter } from "../secure/counter"
import { ChannelKeys, channelKeys, ownerRoot } from "../secure/keys"
import { SettingKey, StorageError } from "../storage/settings"
import { Command, CommandBacklog, DownlinkError, DownlinkVerifier } from "./downlink"
import { MAX_QUEUED_BYTES, OutboundQueue } from "./queue"

/** Options of the uplink. */
export interface UplinkOptions {
    identity: DeviceIdentity
    registry: Endpoint
    events: EventLog
}

/** Backoff after failures: 2 s, doubling to 5 min, with jitter. */
const MIN_BACKOFF_MS = 2000
const MAX_BACKOFF_MS = 300000
/**
 * While unclaimed the device asks the registry again after 2 s, doubling to
 * 2 min: a device its owner is claiming learns of it within seconds, and one
 * that waits for an owner for days costs the registry a login every 2 min.
 */
const MIN_UNCLAIMED_POLL_MS = 2000
const MAX_UNCLAIMED_POLL_MS = 120000

/** The share of a broker password's lifetime after which it is renewed. */
const REFRESH_AT = 0.8

/**
 * Commands waiting to run, at most. They arrive as fast as the broker sends
 * them (the client acknowledges each on arrival) and run one at a time as
 * their replies leave (`REPLY_ROOM`); a command beyond this many is refused
 * as `busy` (a `downlink-refused` event) before its counter is taken, and the
 * owner may send it again. 128 waiting take about 8 KB of the VM's heap; the
 * RAM budget holds them with the largest downlink (test/device/fixtures/ram-probe.ts).
 */
export const MAX_WAITING_COMMANDS = 128
/**
 * A command runs only while the queue holds fewer messages than this, so its
 * reply (up to 7 messages for the event log) waits in RAM: a burst of
 * commands is answered at the pace the broker acknowledges, instead of its
 * replies spilling into flash, a flash write each, or dropping the oldest.
 */
const REPLY_ROOM = 8

/** What the device answers a command with: a plaintext for `things/<id>/up/<topic>`. */
export interface CommandReply {
    topic: string
    body: Buffer
}

/** What runs the owner's commands. */
export interface CommandRunner {
    /** Runs an authenticated command (`counter`: the down counter it came with); returns the reply to send, if any. */
    run(command: Command, counter: number): Promise<CommandReply>
}

/** Seals, queues and delivers; also a `ReadingSink` for the pipeline. */
export class SecureUplink implements ReadingSink {
    private readonly upPrefix: string
    private readonly cache: ScramKeyCache = {}
    private readonly waiting = new CommandBacklog(MAX_WAITING_COMMANDS)
    private grant: BrokerGrant = undefined
    private grantUntilMs = 0
    /** Which of the grant's broker nodes to connect to next: a failed connection moves on to the next node. */
    private brokerTurn = 0
    /** Set once a session is up: a connection that worked and then broke starts the backoff afresh. */
    private sessionUp = false
    /** Work that needs the socket (an update check): run between sessions. */
    private socketTask: () => Promise<void> = undefined
    private commands: CommandRunner = undefined

    private constructor(
        readonly options: UplinkOptions,
        private readonly up: ChannelKeys,
        private readonly down: DownlinkVerifier,
        private readonly counter: MessageCounter,
        /** The outbound queue (its size and drops go into the state report). */
        readonly queue: OutboundQueue
    ) {
        this.upPrefix = `things/${options.identity.deviceId}/up/`
    }

    /**
     * Derives the channel keys from the device secret and opens what the
     * uplink keeps in flash: the message counter, the highest accepted
     * downlink counter and the outbound queue. When the stored counter is
     * unreadable, records it and returns undefined: resuming without the
     * counter could reuse a nonce, so the device stays offline until a factory reset.
     */
    static async open(options: UplinkOptions): Promise<SecureUplink> {
        const { secret, deviceId } = options.identity
        const root = ownerRoot(secret, deviceId)
        let counter: MessageCounter
        try {
            counter = await MessageCounter.open({ key: SettingKey.MessageCounter })
        } catch (e: any) {
            if (!(e instanceof CounterError)) throw e
            await options.events.record("storage-corrupt", e.message)
            return undefined
        }
        const down = await DownlinkVerifier.open(channelKeys(root, deviceId, "down"), deviceId)
        const queue = await OutboundQueue.open({ events: options.events })
        return new SecureUplink(options, channelKeys(root, deviceId, "up"), down, counter, queue)
    }

    /**
     * Seals a batch as SenML-CBOR packs, each as full as a queue slot allows (a message's own bytes are paid once
     * per pack), and queues them.
     */
    async deliver(batch: ReadingBatch): Promise<void> {
        const withDrops: ReadingBatch = { ...batch, dropped: batch.dropped + this.queue.dropped }
        const packs = await encodeReadingPacks(withDrops, MAX_QUEUED_BYTES - sealOverhead(this.up.kid.length))
        for (const pack of packs) await this.send("readings", pack)
    }

    /**
     * Seals `plaintext` for `things/<id>/up/<topic>` and queues it (in flash
     * at once when `durable`). The topic is the external AAD, so a message
     * cannot be replayed under another topic.
     */
    async send(topic: string, plaintext: Buffer, durable?: boolean): Promise<void> {
        const counter = await this.counter.next()
        const payload = await seal(plaintext, {
            key: this.up.key,
            kid: this.up.kid,
            externalAad: Buffer.from(this.upPrefix + topic),
            partialIv: partialIvFromCounter(counter),
            contextIv: this.up.contextIv,
        })
        const droppedBefore = this.queue.dropped
        await this.queue.push({ topic, payload }, durable)
        if (this.queue.dropped > droppedBefore && this.queue.dropped % 100 === 1)
            await this.options.events.record("queue-overflow", `queue full: ${this.queue.dropped} dropped`)
        console.log(`uplink: sealed ${topic} #${counter}, ${payload.length} B, queue ${this.queue.size()}`)
    }

    /**
     * Gives the socket to `task` as soon as the current MQTT session closes
     * (at once if none is open); the schedule resumes when it returns.
     */
    lendSocket(task: () => Promise<void>) {
        this.socketTask = task
    }

    /**
     * Checks that registry and broker are reachable with our credentials: one
     * SCRAM exchange and one MQTT connection. Returns what failed, or undefined.
     * Needs the socket free (a candidate's trial in the updater calls it before `run`).
     */
    async probe(): Promise<string> {
        try {
            await this.renewGrant()
            if (!this.grant) return "registry: not claimed"
            const client = await this.connect(this.grant)
            await client.close()
            return undefined
        } catch (e: any) {
            await this.recordFailure(e)
            return `${e.name}: ${e.message}`
        }
    }

    /** Runs the connection schedule forever, handing each authenticated command to `commands`. */
    async run(commands: CommandRunner) {
        this.commands = commands
        let failures = 0
        let unclaimedPolls = 0
        for (;;) {
            let waitMs = 0
            if (this.socketTask) {
                const task = this.socketTask
                this.socketTask = undefined
                await task()
            }
            try {
                if (!this.grant || ds.millis() >= this.grantUntilMs) await this.renewGrant()
                if (this.grant) {
                    unclaimedPolls = 0
                    await this.session(this.grant)
                    failures = 0
                } else waitMs = backoffMs(unclaimedPolls++, MIN_UNCLAIMED_POLL_MS, MAX_UNCLAIMED_POLL_MS)
            } catch (e: any) {
                if (this.sessionUp) failures = 0
                this.sessionUp = false
                waitMs = backoffMs(failures++, MIN_BACKOFF_MS, MAX_BACKOFF_MS)
                await this.recordFailure(e)
                console.log(`uplink: ${e.name}: ${e.message}; retrying in ${Math.round(waitMs / 1000)} s`)
            }
            if (waitMs > 0) await ds.sleep(waitMs)
        }
    }

    private async renewGrant() {
        this.grant = undefined
        // both SCRAM requests on one TLS connection, closed before MQTT takes the socket
        const https = new HttpsConnection(this.options.registry)
        let session: RegistrySession
        try {
            session = await registryExchange(this.options.identity, https, this.options.events, this.cache)
        } finally {
            await https.close()
        }
        if (!session.claimed) {
            console.log("uplink: waiting for the owner's claim")
            return
        }
        if (!session.broker) throw new RegistryError("protocol", "claimed but no broker granted")
        this.grant = session.broker
        this.grantUntilMs = ds.millis() + session.broker.ttlMs * REFRESH_AT
    }

    private async recordFailure(e: any) {
        if (e instanceof MqttError) {
            // a node that is down, unreachable or broken: the next one (a refused login is not the node's fault)
            if (e.failure !== "refused") this.brokerTurn++
            if (e.failure === "tls") await this.options.events.record("tls-refused", e.message)
            // a packet that breaks MQTT (a topic of ill-formed UTF-8, a length past the end): the connection was closed
            if (e.failure === "protocol") await this.options.events.record("protocol-error", e.message)
            if (e.failure === "refused") {
                await this.options.events.record("auth-failure", e.message)
                this.grant = undefined
            }
        } else if (!(e instanceof RegistryError)) throw e
    }

    /** An MQTT connection with the credentials of `grant`. */
    private async connect(grant: BrokerGrant): Promise<MqttClient> {
        const node = grant.nodes[this.brokerTurn % grant.nodes.length]
        return await MqttClient.connect({
            host: node.host,
            port: node.port,
            clientId: this.options.identity.deviceId,
            username: grant.username,
            password: grant.password,
            keepAliveS: 60,
        })
    }

    /** One MQTT session, until the connection fails, the password is due for renewal or the socket is lent. */
    private async session(grant: BrokerGrant) {
        const id = this.options.identity.deviceId
        const client = await this.connect(grant)
        const self = this
        client.onMessage = async m => {
            await self.onDownlink(m.topic, m.payload)
        }
        try {
            // QoS 0: a clean session drops what is in flight when it ends (MQTT 3.1.1 §4.1), so QoS 1 would add nothing, and
            // on a RabbitMQ cluster a clean QoS 1 subscription is a durable queue on one node, which blocks subscribing
            // on any other node while that node is down; a QoS 0 subscription's queue goes with its node
            await client.subscribe(`things/${id}/down/#`, 0)
            this.sessionUp = true
            const node = grant.nodes[this.brokerTurn % grant.nodes.length]
            console.log(`uplink: connected to ${node.host}:${node.port}`)
            while (ds.millis() < this.grantUntilMs) {
                const ran = await this.runNextCommand()
                if (this.socketTask) return
                const head = await this.queue.peek()
                if (head) {
                    await client.publish(this.upPrefix + head.topic, head.payload, 1)
                    await this.queue.remove(head)
                } else if (!ran) await client.poll(250)
            }
            console.log("uplink: renewing the broker grant")
        } finally {
            await client.close()
        }
    }

    private async onDownlink(topic: string, payload: Buffer) {
        if (this.waiting.full()) {
            await this.options.events.record("downlink-refused", `busy: ${MAX_WAITING_COMMANDS} commands waiting`)
            return
        }
        try {
            this.waiting.add(await this.down.accept(topic, payload))
        } catch (e: any) {
            if (e instanceof DownlinkError) await this.options.events.record("downlink-refused", `${e.reason}: ${e.message}`)
            // its counter may not be in flash: run now, the command could run again from a replay after a reboot
            else if (e instanceof StorageError) await this.options.events.record("storage-failed", `command not run: ${e.message}`)
            else throw e
        }
    }

    /** Runs the oldest waiting command if its reply has room in the queue (`REPLY_ROOM`); returns whether one ran. */
    private async runNextCommand(): Promise<boolean> {
        if (this.waiting.size() === 0 || this.queue.size() >= REPLY_ROOM) return false
        const { command, counter } = this.waiting.take()
        console.log(`uplink: command ${command.cmd}`)
        const reply = await this.commands.run(command, counter)
        if (reply) await this.send(reply.topic, reply.body)
        return true
    }
}
