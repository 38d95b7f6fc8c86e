/**
 * The owner service: one process, the only holder of the owner's keys,
 * counters and readings (./store.ts). It
 * - registers the owner's account at the registry once and logs in to it with
 *   SCRAM-SHA-256 (devs/registry/owners.ts), again at 80 % of the session's
 *   lifetime: the session token authorizes claims, the broker login (bound to
 *   the account and to this service's MQTT client id) reads the devices' up
 *   topics and writes their down topics;
 * - follows every claimed device: each message is verified, decrypted and
 *   replay-checked in arrival order (./verifier.ts, synchronous), then stored
 *   with the replay window it moved in a group commit every few milliseconds;
 *   nothing a message holds can stop it, and every refusal is counted with its reason;
 * - sends commands with counters from a block reserved in the store, one at a
 *   time on one MQTT session, so they reach the device in counter order;
 * - tells listeners (the HTTP API's server-sent events) what it stored.
 * The CLIs, the Home Assistant bridge and the console are its clients.
 */
import { randomBytes } from "node:crypto"
import { EventEmitter } from "node:events"
import mqtt, { type MqttClient } from "mqtt"
import { claim as registryClaim, ownerLogin, registerOwner, type OwnerLogin, type Transport } from "../registry/client.ts"
import { commandTopic, encodeCommand, type Command } from "./commands.ts"
import { Encrypt0Error, openEncrypt0, sealEncrypt0, type CipherKeys } from "./encrypt0.ts"
import { channelKeys, claimProof, ENVELOPE_AAD, envelopeKey } from "./keys.ts"
import { LEGACY_LOGIN_SETTING } from "./keystore-migration.ts"
import type { CommandRow, DeviceEventRow, IngestBatch, OwnerStore, RejectionRow } from "./store.ts"
import { printable, Rejected, RejectReason, ReplayWindow, UplinkVerifier, type FollowedDevice, type Json, type Verified } from "./verifier.ts"

/** Down counters reserved per store transaction (as the device reserves its own). */
export const DOWN_COUNTER_BLOCK = 64
/** How long verified messages wait to be stored together. */
const GROUP_COMMIT_MS = 5
/** A batch this large is stored at once. */
const GROUP_COMMIT_MAX = 2000
/** A device is online when it was heard from within this time. */
const ONLINE_MS = 60_000
/** Readings older than this are deleted (the `retention-days` setting overrides it). */
const DEFAULT_RETENTION_DAYS = 30
/** Fields of a state report that may name the command it answers (the firmware's name is `answers`). */
const ANSWER_FIELDS = ["answers", "command"]

/** A claim the registry or the envelope refused; its message never holds the code. */
export class ClaimError extends Error {
    constructor(
        readonly status: number,
        message: string
    ) {
        super(message)
        this.name = "ClaimError"
    }
}

/** What the service tells its listeners, after it is stored. */
export interface ServiceEvents {
    reading: [{ deviceId: string; counter: number; readings: { name: string; unit: string | null; value: number; timeMs: number }[] }]
    state: [{ deviceId: string; counter: number; state: Record<string, Json>; receivedAt: number }]
    event: [{ deviceId: string; events: DeviceEventRow[] }]
    command: [CommandRow]
    rejection: [RejectionRow]
    device: [{ deviceId: string; change: "claimed" | "renamed" | "removed" }]
    /** Every verified message, as verified (tests and the bench follow these). */
    verified: [Verified]
    /** Every rejected message, as rejected. */
    rejected: [{ topic: string; rejection: Rejected }]
}

/** Options of the service. */
export interface OwnerServiceOptions {
    store: OwnerStore
    /** The registry (`httpsTransport` to it, or in-process in tests). */
    registry: Transport
    /** Where the registry is, as kept in the store. */
    registryUrl: string
    /** The owner's name at the registry; needed the first time, checked against the store after. */
    name?: string
    /** CA certificate (PEM) the broker's certificate chains to. */
    brokerCa: Buffer
    /** `mqtts://host:port`; by default where the registry says the broker is. */
    brokerUrl?: string
    clock?: () => number
    /** Where log lines go (they never hold a key, password, token or claim code). */
    log?: (line: string) => void
}

