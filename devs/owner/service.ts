/**
 * The owner service: one process, the only holder of the owner's keys,
 * counters and readings (./store.ts). It
 * - registers the owner's account at the registry once and logs in to it with
 *   SCRAM-SHA-256 (devs/registry/owners.ts), again at 80 % of the session's
 *   lifetime: the session token authorizes claims, the broker login (bound to
 *   the account and to this service's MQTT client id) reads the devices' up
 *   topics and writes their down topics;
 * - follows every claimed device: the main thread only receives messages and
 *   forwards them in arrival order, every few milliseconds, to the ingest
 *   worker (./ingest-worker.ts), which verifies, decrypts and replay-checks
 *   each (./verifier.ts) and stores the batch with the replay windows it moved
 *   in one group commit; nothing a message holds can stop either thread, and
 *   every refusal is counted with its reason;
 * - sends commands with counters from a block reserved in the store, one at a
 *   time on one MQTT session, so they reach the device in counter order;
 * - drives the owner's rollouts (./rollout/): offers a release with the
 *   `update` command and counts each device's sealed update reports;
 * - tells listeners (the HTTP API's server-sent events) what it stored.
 * The CLIs, the Home Assistant bridge and the console are its clients.
 */
import { randomBytes } from "node:crypto"
import { EventEmitter } from "node:events"
import { Worker } from "node:worker_threads"
import mqtt, { type MqttClient } from "mqtt"
import { claim as registryClaim, ownerLogin, registerOwner, type OwnerLogin, type Transport } from "../registry/client.ts"
import { commandTopic, encodeCommand, type Command } from "./commands.ts"
import { Encrypt0Error, openEncrypt0, sealEncrypt0, type CipherKeys } from "./encrypt0.ts"
import type { IngestResult } from "./ingest.ts"
import type { ToWorker } from "./ingest-worker.ts"
import { channelKeys, claimProof, ENVELOPE_AAD, envelopeKey } from "./keys.ts"
import { LEGACY_LOGIN_SETTING } from "./keystore-migration.ts"
import { RolloutDriver, type RolloutChange } from "./rollout/driver.ts"
import type { Release } from "./rollout/engine.ts"
import { readingTimeMs, type CommandRow, type DeviceEventRow, type OwnerStore, type RejectionRow } from "./store.ts"
import type { UpdateReport } from "./update-report.ts"
import { Rejected, type Json, type RejectReason, type Verified } from "./verifier.ts"

/** The setting that says the registry confirmed this store's account (201, or a login after a 409). */
const ACCOUNT_REGISTERED = "account-registered"
/** Down counters reserved per store transaction (as the device reserves its own). */
export const DOWN_COUNTER_BLOCK = 64
/** How long received messages wait to go to the ingest worker together (and be stored in one commit). */
const GROUP_COMMIT_MS = 5
/** A batch this large goes at once. */
const GROUP_COMMIT_MAX = 1000
/** A device is online when it was heard from within this time. */
const ONLINE_MS = 60_000
/** Readings older than this are deleted (the `retention-days` setting overrides it). */
const DEFAULT_RETENTION_DAYS = 30
/** Restarts of an ingest worker that ends before storing anything, before the service gives up on it. */
const MAX_WORKER_RESTARTS = 5
/**
 * The field of a state report that names the down counter of the command it
 * answers (src/control/commands.ts). A report without it, from firmware older
 * than the field, answers the oldest command still waiting for a state.
 */
const ANSWER_FIELD = "answers"

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
    device: [{ deviceId: string; change: "claimed" | "renamed" | "removed" | "tagged" }]
    /** A device's sealed report of one update step (the store keeps each; the rollouts count them). */
    update: [{ deviceId: string; counter: number; report: UpdateReport; receivedAt: number }]
    /** A rollout changed (its record or some devices' steps). */
    rollout: [RolloutChange]
    /** Every verified message, as verified (tests and the bench follow these). */
    verified: [Verified]
    /** Every rejected message, as rejected. */
    rejected: [{ topic: string; rejection: Rejected }]
    /** A group commit: how many messages it stored and rejected. */
    stored: [{ verified: number; rejected: number }]
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
    /**
     * Every node of a broker cluster, in the order to try them: the session fails over between them in turn (its
     * queue, a quorum queue, outlives any one node). `brokerUrl` is then left aside.
     */
    brokerNodes?: { host: string; port: number }[]
    clock?: () => number
    /** Where log lines go (they never hold a key, password, token or claim code). */
    log?: (line: string) => void
    /** A device is online when heard from within this time (default 60 s). */
    onlineMs?: number
}

