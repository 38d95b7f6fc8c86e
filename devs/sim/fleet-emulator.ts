/**
 * A fleet of devices emulated on the host, for rollouts at a scale the
 * simulator cannot reach (one DeviceScript simulator is a process of its
 * own). Each emulated device speaks the device's real protocols against the
 * local stack, with nothing shared but the process:
 *
 * - it makes its credentials and enrollment as the firmware does
 *   (./host-device.ts), enrolls over HTTPS and logs in with SCRAM-SHA-256
 *   (RFC 7804), from a loopback address of its own (127.0.x.y: the registry
 *   limits enrollments per source, as it would for a house of devices behind
 *   one router);
 * - its owner claims it with the code it "printed";
 * - it connects to the broker with its own expiring login (MQTT 3.1.1 over
 *   TLS), seals its state and readings with COSE_Encrypt0 under its up key
 *   (a counter of its own, the topic as external AAD), and opens the owner's
 *   commands with its down key, refusing a counter it has seen;
 * - it answers an `update` command with sealed update reports (`up/update`)
 *   as its script says: succeed (approved, trial, confirmed), crash (approved,
 *   then rolled-back, reported by the old program), refuse, or never answer.
 *
 * It does not run the firmware: the real simulators (./simulated-device.ts)
 * stay the proof that the firmware does these things.
 */
import { Agent } from "node:https"
import { encode } from "cbor2"
import mqtt, { type MqttClient } from "mqtt"
import { decodeCbor } from "../owner/cbor.ts"
import { commandTopic } from "../owner/commands.ts"
import { counterFromPartialIv, openEncrypt0, sealEncrypt0 } from "../owner/encrypt0.ts"
import { channelKeys, ownerRoot, type ChannelKeys } from "../owner/keys.ts"
import { enroll, httpsTransport, login, type Transport } from "../registry/client.ts"
import { makeHostDevice, type HostDevice } from "./host-device.ts"

/** What an emulated device does when told to install a release. */
export enum Behaviour {
    /** approved, trial, confirmed. */
    Succeed = "succeed",
    /** approved, then the new program crashes and the old one reports rolled-back. */
    Crash = "crash",
    /** refused (a device that would not install it). */
    Refuse = "refuse",
    /** Nothing at all: the rollout's time limits must catch it. */
    Silent = "silent",
}

/** Where the fleet connects, and who claims it. */
export interface EmulatedFleetOptions {
    registryUrl: string
    /** `mqtts://host:port`. */
    brokerUrl: string
    /** The CA the registry's and the broker's certificates chain to. */
    ca: Buffer
    /** The owner claims a device with the code it printed (the owner service's API or its `claim`). */
    claim: (id: string, code: string) => Promise<void>
    /** Each device's script, by its index. Default: all succeed. */
    behaviour?: (index: number) => Behaviour
    /** Time between two steps a device reports. Default 50 ms. */
    stepMs?: number
    /** Devices set up at once (enroll, claim, log in, connect). Default 16. */
    concurrency?: number
    /** Each connected device sends a reading this often (0: never). Default 0. */
    readingEveryMs?: number
    /** Devices left switched off after their claim (never connected until `connect`). Default: none. */
    switchedOff?: (index: number) => boolean
}

/** The broker login the registry hands a device. */
export interface BrokerGrant {
    username: string
    password: string
}

/** The image a device runs before any update: its digest's first bytes are in its state reports. */
const FACTORY_IMAGE = Buffer.alloc(32, 0x11)

/** One emulated device. */
export class EmulatedDevice {
    readonly id: string
    /** Steps it reported, in order, with the release they were about and when. */
    readonly reported: { digest: string; sequence: number; step: string; at: number }[] = []
    /** The releases it was told to install, in order, and when. */
    readonly updates: { digest: string; sequence: number; at: number }[] = []
    /** Commands it opened, in order (their `cmd`). */
    readonly commands: string[] = []
    /** Commands it refused to open (forged, replayed, or not for it). */
    refusedCommands = 0
    private readonly up: ChannelKeys
    private readonly down: ChannelKeys
    private counter = 0
    private highestDown = 0
    private image: Buffer = FACTORY_IMAGE
    private sequence = 0
    private client: MqttClient | undefined
    /** Told of each message as it is sealed, before it is sent (the load test times seal to owner by it). */
    onSeal: ((counter: number, kind: string) => void) | undefined