/** One followed device: its keys (derived once) and its window. */
interface Followed extends FollowedDevice {
    down: CipherKeys & { kid: Buffer }
    /** Counters this process may still send: `next..last` of its block. */
    counters: { next: number; last: number } | undefined
    /** Commands sent that wait for their reply, oldest first. */
    pending: { id: number; counter: number; cmd: string }[]
}

/** Commands the device answers with a state report. */
const ANSWERED_BY_STATE = new Set(["interval", "state", "update-check"])

/** The owner service. */
export class OwnerService extends EventEmitter<ServiceEvents> {
    readonly store: OwnerStore
    private readonly clock: () => number
    private readonly log: (line: string) => void
    private readonly followed = new Map<string, Followed>()
    private readonly verifier: UplinkVerifier
    private batch: IngestBatch = emptyBatch()
    private flushTimer: NodeJS.Timeout | undefined
    private renewTimer: NodeJS.Timeout | undefined
    private retentionTimer: NodeJS.Timeout | undefined
    private session: OwnerLogin | undefined
    private client: MqttClient | undefined
    private commands: Promise<unknown> = Promise.resolve()
    private stopped = false
    /** Messages verified and rejected since start, by outcome and reason. */
    readonly counts = { verified: 0, rejected: new Map<string, number>() }

    constructor(private readonly options: OwnerServiceOptions) {
        super()
        this.store = options.store
        this.clock = options.clock ?? Date.now
        this.log = options.log ?? (line => console.log(line))
        this.verifier = new UplinkVerifier(id => this.followed.get(id))
        for (const d of this.store.devices()) this.load(d.id, d.root)
    }

    /** The owner's name (once the account exists). */
    get name(): string | undefined {
        return this.store.account()?.name
    }

    /** The MQTT session (tests publish raw bytes through it). */
    get mqtt(): MqttClient {
        if (!this.client) throw new Error("the owner service is not connected")
        return this.client
    }

    /** Registers the account if this store has none, logs in, connects to the broker and follows every device. */
    async start(): Promise<void> {
        await this.signIn()
        await this.connect()
        this.retentionTimer = setInterval(() => this.applyRetention(), 3_600_000)
        this.retentionTimer.unref()
        this.applyRetention()
    }

    /** Registers the account if this store has none, and logs in to the registry (no broker yet). */
    async signIn(): Promise<void> {
        await this.ensureAccount()
        await this.login()
    }

    private async ensureAccount() {
        const name = this.options.name ?? this.store.setting("owner-name")
        const existing = this.store.account()
        if (existing) {
            if (name !== undefined && name !== existing.name) throw new Error(`this store belongs to owner ${existing.name}, not ${name}`)
            return
        }
        if (name === undefined) throw new Error("this store has no owner account yet: give the owner's name")
        // kept before it is registered: a crash in between leaves a name this store can still log in as
        const password = randomBytes(32)
        this.store.setAccount({ name, registry: this.options.registryUrl, password }, this.clock())
        const reply = await registerOwner(this.options.registry, name, password, this.store.setting(LEGACY_LOGIN_SETTING))
        if (reply.status === 201) {
            this.store.db.prepare("DELETE FROM settings WHERE key = ?").run(LEGACY_LOGIN_SETTING)
            return this.log(`owner account ${name} registered at ${this.options.registryUrl}`)
        }
        if (reply.status === 409) {
            // registered by this store before a crash, or someone else's name
            try {
                await ownerLogin(this.options.registry, name, password)
                return
            } catch {
                this.store.db.prepare("DELETE FROM account").run()
                throw new Error(`the owner name ${name} is taken at the registry: choose another`)
            }
        }
        this.store.db.prepare("DELETE FROM account").run()
        throw new Error(`the registry refused the owner account (HTTP ${reply.status}): ${String(reply.body.error ?? "")}`)
    }

