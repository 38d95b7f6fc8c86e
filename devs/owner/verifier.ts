/**
 * Verifies and decrypts what devices publish, as their owner. Every message
 * on `things/<id>/up/<kind>` must be a COSE_Encrypt0 under that device's up
 * key, with kid = the id in the topic and the topic as external AAD; its
 * counter must not have been accepted before. Anything else is a `Rejected`
 * with a reason, never half-trusted and never a crash: the bytes are read
 * once (./encrypt0.ts, ./cbor.ts) and every value is checked for its type
 * before it is used.
 *
 * Replays: a sliding window (RFC 4303 §3.4.3, as IPsec keeps one) of the 64
 * counters at and below the highest accepted; older ones are replays.
 *
 * `up/update` carries the device's report of one step of an update
 * (./update-report.ts), sealed like every uplink message, so neither the
 * broker nor the update service can make one up: the owner's rollouts count
 * only these.
 */
import { CborTagged, decodeCbor, type CborItem } from "./cbor.ts"
import { counterFromPartialIv, Encrypt0Error, openParsed, parseEncrypt0, type CipherKeys } from "./encrypt0.ts"
import { resolveSenml, type SenmlReading } from "./senml.ts"
import { updateReportOf, type UpdateReport } from "./update-report.ts"

/** Why a message was rejected. */
export enum RejectReason {
    /** Not `things/<32 hex>/up/(readings|events|state|update)`. */
    Topic = "topic",
    /** A device this owner does not hold keys for. */
    UnknownDevice = "unknown-device",
    /** Not a well-formed COSE_Encrypt0 as devices send it. */
    Malformed = "malformed",
    /** kid names another device than the topic. */
    WrongKid = "wrong-kid",
    /** The tag does not verify: forged, tampered, moved to another topic, or under another key. */
    Forged = "forged-or-tampered",
    /** A counter accepted before, or below the window. */
    Replayed = "replayed",
    /** Authentic, but its content is not what its topic promises. */
    Content = "content",
}

/** A rejected message. Its message is safe to log and show: it never holds a key or a plaintext. */
export class Rejected extends Error {
    constructor(
        readonly reason: RejectReason,
        message: string,
        /** The device the topic names, when it names one. */
        readonly deviceId?: string
    ) {
        super(message)
        this.name = "Rejected"
    }
}

/** One entry of a device's security event log, as it reports it. */
export interface DeviceEvent {
    seq: number
    boot: number
    uptimeMs: number
    kind: string
    detail: string
}

/** A JSON-safe value (a state report holds only these once checked). */
export type Json = number | string | boolean | null | Json[] | { [key: string]: Json }

/** A verified message. */
export type Verified = { deviceId: string; counter: number } & (
    | { kind: "readings"; readings: SenmlReading[] }
    | { kind: "events"; events: DeviceEvent[] }
    | { kind: "state"; state: Record<string, Json> }
    | { kind: "update"; report: UpdateReport }
)

const UP_TOPIC = /^things\/([0-9a-f]{32})\/up\/(readings|events|state|update)$/
const ANY_DEVICE_TOPIC = /^things\/([0-9a-f]{32})\//
/** How far below the highest accepted counter a message may still arrive once (reordering). */
export const REPLAY_WINDOW = 64
const WINDOW_MASK = (1n << BigInt(REPLAY_WINDOW)) - 1n

/** The counters accepted from one device: the highest, and which of the 64 at and below it. */
export class ReplayWindow {
    constructor(
        /** −1 before the first message. */
        public highest = -1,
        /** Bit i set: counter `highest − i` was accepted. */
        public seen = 0n
    ) {}

    /** Whether `counter` would be a replay. */
    isReplay(counter: number): boolean {
        if (counter > this.highest) return false
        const back = this.highest - counter
        return back >= REPLAY_WINDOW || ((this.seen >> BigInt(back)) & 1n) === 1n
    }

    /** Marks `counter` accepted (call only after `isReplay` said no and the message verified). */
    accept(counter: number) {
        if (counter > this.highest) {
            const shift = counter - this.highest
            this.seen = shift >= REPLAY_WINDOW ? 1n : ((this.seen << BigInt(shift)) | 1n) & WINDOW_MASK
            this.highest = counter
        } else this.seen |= 1n << BigInt(this.highest - counter)
    }

    /** The bitmap as 8 bytes, as the store keeps it. */
    seenBytes(): Buffer {
        const b = Buffer.alloc(8)
        b.writeBigUInt64BE(this.seen)
        return b
    }

    static fromStore(highest: number, seen: Buffer | null): ReplayWindow {
        return new ReplayWindow(highest, seen && seen.length === 8 ? seen.readBigUInt64BE() : 0n)
    }
}