    constructor(
        private readonly credentials: HostDevice,
        readonly index: number,
        public behaviour: Behaviour,
        private readonly stepMs: number,
        /** The registry it logs in to, from its own address. */
        private readonly registry: Transport,
        private readonly broker: { url: string; ca: Buffer }
    ) {
        this.id = credentials.id
        const root = ownerRoot(credentials.password, credentials.id)
        this.up = channelKeys(root, this.id, "up")
        this.down = channelKeys(root, this.id, "down")
    }

    /** Logs in to the registry (SCRAM) and connects to the broker with the login it got; sends its state. */
    async connect() {
        await this.connectBroker(await this.logIn())
    }

    /** Logs in to the registry (SCRAM): the broker login it hands out. */
    async logIn(): Promise<BrokerGrant> {
        const reply = await login(this.registry, this.id, this.credentials.password)
        const grant = reply.body.broker as BrokerGrant | undefined
        if (reply.status !== 200 || !grant) throw new Error(`device ${this.id} login refused (HTTP ${reply.status})`)
        return grant
    }

    /** Connects to the broker with a login from `logIn`, follows its commands and sends its state. */
    async connectBroker(grant: BrokerGrant) {
        // a broker login is bound to its username as client id (devs/broker/dynsec.ts)
        const client = await mqtt.connectAsync(this.broker.url, {
            // the login only: the grant also names where the registry's broker is (host, port, every node), which would
            // override the node this device was given
            username: grant.username,
            password: grant.password,
            clientId: grant.username,
            ca: this.broker.ca,
            protocolVersion: 4,
            reconnectPeriod: 0,
        })
        await client.subscribeAsync(commandTopic(this.id), { qos: 1 })
        // a connection lost in the middle of an update is a device switched off: its reports are lost with it
        client.on("message", (topic, payload) => void this.onCommand(topic, payload).catch(() => {}))
        this.client = client
        await this.sendState()
    }

    /** Whether it is connected. */
    get online(): boolean {
        return this.client?.connected === true
    }

    /** Drops its connection (the device is switched off, or out of range). */
    async disconnect() {
        const client = this.client
        this.client = undefined
        await client?.endAsync(true)
    }

    private async publish(kind: string, plaintext: Uint8Array) {
        const topic = `things/${this.id}/up/${kind}`
        const payload = sealEncrypt0(Buffer.from(plaintext), this.up, ++this.counter, Buffer.from(topic))
        this.onSeal?.(this.counter, kind)
        await this.client?.publishAsync(topic, payload, { qos: 1 })
    }

    /** Its state report, as the firmware encodes it (src/control/commands.ts). */
    async sendState(answers?: number) {
        const state = new Map<string, unknown>([
            ...(answers === undefined ? [] : ([["answers", answers]] as [string, unknown][])),
            ["boot", 1],
            ["uptime", 1000],
            ["image", new Uint8Array(this.image.subarray(0, 8))],
            ["seq", this.sequence],
            ["phase", "idle"],
            ["events", 0],
            ["queued", 0],
            ["dropped", 0],
        ])
        await this.publish("state", encode(state))
    }

    /** Publishes something its owner did not seal with its key, as a forger with its broker login would. */
    async publishRaw(kind: string, payload: Buffer) {
        await this.client?.publishAsync(`things/${this.id}/up/${kind}`, payload, { qos: 1 })
    }

    /** A reading, as the firmware sends a batch of one (SenML-CBOR). */
    async sendReading(value: number) {
        const pack = [
            new Map<number, unknown>([
                [-2, `urn:dev:sentinel:${this.id}:`],
                [0, "shtc3/temperature"],
                [1, "Cel"],
                [2, value],
            ]),
        ]
        await this.publish("readings", encode(pack))
    }

    private async report(digest: Buffer, sequence: number, step: string, reason?: string) {
        this.reported.push({ digest: digest.toString("hex"), sequence, step, at: Date.now() })
        await this.publish(
            "update",
            encode(
                new Map<string, unknown>([
                    ["digest", new Uint8Array(digest)],
                    ["sequence", sequence],
                    ["step", step],
                    ...(reason ? ([["reason", reason]] as [string, unknown][]) : []),
                ])
            )
        )
    }