    /** Logs in as the owner; schedules the next login at 80 % of the shorter lifetime. */
    private async login() {
        const account = this.store.account()!
        this.session = await ownerLogin(this.options.registry, account.name, account.password)
        if (this.client && this.session.broker) {
            // the registry replaced the login (and dropped the session): reconnect with the new password
            this.client.options.password = this.session.broker.password
        }
        const ttl = Math.min(this.session.ttlMs, this.session.broker?.ttlMs ?? Infinity)
        clearTimeout(this.renewTimer)
        this.renewTimer = setTimeout(() => void this.renew(), ttl * 0.8)
        this.renewTimer.unref()
    }

    private async renew() {
        if (this.stopped) return
        try {
            await this.login()
        } catch (e) {
            this.log(`owner login failed, retrying in 10 s: ${(e as Error).message}`)
            this.renewTimer = setTimeout(() => void this.renew(), 10_000)
            this.renewTimer.unref()
        }
    }

    private async connect() {
        const broker = this.session?.broker
        if (!broker) throw new Error("the registry gave the owner no broker login (is it wired to a broker?)")
        const url = this.options.brokerUrl ?? `mqtts://${broker.host}:${broker.port}`
        const client = await mqtt.connectAsync(url, {
            username: broker.username,
            password: broker.password,
            clientId: broker.clientId,
            ca: this.options.brokerCa,
            protocolVersion: 4,
            // a persistent session: what arrives while a renewal reconnects waits at the broker
            clean: false,
            reconnectPeriod: 1000,
        })
        client.on("message", (topic, payload) => this.ingest(topic, payload))
        client.on("error", e => this.log(`broker: ${e.message}`))
        this.client = client
        for (const id of this.followed.keys()) await this.subscribe(id)
    }

    private async subscribe(id: string) {
        const granted = await this.mqtt.subscribeAsync(`things/${id}/up/#`, { qos: 1 })
        if (granted.some(g => g.qos === 128)) throw new Error(`the broker refused the subscription to ${id}`)
    }

    private load(id: string, root: Buffer) {
        const up = channelKeys(root, id, "up")
        const down = channelKeys(root, id, "down")
        const w = this.store.upWindow(id)
        this.followed.set(id, {
            up: { key: up.key, contextIv: up.contextIv },
            down,
            window: w ? ReplayWindow.fromStore(w.highest, w.seen) : new ReplayWindow(),
            counters: undefined,
            pending: [],
        })
    }

    // --- what devices send

    /** Verifies one message and queues what it holds for the next group commit; never throws. */
    ingest(topic: string, payload: Buffer) {
        const at = this.clock()
        try {
            const message = this.verifier.verify(topic, payload)
            this.counts.verified++
            this.batch.verified.push({ message, receivedAt: at })
            this.batch.windows.set(message.deviceId, this.followed.get(message.deviceId)!.window)
            if (message.kind === "state") this.correlate(message, at)
            this.emit("verified", message)
        } catch (e) {
            const r =
                e instanceof Rejected
                    ? e
                    : new Rejected(RejectReason.Content, `unexpected: ${printable(String((e as Error)?.message ?? e))}`)
            this.counts.rejected.set(r.reason, (this.counts.rejected.get(r.reason) ?? 0) + 1)
            this.batch.rejections.push({ deviceId: r.deviceId ?? null, topic: printable(topic, 120), reason: r.reason, detail: r.message, at })
            this.emit("rejected", { topic, rejection: r })
        }
        if (this.batch.verified.length + this.batch.rejections.length >= GROUP_COMMIT_MAX) this.flush()
        else this.flushTimer ??= setTimeout(() => this.flush(), GROUP_COMMIT_MS)
    }

    /** A state report answers the command it names, or else the oldest one still waiting that a state answers. */
    private correlate(m: Verified & { kind: "state" }, at: number) {
        const f = this.followed.get(m.deviceId)!
        const named = ANSWER_FIELDS.map(k => m.state[k]).find(v => typeof v === "number")
        const i = named !== undefined ? f.pending.findIndex(p => p.counter === named) : f.pending.findIndex(p => ANSWERED_BY_STATE.has(p.cmd))
        if (i < 0) return
        const [answered] = f.pending.splice(i, 1)
        this.batch.answers.push({ commandId: answered.id, reply: m.state, at })
    }

