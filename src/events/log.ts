/**
 * The security event log: a bounded ring of structured events in flash that
 * survives reboots (seed: "log an event whenever this limit is reached").
 *
 * Each event is one settings key, written in one step, so a power cut loses
 * at most the event being written. On open the ring is rebuilt from the
 * sequence numbers in the slots; when it is full the oldest slot is reused
 * and the drop counted. Details never hold secrets: callers pass what
 * happened, not the credentials involved.
 */
import * as ds from "@devicescript/core"
import { CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { deleteKey, readBytes, SettingKey, SettingPrefix, StorageError, writeBytes } from "../storage/settings"

/** What happened. */
export type SecurityEventKind =
    | "identity-created"
    | "identity-corrupt"
    | "factory-reset"
    | "enrolled"
    | "enroll-refused"
    | "auth-failure"
    | "downgrade"
    | "rate-limited"
    | "tls-refused"
    | "protocol-error"
    | "sensor-fault"
    | "storage-corrupt"
    | "storage-failed"
    | "queue-overflow"
    | "downlink-refused"
    | "command"
    | "update-refused"
    | "update-approved"
    | "update-confirmed"
    | "update-unhealthy"
    | "update-rolled-back"
    | "update-abandoned"
    | "image-unknown"

/** One logged event. */
export interface SecurityEvent {
    /** Position in the log since it was created; never reused. */
    seq: number
    /** Boot number (from 0) in which it happened. */
    boot: number
    /** Milliseconds since that boot. */
    uptimeMs: number
    kind: SecurityEventKind
    /** What happened, for people; at most `MAX_DETAIL_BYTES`, never a secret. */
    detail: string
}

/** Options of the log. */
export interface EventLogOptions {
    /** Slots in the ring. Default 32. */
    capacity?: number
    /** Key prefix of the slots (2 characters); keys are prefix + 2 digits. Default `SettingPrefix.EventLog`. */
    prefix?: string
    /** Boot number stamped on new events. */
    boot: number
}

/** Longest detail kept, in bytes of UTF-8. */
export const MAX_DETAIL_BYTES = 96

function slotKey(prefix: string, i: number): string {
    return prefix + (i < 10 ? "0" : "") + i
}

function truncateUtf8(text: string, maxBytes: number): string {
    let s = text
    while (Buffer.from(s).length > maxBytes) s = s.slice(0, s.length - 1)
    return s
}

function decodeEvent(b: Buffer): SecurityEvent {
    try {
        const v = decodeCbor(b, { maxBytes: 200, maxDepth: 2, maxItems: 8 }) as CborValue[]
        if (!Array.isArray(v) || v.length !== 5) return undefined
        const [seq, boot, uptimeMs, kind, detail] = v
        if (typeof seq !== "number" || typeof boot !== "number" || typeof uptimeMs !== "number") return undefined
        if (typeof kind !== "string" || typeof detail !== "string") return undefined
        return { seq, boot, uptimeMs, kind: kind as SecurityEventKind, detail }
    } catch (e) {
        return undefined
    }
}

/** The ring of security events in flash. */
export class EventLog {
    private readonly capacity: number
    private readonly prefix: string
    private nextSeq = 0
    /** Slots that held something undecodable when the log was opened. */
    corruptSlots = 0
    /** Events the store did not take, since boot. */
    lost = 0

    private constructor(private readonly options: EventLogOptions) {
        this.capacity = options.capacity ?? 32
        this.prefix = options.prefix || SettingPrefix.EventLog
    }

    /** Opens the log, finding where the ring stands from the slots in flash. */
    static async open(options: EventLogOptions): Promise<EventLog> {
        const log = new EventLog(options)
        for (let i = 0; i < log.capacity; ++i) {
            const b = await readBytes(slotKey(log.prefix, i))
            if (!b) continue
            const e = decodeEvent(b)
            // a slot must sit where its sequence number says; anything else was not written by us
            if (!e || e.seq % log.capacity !== i) {
                log.corruptSlots++
                continue
            }
            if (e.seq + 1 > log.nextSeq) log.nextSeq = e.seq + 1
        }
        return log
    }

    /** Events overwritten because the ring was full, since the log was created. */
    dropped(): number {
        return Math.max(0, this.nextSeq - this.capacity)
    }

    /** Events recorded since the log was created. */
    total(): number {
        return this.nextSeq
    }

    /**
     * Appends an event, overwriting the oldest when full. Its sequence number is taken before the write, so
     * fibers recording at once write different slots. A write the store does not take loses the event (counted
     * in `lost` and printed), never the caller: there is nowhere left to record that.
     */
    async record(kind: SecurityEventKind, detail: string): Promise<SecurityEvent> {
        const event: SecurityEvent = {
            seq: this.nextSeq++,
            boot: this.options.boot,
            uptimeMs: Math.round(ds.millis()),
            kind,
            detail: truncateUtf8(detail, MAX_DETAIL_BYTES),
        }
        try {
            await writeBytes(
                slotKey(this.prefix, event.seq % this.capacity),
                encodeCbor([event.seq, event.boot, event.uptimeMs, event.kind, event.detail])
            )
        } catch (e: any) {
            if (!(e instanceof StorageError)) throw e
            this.lost++
            console.log(`security event #${event.seq} ${event.kind} lost (${e.message}): ${event.detail}`)
            return event
        }
        console.log(`security event #${event.seq} ${event.kind}: ${event.detail}`)
        return event
    }

    /** The events still in the ring, oldest first. */
    async list(): Promise<SecurityEvent[]> {
        const out: SecurityEvent[] = []
        const first = Math.max(0, this.nextSeq - this.capacity)
        for (let seq = first; seq < this.nextSeq; ++seq) {
            const b = await readBytes(slotKey(this.prefix, seq % this.capacity))
            const e = b ? decodeEvent(b) : undefined
            if (e && e.seq === seq) out.push(e)
        }
        return out
    }

    /** Empties the ring and restarts the sequence (factory reset). */
    async clear() {
        for (let i = 0; i < this.capacity; ++i) await deleteKey(slotKey(this.prefix, i))
        this.nextSeq = 0
        this.corruptSlots = 0
    }
}

/**
 * Counts this boot and returns its number (0 on the first boot ever).
 * An unreadable counter restarts from 0 rather than stopping the device.
 */
export async function countBoot(): Promise<number> {
    const b = await readBytes(SettingKey.Boots)
    let boot = 0
    if (b) {
        try {
            const v = decodeCbor(b, { maxBytes: 16, maxDepth: 0, maxItems: 1 })
            if (typeof v === "number" && v >= 0) boot = v + 1
        } catch (e) {
            boot = 0
        }
    }
    await writeBytes(SettingKey.Boots, encodeCbor(boot))
    return boot
}
