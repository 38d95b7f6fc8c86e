/**
 * Verifies and decrypts what devices publish, as their owner. Every message
 * on `things/<id>/up/<kind>` must be a COSE_Encrypt0 under that device's up
 * key, with kid = the id in the topic and the topic as external AAD; its
 * counter must not have been accepted before. Anything else is rejected with
 * the reason, never half-trusted.
 */
import { decode } from "cbor2"
import { channelKeys } from "./keys.ts"
import { CoseRejection, counterFromPartialIv, openEncrypt0, readHeaders } from "./cose.ts"
import type { Keystore } from "./keystore.ts"
import { decodeSenmlCbor, type SenmlReading } from "./senml.ts"

/** Why a message was rejected. */
export type RejectReason = "topic" | "unknown-device" | "malformed" | "forged-or-tampered" | "replayed" | "content"

/** A rejected message. */
export class Rejected extends Error {
    constructor(
        readonly reason: RejectReason,
        message: string
    ) {
        super(message)
        this.name = "Rejected"
    }
}

/** A verified message. */
export type Verified = { deviceId: string; counter: number } & (
    | { kind: "readings"; readings: SenmlReading[] }
    | { kind: "events"; events: { seq: number; boot: number; uptimeMs: number; kind: string; detail: string }[] }
    | { kind: "state"; state: Record<string, unknown> }
)

const UP_TOPIC = /^things\/([0-9a-f]{32})\/up\/(readings|events|state)$/
/** Counters this far below the highest may still arrive once (reordering); older ones are replays. */
const REPLAY_WINDOW = 64

/** The owner's verifier for uplink messages. */
export class UplinkVerifier {
    /** Counters accepted inside the window, per device. */
    private readonly seen = new Map<string, Set<number>>()

    constructor(private readonly keystore: Keystore) {}

    async verify(topic: string, payload: Buffer): Promise<Verified> {
        const m = UP_TOPIC.exec(topic)
        if (!m) throw new Rejected("topic", `not an uplink topic: ${topic.slice(0, 80)}`)
        const [, deviceId, kind] = m
        const owned = this.keystore.device(deviceId)
        if (!owned) throw new Rejected("unknown-device", `no key for device ${deviceId}`)
        let plaintext: Buffer
        let counter: number
        try {
            const headers = readHeaders(payload)
            if (headers.kid.toString("hex") !== deviceId) throw new Rejected("forged-or-tampered", "kid is not the device of the topic")
            if (!headers.partialIv) throw new Rejected("malformed", "uplink messages carry a Partial IV")
            counter = counterFromPartialIv(headers.partialIv)
            this.checkFresh(deviceId, owned.upHighest, counter)
            const keys = channelKeys(Buffer.from(owned.root, "hex"), deviceId, "up")
            plaintext = (await openEncrypt0(payload, { key: keys.key, contextIv: keys.contextIv, externalAad: Buffer.from(topic) }))
                .plaintext
        } catch (e) {
            if (e instanceof CoseRejection)
                throw new Rejected(e.reason === "authentication" ? "forged-or-tampered" : "malformed", e.message)
            throw e
        }
        // only an authentic message moves the window
        this.accept(deviceId, counter)
        return { deviceId, counter, ...parseContent(kind, plaintext) } as Verified
    }

    private checkFresh(deviceId: string, highest: number, counter: number) {
        if (counter > highest) return
        if (counter <= highest - REPLAY_WINDOW || this.seen.get(deviceId)?.has(counter) !== false)
            throw new Rejected("replayed", `counter ${counter} already seen (highest ${highest})`)
    }

    private accept(deviceId: string, counter: number) {
        const owned = this.keystore.device(deviceId)!
        let seen = this.seen.get(deviceId)
        if (!seen) this.seen.set(deviceId, (seen = new Set()))
        seen.add(counter)
        if (counter > owned.upHighest) {
            owned.upHighest = counter
            // persisted before the message is used: a restart must not reopen the window
            this.keystore.save()
        }
        for (const c of seen) if (c <= owned.upHighest - REPLAY_WINDOW) seen.delete(c)
    }
}

function parseContent(kind: string, plaintext: Buffer) {
    try {
        if (kind === "readings") return { kind, readings: decodeSenmlCbor(plaintext) }
        const v = decode(plaintext, { preferMap: true })
        if (kind === "events") {
            if (!Array.isArray(v)) throw new Error("events must be an array")
            return { kind, events: v.map(([seq, boot, uptimeMs, k, detail]) => ({ seq, boot, uptimeMs, kind: k, detail })) }
        }
        if (!(v instanceof Map)) throw new Error("state must be a map")
        return { kind, state: Object.fromEntries([...v].map(([k, x]) => [String(k), x instanceof Map ? Object.fromEntries(x) : x])) }
    } catch (e) {
        throw new Rejected("content", `authentic ${kind} message with unreadable content: ${(e as Error).message}`)
    }
}