    /** Stores what is queued, in one transaction, then tells listeners. */
    flush() {
        clearTimeout(this.flushTimer)
        this.flushTimer = undefined
        const batch = this.batch
        if (!batch.verified.length && !batch.rejections.length) return
        this.batch = emptyBatch()
        try {
            this.store.commitIngest(batch)
        } catch (e) {
            // the store failed (disk full, say): the service stays up, and says so
            this.log(`store: ${(e as Error).message}; ${batch.verified.length} messages not kept`)
            return
        }
        if (this.listenerCount("reading") + this.listenerCount("state") + this.listenerCount("event") + this.listenerCount("rejection") === 0)
            return
        for (const { message: m, receivedAt } of batch.verified) {
            if (m.kind === "readings")
                this.emit("reading", {
                    deviceId: m.deviceId,
                    counter: m.counter,
                    readings: m.readings
                        .filter(r => r.value !== undefined)
                        .map(r => ({ name: r.name.split(":").pop()!, unit: r.unit ?? null, value: r.value!, timeMs: receivedAt + r.time * 1000 })),
                })
            else if (m.kind === "state") this.emit("state", { deviceId: m.deviceId, counter: m.counter, state: m.state, receivedAt })
            else this.emit("event", { deviceId: m.deviceId, events: m.events.map(e => ({ ...e, receivedAt })) })
        }
        for (const r of batch.rejections) this.emit("rejection", r)
        for (const a of batch.answers) {
            const answered = this.store.command(a.commandId)
            if (answered) this.emit("command", answered)
        }
    }

    /** Resolves once everything received so far is stored. */
    async drain(): Promise<void> {
        this.flush()
    }

    private applyRetention() {
        const days = Number(this.store.setting("retention-days") ?? DEFAULT_RETENTION_DAYS)
        const deleted = this.store.deleteReadingsBefore(this.clock() - days * 86_400_000)
        if (deleted) this.log(`retention: ${deleted} readings older than ${days} days deleted`)
    }

    // --- what the owner does

    /** Claims a device with the code it printed (never sent, never logged); follows it from then on. */
    async claim(id: string, code: string, name?: string): Promise<void> {
        if (this.followed.has(id)) throw new ClaimError(409, `device ${id} is already claimed by this owner`)
        const proof = claimProof(code)
        let reply = await registryClaim(this.options.registry, id, proof, this.token())
        if (reply.status === 401) {
            await this.login()
            reply = await registryClaim(this.options.registry, id, proof, this.token())
        }
        if (reply.status !== 200) throw new ClaimError(reply.status, `claim refused (HTTP ${reply.status}): ${String(reply.body.error ?? "")}`)
        const envelope = Buffer.from(String(reply.body.envelope ?? ""), "base64")
        let root: Buffer
        try {
            const opened = openEncrypt0(envelope, { key: envelopeKey(code, id), contextIv: Buffer.alloc(13) }, ENVELOPE_AAD)
            if (!opened.message.kid.equals(Buffer.from(id, "hex")) || opened.plaintext.length !== 32) throw new Error("wrong device")
            root = opened.plaintext
        } catch (e) {
            const why = e instanceof Encrypt0Error ? "the code does not open the envelope" : "the envelope is for another device"
            throw new ClaimError(502, `the registry's envelope for ${id} is not usable: ${why}`)
        }
        this.store.addDevice({ id, name: name ?? id.slice(0, 8), root, claimedAt: this.clock() })
        this.load(id, root)
        if (this.client) await this.subscribe(id)
        this.log(`claimed ${id}`)
        this.emit("device", { deviceId: id, change: "claimed" })
    }

    private token(): string {
        if (!this.session) throw new Error("not logged in to the registry")
        return this.session.token
    }

    rename(id: string, name: string): boolean {
        const done = this.store.rename(id, name)
        if (done) this.emit("device", { deviceId: id, change: "renamed" })
        return done
    }

    /** Forgets a device and its keys (the registry still holds the claim). */
    async remove(id: string): Promise<boolean> {
        if (!this.followed.has(id)) return false
        this.followed.delete(id)
        await this.client?.unsubscribeAsync(`things/${id}/up/#`)
        this.store.removeDevice(id)
        this.emit("device", { deviceId: id, change: "removed" })
        return true
    }