/** What the verifier needs per device: its up keys and its window. */
export interface FollowedDevice {
    up: CipherKeys
    window: ReplayWindow
}

/** The owner's verifier for uplink messages; synchronous, so messages are checked strictly in arrival order. */
export class UplinkVerifier {
    /** `deviceOf` returns the keys and window of a followed device (keys derived once, when it was claimed or loaded). */
    constructor(private readonly deviceOf: (deviceId: string) => FollowedDevice | undefined) {}

    /** Verifies one message; only an authentic, fresh message with readable content moves the window. Throws `Rejected`. */
    verify(topic: string, payload: Buffer): Verified {
        const m = UP_TOPIC.exec(topic)
        if (!m) throw new Rejected(RejectReason.Topic, `not an uplink topic: ${printable(topic)}`, ANY_DEVICE_TOPIC.exec(topic)?.[1])
        const [, deviceId, kind] = m
        const device = this.deviceOf(deviceId)
        if (!device) throw new Rejected(RejectReason.UnknownDevice, `no key for device ${deviceId}`, deviceId)
        let plaintext: Buffer
        let counter: number
        try {
            const message = parseEncrypt0(payload)
            if (!message.kid.equals(Buffer.from(deviceId, "hex")))
                throw new Rejected(RejectReason.WrongKid, "kid is not the device of the topic", deviceId)
            if (!message.partialIv) throw new Rejected(RejectReason.Malformed, "uplink messages carry a Partial IV", deviceId)
            counter = counterFromPartialIv(message.partialIv)
            if (device.window.isReplay(counter))
                throw new Rejected(RejectReason.Replayed, `counter ${counter} already seen (highest ${device.window.highest})`, deviceId)
            plaintext = openParsed(message, device.up, Buffer.from(topic))
        } catch (e) {
            if (e instanceof Encrypt0Error)
                throw new Rejected(e.reason === "authentication" ? RejectReason.Forged : RejectReason.Malformed, e.message, deviceId)
            throw e
        }
        const content = parseContent(deviceId, kind, plaintext)
        device.window.accept(counter)
        return { deviceId, counter, ...content } as Verified
    }
}

/** A topic or text from the network, cut short and without control characters, for a log line. */
export function printable(text: string, max = 80): string {
    // eslint-disable-next-line no-control-regex
    return text.slice(0, max).replace(/[\x00-\x1f\x7f]/g, "?")
}

function parseContent(deviceId: string, kind: string, plaintext: Buffer) {
    try {
        const v = decodeCbor(plaintext, { maxDepth: 4, maxItems: 1024 })
        if (kind === "readings") return { kind, readings: resolveSenml(v) }
        if (kind === "events") {
            if (!Array.isArray(v)) throw new Error("events must be an array")
            return { kind, events: v.map(eventOf) }
        }
        if (kind === "update") return { kind, report: updateReportOf(v) }
        if (!(v instanceof Map)) throw new Error("state must be a map")
        return { kind, state: objectOf(v) }
    } catch (e) {
        throw new Rejected(RejectReason.Content, `authentic ${kind} message with unreadable content: ${(e as Error).message}`, deviceId)
    }
}

function eventOf(e: CborItem): DeviceEvent {
    if (!Array.isArray(e) || e.length !== 5) throw new Error("an event is [seq, boot, uptime, kind, detail]")
    const [seq, boot, uptimeMs, kind, detail] = e
    if (typeof seq !== "number" || typeof boot !== "number" || typeof uptimeMs !== "number") throw new Error("event numbers")
    if (typeof kind !== "string" || typeof detail !== "string") throw new Error("event kind and detail must be text")
    return { seq, boot, uptimeMs, kind, detail }
}

/** A CBOR map with text keys as a plain object of JSON-safe values (bytes as hex). */
function objectOf(m: Map<CborItem, CborItem>): Record<string, Json> {
    const out: Record<string, Json> = {}
    for (const [k, v] of m) {
        if (typeof k !== "string") throw new Error("state keys must be text")
        out[k] = jsonOf(v)
    }
    return out
}

function jsonOf(v: CborItem): Json {
    if (v === undefined || v === null) return null
    if (typeof v === "number") return Number.isFinite(v) ? v : null
    if (typeof v === "string" || typeof v === "boolean") return v
    if (Buffer.isBuffer(v)) return v.toString("hex")
    if (Array.isArray(v)) return v.map(jsonOf)
    if (v instanceof Map) return objectOf(v)
    if (v instanceof CborTagged) return jsonOf(v.value)
    throw new Error("unexpected value")
}