    private async onCommand(topic: string, payload: Buffer) {
        let command: Map<unknown, unknown>
        let counter: number
        try {
            if (topic !== commandTopic(this.id)) throw new Error("not my topic")
            const opened = openEncrypt0(payload, this.down, Buffer.from(topic))
            counter = counterFromPartialIv(opened.message.partialIv!)
            if (counter <= this.highestDown) throw new Error("replayed")
            const v = decodeCbor(opened.plaintext)
            if (!(v instanceof Map)) throw new Error("not a map")
            command = v as Map<unknown, unknown>
        } catch {
            this.refusedCommands++
            return
        }
        this.highestDown = counter
        const cmd = String(command.get("cmd"))
        this.commands.push(cmd)
        if (cmd !== "update") return void (await this.sendState(counter))
        const digest = command.get("digest")
        const sequence = command.get("sequence")
        if (!Buffer.isBuffer(digest) || digest.length !== 32 || typeof sequence !== "number") return
        this.updates.push({ digest: digest.toString("hex"), sequence, at: Date.now() })
        await this.sendState(counter)
        await this.install(digest, sequence)
    }

    /** What its script says, a step every `stepMs`. */
    private async install(digest: Buffer, sequence: number) {
        const pause = () => new Promise(r => setTimeout(r, this.stepMs))
        switch (this.behaviour) {
            case Behaviour.Silent:
                return
            case Behaviour.Refuse:
                return void (await this.report(digest, sequence, "refused", "sequence not above the floor"))
            case Behaviour.Crash:
                await this.report(digest, sequence, "approved")
                await pause()
                // the candidate crashes at start; the update service puts the old program back, which says so
                return void (await this.report(digest, sequence, "rolled-back", "the candidate never confirmed"))
            case Behaviour.Succeed:
                await this.report(digest, sequence, "approved")
                await pause()
                await this.report(digest, sequence, "trial")
                await pause()
                this.image = digest
                this.sequence = sequence
                await this.report(digest, sequence, "confirmed")
                await this.sendState()
        }
    }
}

/** A running emulated fleet. */
export interface EmulatedFleet {
    devices: EmulatedDevice[]
    stop(): Promise<void>
}

/** The loopback address device `i` speaks from: 127.0.x.y, never 127.0.0.1 (the owner's). */
export function deviceAddress(i: number): string {
    return `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`
}

/** Makes, enrolls, has claimed, and connects `n` emulated devices, `concurrency` at a time. */
export async function startEmulatedFleet(n: number, options: EmulatedFleetOptions): Promise<EmulatedFleet> {
    const devices: EmulatedDevice[] = []
    const agents: Agent[] = []
    const behaviour = options.behaviour ?? (() => Behaviour.Succeed)
    let next = 0
    const one = async (i: number) => {
        const agent = new Agent({ keepAlive: true, localAddress: deviceAddress(i), family: 4 })
        agents.push(agent)
        const t = httpsTransport(options.registryUrl, options.ca, agent)
        const { device, enrollment } = await makeHostDevice()
        const enrolled = await enroll(t, enrollment)
        if (enrolled.status !== 201) throw new Error(`enrollment of device ${i} refused (HTTP ${enrolled.status})`)
        await options.claim(device.id, device.claimCode)
        const d = new EmulatedDevice(device, i, behaviour(i), options.stepMs ?? 50, t, { url: options.brokerUrl, ca: options.ca })
        if (!options.switchedOff?.(i)) await d.connect()
        devices[i] = d
    }
    const every = options.readingEveryMs ?? 0
    const timer =
        every > 0
            ? setInterval(() => {
                  for (const d of devices) if (d?.online) d.sendReading(20 + (d.index % 10) / 4).catch(() => {})
              }, every)
            : undefined
    const stop = async () => {
        clearInterval(timer)
        await Promise.all(devices.filter(Boolean).map(d => d.disconnect()))
        for (const a of agents) a.destroy()
    }
    try {
        await Promise.all(
            Array.from({ length: Math.min(n, options.concurrency ?? 16) }, async () => {
                while (next < n) await one(next++)
            })
        )
    } catch (e) {
        await stop()
        throw e
    }
    return { devices, stop }
}