    /** Whether this owner follows `id`. */
    follows(id: string): boolean {
        return this.followed.has(id)
    }

    /**
     * Sends a command, sealed with the device's down key and the next counter
     * of this process's block. Commands go one at a time, so they leave in
     * counter order; resolves once the broker has taken it (PUBACK).
     */
    command(id: string, command: Command): Promise<CommandRow> {
        const next = this.commands.then(() => this.send(id, command))
        this.commands = next.catch(() => {})
        return next
    }

    private async send(id: string, command: Command): Promise<CommandRow> {
        const f = this.followed.get(id)
        if (!f) throw new Error(`device ${id} is not claimed by this owner`)
        if (!f.counters || f.counters.next > f.counters.last) {
            const { first, last } = this.store.reserveDownCounters(id, DOWN_COUNTER_BLOCK)
            f.counters = { next: first, last }
        }
        const counter = f.counters.next++
        const topic = commandTopic(id)
        const payload = sealEncrypt0(encodeCommand(command), f.down, counter, Buffer.from(topic))
        await this.mqtt.publishAsync(topic, payload, { qos: 1 })
        const at = this.clock()
        const rowId = this.store.recordCommand(id, counter, command as unknown as Record<string, Json>, at)
        f.pending.push({ id: rowId, counter, cmd: command.cmd })
        if (f.pending.length > 100) f.pending.shift()
        const row: CommandRow = { id: rowId, deviceId: id, counter, command: command as never, sentAt: at, status: "sent", reply: null, answeredAt: null }
        this.log(`sent ${command.cmd} to ${id} (counter ${counter})`)
        this.emit("command", row)
        return row
    }

    // --- what the console shows

    /** The device list: what an owner needs to see at a glance. */
    deviceList() {
        const now = this.clock()
        const counts = this.store.rejectionCounts()
        return this.store.devices().map(d => {
            const w = this.store.upWindow(d.id)
            const s = this.store.state(d.id)
            const state = s?.state ?? {}
            const lastVisit = this.store.lastVisit(d.id)
            return {
                id: d.id,
                name: d.name,
                claimedAt: d.claimedAt,
                online: w?.lastSeen != null && now - w.lastSeen < ONLINE_MS,
                lastSeen: w?.lastSeen ?? null,
                lastCounter: w && w.highest >= 0 ? w.highest : null,
                firmware: state.firmware ?? null,
                sequence: state.sequence ?? null,
                update: state.update ?? null,
                queued: state.queued ?? null,
                dropped: state.dropped ?? null,
                eventsSinceVisit: this.store.eventsSince(d.id, lastVisit),
                rejected: counts.filter(c => c.deviceId === d.id).reduce((n, c) => n + c.count, 0),
            }
        })
    }

    /** One device in detail (and the owner has now seen its events). */
    deviceDetail(id: string) {
        const d = this.store.device(id)
        if (!d) return undefined
        const summary = this.deviceList().find(x => x.id === id)!
        const detail = {
            ...summary,
            state: this.store.state(id) ?? null,
            events: this.store.deviceEvents(id),
            commands: this.store.commands(id),
            rejections: this.store.rejections(50, id),
            quantities: (
                this.store.db.prepare("SELECT DISTINCT name, unit FROM readings WHERE device_id = ? ORDER BY name").all(id) as {
                    name: string
                    unit: string | null
                }[]
            ).map(q => ({ name: q.name, unit: q.unit })),
        }
        this.store.setLastVisit(id, this.clock())
        return detail
    }

    /** Stops following, stores what is queued, and closes the broker session (the store stays open). */
    async stop() {
        this.stopped = true
        clearTimeout(this.renewTimer)
        clearInterval(this.retentionTimer)
        await this.commands
        this.flush()
        await this.client?.endAsync()
        this.client = undefined
    }
}

function emptyBatch(): IngestBatch {
    return { verified: [], rejections: [], windows: new Map(), answers: [] }
}
