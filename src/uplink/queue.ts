/**
 * The outbound queue: sealed messages waiting for the broker's PUBACK.
 *
 * Bounded twice: newest messages in RAM, and when RAM is full the oldest of
 * them spill to a ring of flash slots. When flash is full too, the oldest
 * message is dropped and the drop counted. A message leaves only when the
 * broker acknowledged it, so what was in flight when a connection died is
 * sent again (same bytes, same counter: the receiver's replay check drops a
 * copy that did arrive). Flash-held messages survive a reboot.
 *
 * A flash slot is a header key `<p><NN>` (CBOR [seq, topic, parts]) and up
 * to `MAX_PARTS` chunk keys `<p><NN><part>`; chunks are written first and the
 * header last, and the header is deleted first, so a power cut leaves either
 * a whole message or none.
 */
import { CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { deleteKey, readBytes, SettingPrefix, writeBytes } from "../storage/settings"

/** One message for the broker. */
export interface QueuedMessage {
    /** Topic suffix under `things/<id>/up/`. */
    topic: string
    payload: Buffer
}

/** Options of a queue. */
export interface QueueOptions {
    /** Messages held in RAM. Default 16. */
    ramCapacity?: number
    /** Flash slots. Default 24. */
    flashSlots?: number
    /** Two-character key prefix of the flash slots. Default `SettingPrefix.OutboundQueue`. */
    prefix?: string
}

/** Bytes per flash chunk (the settings store's limit, with room for its own framing). */
const CHUNK_BYTES = 150
/** Chunks per message: the largest message the queue takes is CHUNK_BYTES * MAX_PARTS. */
const MAX_PARTS = 4
/** Largest message the queue accepts. */
export const MAX_QUEUED_BYTES = CHUNK_BYTES * MAX_PARTS

function slotKey(prefix: string, slot: number): string {
    return prefix + (slot < 10 ? "0" : "") + slot
}

/** A bounded FIFO of messages in RAM, spilling to flash. */
export class OutboundQueue {
    /** Messages dropped because both RAM and flash were full, since boot. */
    dropped = 0
    /** Flash slots found unreadable (and discarded). */
    corrupt = 0
    private ram: QueuedMessage[] = []
    /** Sequence numbers of the messages in flash, oldest first; slot = seq % flashSlots. */
    private flash: number[] = []
    private nextSeq = 0
    private readonly ramCapacity: number
    private readonly flashSlots: number
    private readonly prefix: string

    private constructor(options: QueueOptions) {
        this.ramCapacity = options.ramCapacity ?? 16
        this.flashSlots = options.flashSlots ?? 24
        this.prefix = options.prefix || SettingPrefix.OutboundQueue
    }

    /** Opens the queue with whatever a previous boot left in flash. */
    static async open(options: QueueOptions): Promise<OutboundQueue> {
        const q = new OutboundQueue(options)
        for (let slot = 0; slot < q.flashSlots; ++slot) {
            const header = await q.readHeader(slot)
            if (!header) continue
            q.flash.push(header.seq)
            if (header.seq + 1 > q.nextSeq) q.nextSeq = header.seq + 1
        }
        q.flash.sort((a, b) => a - b)
        return q
    }

    /** Messages waiting. */
    size(): number {
        return this.flash.length + this.ram.length
    }

    /**
     * Adds a message at the tail; spills or drops the oldest when full. A
     * `durable` message goes to flash at once, to outlive a restart of the
     * program (an update's report, made just before the update replaces it):
     * it leaves after what flash holds and before what RAM holds.
     */
    async push(message: QueuedMessage, durable?: boolean) {
        if (message.payload.length > MAX_QUEUED_BYTES)
            throw new RangeError(`message of ${message.payload.length} bytes exceeds ${MAX_QUEUED_BYTES}`)
        let spilled = message
        if (!durable) {
            this.ram.push(message)
            if (this.ram.length <= this.ramCapacity) return
            spilled = this.ram.shift()
        }
        if (this.flash.length >= this.flashSlots) {
            await this.deleteSlot(this.flash.shift())
            this.dropped++
        }
        await this.writeSlot(this.nextSeq++, spilled)
    }

    /** The oldest message, without removing it; `undefined` when empty. */
    async peek(): Promise<QueuedMessage> {
        while (this.flash.length > 0) {
            const m = await this.readSlot(this.flash[0])
            if (m) return m
            await this.deleteSlot(this.flash.shift())
        }
        return this.ram.length > 0 ? this.ram[0] : undefined
    }

    /** Removes the oldest message (after the broker acknowledged it). */
    async remove() {
        if (this.flash.length > 0) await this.deleteSlot(this.flash.shift())
        else this.ram.shift()
    }

    private async writeSlot(seq: number, m: QueuedMessage) {
        const key = slotKey(this.prefix, seq % this.flashSlots)
        const parts = Math.ceil(m.payload.length / CHUNK_BYTES)
        for (let i = 0; i < parts; ++i)
            await writeBytes(key + i, m.payload.slice(i * CHUNK_BYTES, Math.min(m.payload.length, (i + 1) * CHUNK_BYTES)))
        await writeBytes(key, encodeCbor([seq, m.topic, parts, m.payload.length]))
        this.flash.push(seq)
    }

    private async deleteSlot(seq: number) {
        const key = slotKey(this.prefix, seq % this.flashSlots)
        await deleteKey(key)
        for (let i = 0; i < MAX_PARTS; ++i) await deleteKey(key + i)
    }

    private async readHeader(slot: number): Promise<{ seq: number; topic: string; parts: number; length: number }> {
        const b = await readBytes(slotKey(this.prefix, slot))
        if (!b) return undefined
        let v: CborValue
        try {
            v = decodeCbor(b, { maxBytes: 64, maxDepth: 1, maxItems: 5 })
        } catch (e) {
            v = undefined
        }
        if (!Array.isArray(v) || v.length !== 4) return await this.discard(slot)
        const [seq, topic, parts, length] = v
        if (typeof seq !== "number" || seq % this.flashSlots !== slot) return await this.discard(slot)
        if (typeof topic !== "string" || typeof parts !== "number" || typeof length !== "number") return await this.discard(slot)
        if (parts < 1 || parts > MAX_PARTS || length > parts * CHUNK_BYTES) return await this.discard(slot)
        return { seq, topic, parts, length }
    }

    private async discard(slot: number): Promise<undefined> {
        this.corrupt++
        await deleteKey(slotKey(this.prefix, slot))
        return undefined
    }

    private async readSlot(seq: number): Promise<QueuedMessage> {
        const header = await this.readHeader(seq % this.flashSlots)
        if (!header || header.seq !== seq) return undefined
        const key = slotKey(this.prefix, seq % this.flashSlots)
        let payload = Buffer.alloc(0)
        for (let i = 0; i < header.parts; ++i) {
            const chunk = await readBytes(key + i)
            if (chunk) payload = payload.concat(chunk)
        }
        if (payload.length !== header.length) {
            this.corrupt++
            return undefined
        }
        return { topic: header.topic, payload }
    }
}