/** What the main thread keeps of a followed device (its up keys and window live in the ingest worker). */
interface Followed {
    down: CipherKeys & { kid: Buffer }
    /** Counters this process may still send: `next..last` of its block. */
    counters: { next: number; last: number } | undefined
    /** Commands sent that wait for their reply, oldest first. */
    pending: { id: number; counter: number; cmd: string }[]
}

/**
 * The ingest worker's first lines: a worker thread does not inherit the loader
 * hooks that run TypeScript (tsx's, in Node 20), so it registers them itself,
 * then loads the worker module.
 */
const WORKER_BOOTSTRAP = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})
    .then(tsx => { tsx.register(); return import(${JSON.stringify(new URL("./ingest-worker.ts", import.meta.url).href)}) })`

/** Commands the device answers with a state report. */
const ANSWERED_BY_STATE = new Set(["interval", "state", "update-check", "update"])

/** The owner service. */
export class OwnerService extends EventEmitter<ServiceEvents> {
    readonly store: OwnerStore
    /** The owner's rollouts. */
    readonly rollouts: RolloutDriver
    private readonly clock: () => number
    /** A device is online when heard from within this time. */
    private readonly onlineMs: number
    private readonly log: (line: string) => void
    private readonly followed = new Map<string, Followed>()
    private worker: Worker | undefined
    /** Messages received since the last batch went to the worker. */
    private pending: { topics: string[]; payloads: Uint8Array[]; at: number[] } = { topics: [], payloads: [], at: [] }
    private seq = 0
    private storedSeq = 0
    /** Restarts of the ingest worker since it last stored a batch. */
    private workerRestarts = 0
    private readonly drains: { seq: number; resolve: () => void }[] = []
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
        this.onlineMs = options.onlineMs ?? ONLINE_MS
        this.log = options.log ?? (line => console.log(line))
        if (options.store.path === ":memory:") throw new Error("the owner service needs a store file (its ingest worker opens it too)")
        for (const d of this.store.devices()) this.load(d.id, d.root)
        this.rollouts = new RolloutDriver(
            {
                store: this.store,
                clock: this.clock,
                sendUpdate: (id, release) => this.sendUpdate(id, release),
                follows: id => this.follows(id),
                changed: change => this.emit("rollout", change),
                log: this.log,
            },
            this.onlineMs
        )
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
        this.rollouts.start()
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
        let account = this.store.account()
        if (account && name !== undefined && name !== account.name)
            throw new Error(`this store belongs to owner ${account.name}, not ${name}`)
        if (account && this.store.setting(ACCOUNT_REGISTERED) === "yes") return
        if (!account) {
            if (name === undefined) throw new Error("this store has no owner account yet: give the owner's name")
            // kept before it is registered: a crash in between leaves a name this store can still register or log in as
            account = { name, registry: this.options.registryUrl, password: randomBytes(32) }
            this.store.setAccount(account, this.clock())
        }
        // an account kept but never confirmed registered (stopped mid-registration): registered again with the same password
        const reply = await registerOwner(this.options.registry, account.name, account.password, this.store.setting(LEGACY_LOGIN_SETTING))
        if (reply.status === 201) {
            this.store.deleteSetting(LEGACY_LOGIN_SETTING)
            this.store.setSetting(ACCOUNT_REGISTERED, "yes")
            return this.log(`owner account ${account.name} registered at ${this.options.registryUrl}`)
        }
        if (reply.status === 409) {
            // registered by this store before a crash, or someone else's name
            try {
                await ownerLogin(this.options.registry, account.name, account.password)
                this.store.setSetting(ACCOUNT_REGISTERED, "yes")
                return
            } catch {
                this.store.forgetAccount()
                throw new Error(`the owner name ${account.name} is taken at the registry: choose another`)
            }
        }
        this.store.forgetAccount()
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
        const nodes = this.options.brokerNodes
        const first = nodes?.[0]
        const url = first ? `mqtts://${first.host}:${first.port}` : (this.options.brokerUrl ?? `mqtts://${broker.host}:${broker.port}`)
        const client = await mqtt.connectAsync(url, {
            username: broker.username,
            password: broker.password,
            clientId: broker.clientId,
            ca: this.options.brokerCa,
            protocolVersion: 4,
            // a persistent session: what arrives while a renewal reconnects waits at the broker
            clean: false,
            reconnectPeriod: 1000,
            ...(nodes && nodes.length > 1 ? { servers: nodes.map(n => ({ host: n.host, port: n.port, protocol: "mqtts" as const })) } : {}),
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
        this.followed.set(id, { down: channelKeys(root, id, "down"), counters: undefined, pending: [] })
        this.toWorker({ kind: "follow", id, root })
    }

    /** The ingest worker, started on first use (and again if it ever ends). */
    private toWorker(m: ToWorker) {
        if (!this.worker) {
            const worker = new Worker(WORKER_BOOTSTRAP, { eval: true, workerData: { storePath: this.store.path } })
            worker.on("message", (r: { seq: number; result: IngestResult }) => this.stored(r.seq, r.result))
            worker.on("error", e => this.log(`ingest worker: ${e.message}`))
            worker.on("exit", () => {
                if (this.worker !== worker || this.stopped) return
                if (++this.workerRestarts > MAX_WORKER_RESTARTS) {
                    this.log("the ingest worker keeps ending before it stores anything; messages are no longer kept")
                    return
                }
                // what it held and had not stored is lost, as in a crash; it starts again with what is stored
                this.log("the ingest worker ended; starting it again")
                this.worker = undefined
                for (const d of this.store.devices()) if (this.followed.has(d.id)) this.toWorker({ kind: "follow", id: d.id, root: d.root })
                this.storedSeq = this.seq
                this.releaseDrains()
            })
            this.worker = worker
        }
        this.worker.postMessage(m)
    }

    // --- what devices send

    /** Queues one message for the ingest worker; never throws. */
    ingest(topic: string, payload: Buffer) {
        const p = this.pending
        p.topics.push(topic)
        p.payloads.push(payload)
        p.at.push(this.clock())
        if (p.topics.length >= GROUP_COMMIT_MAX) this.flush()
        else this.flushTimer ??= setTimeout(() => this.flush(), GROUP_COMMIT_MS)
    }

    /** Sends what is queued to the ingest worker, as one group commit. */
    flush() {
        clearTimeout(this.flushTimer)
        this.flushTimer = undefined
        if (!this.pending.topics.length) return
        const { topics, payloads, at } = this.pending
        this.pending = { topics: [], payloads: [], at: [] }
        const detail = (["reading", "verified"] as const).some(e => this.listenerCount(e) > 0)
        this.toWorker({ kind: "batch", seq: ++this.seq, topics, payloads, at, detail })
    }

    /** What the worker stored: count it, answer commands, tell listeners. */
    private stored(seq: number, r: IngestResult) {
        this.storedSeq = Math.max(this.storedSeq, seq)
        this.workerRestarts = 0
        if (r.error) this.log(`store: ${r.error}; a batch of messages was not kept`)
        this.counts.verified += r.verified
        for (const { message: m, receivedAt } of r.messages) {
            this.emit("verified", m)
            if (m.kind === "readings")
                this.emit("reading", {
                    deviceId: m.deviceId,
                    counter: m.counter,
                    readings: m.readings
                        .filter(x => x.value !== undefined)
                        .map(x => ({
                            name: x.name.split(":").pop()!,
                            unit: x.unit ?? null,
                            value: x.value!,
                            timeMs: readingTimeMs(x.time, receivedAt),
                        })),
                })
            else if (m.kind === "state") {
                this.correlate(m, receivedAt)
                this.emit("state", { deviceId: m.deviceId, counter: m.counter, state: m.state, receivedAt })
            } else if (m.kind === "update") {
                this.rollouts.report(m.deviceId, m.report)
                this.emit("update", { deviceId: m.deviceId, counter: m.counter, report: m.report, receivedAt })
            } else this.emit("event", { deviceId: m.deviceId, events: m.events.map(e => ({ ...e, receivedAt })) })
        }
        if (r.seen.length) this.rollouts.seen(r.seen)
        for (const x of r.rejections) {
            this.counts.rejected.set(x.reason, (this.counts.rejected.get(x.reason) ?? 0) + 1)
            this.emit("rejected", { topic: x.topic, rejection: new Rejected(x.reason as RejectReason, x.detail, x.deviceId ?? undefined) })
            this.emit("rejection", x)
        }
        this.emit("stored", { verified: r.verified, rejected: r.rejected })
        this.releaseDrains()
    }

    private releaseDrains() {
        for (let i = this.drains.length - 1; i >= 0; i--)
            if (this.drains[i].seq <= this.storedSeq) {
                this.drains[i].resolve()
                this.drains.splice(i, 1)
            }
    }

    /** A state report answers the command it names, or else the oldest one still waiting that a state answers. */
    private correlate(m: Verified & { kind: "state" }, at: number) {
        const f = this.followed.get(m.deviceId)
        if (!f) return
        const named = m.state[ANSWER_FIELD]
        const i =
            typeof named === "number"
                ? f.pending.findIndex(p => p.counter === named)
                : f.pending.findIndex(p => ANSWERED_BY_STATE.has(p.cmd))
        if (i < 0) return
        const [answered] = f.pending.splice(i, 1)
        this.store.answerCommand(answered.id, m.state, at)
        // before this batch's devices count as heard from: a rollout must not offer again what the device took
        if (answered.cmd === "update") this.rollouts.taken(m.deviceId)
        const row = this.store.command(answered.id)
        if (row) this.emit("command", row)
    }

    /** Resolves once everything received so far is stored. */
    drain(): Promise<void> {
        this.flush()
        const seq = this.seq
        if (seq <= this.storedSeq) return Promise.resolve()
        return new Promise(resolve => this.drains.push({ seq, resolve }))
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
        if (reply.status !== 200)
            throw new ClaimError(reply.status, `claim refused (HTTP ${reply.status}): ${String(reply.body.error ?? "")}`)
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
        this.toWorker({ kind: "unfollow", id })
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
        const row: CommandRow = {
            id: rowId,
            deviceId: id,
            counter,
            command: command as never,
            sentAt: at,
            status: "sent",
            reply: null,
            answeredAt: null,
        }
        this.log(`sent ${command.cmd} to ${id} (counter ${counter})`)
        this.emit("command", row)
        return row
    }

    /** The `update` command naming a release, as a rollout offers it. */
    private async sendUpdate(id: string, release: Release) {
        await this.command(id, { cmd: "update", digest: release.digest, sequence: release.sequence })
    }

    /** Replaces a device's tags (rollouts may target a tag). */
    setTags(id: string, tags: string[]): boolean {
        if (!this.followed.has(id)) return false
        this.store.setTags(id, tags)
        this.emit("device", { deviceId: id, change: "tagged" })
        return true
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
                online: w?.lastSeen != null && now - w.lastSeen < this.onlineMs,
                lastSeen: w?.lastSeen ?? null,
                lastCounter: w && w.highest >= 0 ? w.highest : null,
                // the state report's names (src/control/commands.ts): the running image's digest (first bytes), its
                // sequence, the update's phase
                firmware: state.image ?? null,
                sequence: state.seq ?? null,
                update: state.phase ?? null,
                // the running image is no release's (deployed by hand, at the factory, or from older source): said, not guessed
                unknownImage: this.store.unknownImage(d.id) ?? null,
                // the latest step the device reported of the release its owner named
                lastUpdate: this.store.updateReport(d.id) ?? null,
                queued: state.queued ?? null,
                dropped: state.dropped ?? null,
                tags: this.store.tags(d.id),
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
            quantities: this.store.quantities(id),
            updates: this.store.updateReports(id),
        }
        this.store.setLastVisit(id, this.clock())
        return detail
    }

    /** Stops following, stores what is queued, and closes the broker session (the store stays open). */
    async stop() {
        this.rollouts.stop()
        clearTimeout(this.renewTimer)
        clearInterval(this.retentionTimer)
        await this.commands
        await this.client?.endAsync()
        this.client = undefined
        await this.drain()
        this.stopped = true
        await this.worker?.terminate()
        this.worker = undefined
    }
}
