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
 * A flash slot is a header key `<p><NN>` (CBOR [seq, topic, parts, length])
 * and up to `MAX_PARTS` chunk keys `<p><NN><part>`; chunks are written first
 * and the header last, and the header is deleted first, so a power cut
 * leaves either a whole message or none. Message `seq` lives in slot
 * `seq % flashSlots`, so before a message spills, every flash message at
 * least `flashSlots` older is dropped: no two live messages share a slot.
 *
 * Fibers share the queue (readings from the pipeline, command replies and
 * acknowledgements from the uplink), and flash operations on one key from
 * two fibers confirm each other's writes wrongly (`storage/serial.ts`), so
 * every operation is one turn. A message is acknowledged by its `seq`: one
 * dropped while it was in flight is not mistaken for the next. Flash that
 * fails is a counted drop and a `storage-failed` event, never an exception.
 */
import { CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { EventLog } from "../events/log"
import { SerialAccess } from "../storage/serial"
import { deleteKey, readBytes, SettingPrefix, StorageError, writeBytes } from "../storage/settings"

/** One message for the broker. */
export interface QueuedMessage {
    /** Topic suffix under `things/<id>/up/`. */
    topic: string
    payload: Buffer
}

/** A message in the queue: `seq` names it for `remove`. */
export interface QueuedEntry extends QueuedMessage {
    readonly seq: number
}

/** Options of a queue. */
export interface QueueOptions {
    /** Messages held in RAM. Default 16. */
    ramCapacity?: number
    /** Flash slots. Default 24. */
    flashSlots?: number
    /** Two-character key prefix of the flash slots. Default `SettingPrefix.OutboundQueue`. */
    prefix?: string
    /** Where flash failures are recorded (none in some tests). */
    events?: EventLog
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

/** A message in flash: its sequence number and how many chunks it has. */
interface FlashEntry {
    seq: number
    parts: number
}

/** A bounded FIFO of messages in RAM, spilling to flash. */
export class OutboundQueue {
    /** Messages dropped since boot: both RAM and flash were full, or flash failed. */
    dropped = 0
    /** Flash slots found unreadable (and discarded). */
    corrupt = 0
    /** Flash operations that failed (each recorded as a `storage-failed` event). */
    storageFailures = 0
    private ram: QueuedEntry[] = []
    /** The messages in flash, oldest first. */
    private flash: FlashEntry[] = []
    private nextSeq = 0
    /** The message `peek` last handed out (on its way to the broker), and whether a spill dropped it meanwhile. */
    private inFlight = -1
    private inFlightDropped = false
    private readonly ramCapacity: number
    private readonly flashSlots: number
    private readonly prefix: string
    private readonly turns = new SerialAccess()

    private constructor(private readonly options: QueueOptions) {
        this.ramCapacity = options.ramCapacity ?? 16
        this.flashSlots = options.flashSlots ?? 24
        this.prefix = options.prefix || SettingPrefix.OutboundQueue
    }

    /** Opens the queue with whatever a previous boot left in flash. */
    static async open(options: QueueOptions): Promise<OutboundQueue> {
        const q = new OutboundQueue(options)
        for (let slot = 0; slot < q.flashSlots; ++slot) {
            let header: { seq: number; parts: number }
            try {
                header = await q.readHeader(slot)
            } catch (e: any) {
                await q.failed(e, `slot ${slot} unread`)
            }
            if (!header) continue
            q.flash.push({ seq: header.seq, parts: header.parts })
            if (header.seq + 1 > q.nextSeq) q.nextSeq = header.seq + 1
        }
        q.flash.sort((a, b) => a.seq - b.seq)
        return q
    }

    /** Messages waiting. */
    size(): number {
        return this.flash.length + this.ram.length
    }

    /**
     * Adds a message at the tail; spills or drops the oldest when full. A
     * `durable` message goes to flash at once, to outlive a restart of the
     * program (an update's report, made just before the update replaces it),
     * and the messages RAM holds before it with it.
     */
    async push(message: QueuedMessage, durable?: boolean) {
        if (message.payload.length > MAX_QUEUED_BYTES)
            throw new RangeError(`message of ${message.payload.length} bytes exceeds ${MAX_QUEUED_BYTES}`)
        const self = this
        await this.turns.run(async () => {
            self.ram.push({ seq: self.nextSeq++, topic: message.topic, payload: message.payload })
            // a durable message takes what RAM holds before it to flash too: flash stays in seq order
            while (self.ram.length > (durable ? 0 : self.ramCapacity)) await self.spill(self.ram.shift())
        })
    }

    /** The oldest message, without removing it; `undefined` when empty (or when flash does not answer now). */
    async peek(): Promise<QueuedEntry> {
        const self = this
        return await this.turns.run(async () => {
            // the message handed out before was dropped and never acknowledged: now it is lost
            if (self.inFlightDropped) self.dropped++
            self.inFlightDropped = false
            const head = await self.head()
            self.inFlight = head ? head.seq : -1
            return head
        })
    }

    /** Removes `entry` (after the broker acknowledged it) if it is still the oldest; a drop may have taken it meanwhile. */
    async remove(entry: QueuedEntry) {
        const self = this
        await this.turns.run(async () => {
            if (entry.seq === self.inFlight) {
                // dropped or not, it reached the broker
                self.inFlight = -1
                self.inFlightDropped = false
            }
            if (self.flash.length > 0) {
                if (self.flash[0].seq === entry.seq) await self.deleteSlot(self.flash.shift(), true)
            } else if (self.ram.length > 0 && self.ram[0].seq === entry.seq) self.ram.shift()
        })
    }

    /** The oldest readable message; unreadable flash slots on the way are discarded. */
    private async head(): Promise<QueuedEntry> {
        while (this.flash.length > 0) {
            const head = this.flash[0]
            let m: QueuedMessage
            try {
                m = await this.readSlot(head.seq)
            } catch (e: any) {
                await this.failed(e, `slot of #${head.seq} unread`)
                return undefined
            }
            if (m) return { seq: head.seq, topic: m.topic, payload: m.payload }
            this.flash.shift()
            await this.deleteSlot(head, true)
        }
        return this.ram.length > 0 ? this.ram[0] : undefined
    }

    /** Writes `m` to its flash slot, dropping first what would share it; a failed write drops `m`. */
    private async spill(m: QueuedEntry) {
        while (this.flash.length > 0 && m.seq - this.flash[0].seq >= this.flashSlots) {
            const old = this.flash.shift()
            // counted once it is known to be lost: the one on its way to the broker may still be acknowledged
            if (old.seq === this.inFlight) this.inFlightDropped = true
            else this.dropped++
            // its slot is about to be rewritten: only its header goes first, the chunks are overwritten
            await this.deleteSlot(old, false)
        }
        const key = slotKey(this.prefix, m.seq % this.flashSlots)
        const parts = Math.ceil(m.payload.length / CHUNK_BYTES)
        try {
            for (let i = 0; i < parts; ++i)
                await writeBytes(key + i, m.payload.slice(i * CHUNK_BYTES, Math.min(m.payload.length, (i + 1) * CHUNK_BYTES)))
            await writeBytes(key, encodeCbor([m.seq, m.topic, parts, m.payload.length]))
        } catch (e: any) {
            this.dropped++
            await this.failed(e, `#${m.seq} dropped`)
            return
        }
        this.flash.push({ seq: m.seq, parts })
    }

    /** Deletes a slot's header, and with `chunks` its chunks too; a failure is recorded, the slot given up. */
    private async deleteSlot(entry: FlashEntry, chunks: boolean) {
        const key = slotKey(this.prefix, entry.seq % this.flashSlots)
        try {
            await deleteKey(key)
            if (chunks) for (let i = 0; i < entry.parts; ++i) await deleteKey(key + i)
        } catch (e: any) {
            // a header left behind is sent again after a reboot, and the owner drops the copy
            await this.failed(e, `slot of #${entry.seq} not deleted`)
        }
    }

    /** Counts a flash failure and records it; anything but a `StorageError` is a bug and passes on. */
    private async failed(e: any, what: string) {
        if (!(e instanceof StorageError)) throw e
        this.storageFailures++
        console.log(`queue: ${what}: ${e.message}`)
        if (this.options.events) await this.options.events.record("storage-failed", `queue ${what}: ${e.message}`)
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
