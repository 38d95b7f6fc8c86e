/**
 * The message counter behind every Partial IV. A nonce must never repeat
 * under one key, across reboots and power cuts included, so the counter is
 * reserved from flash in blocks: before the first value of a block is used,
 * the end of the block is written. After a power cut the device resumes at
 * the stored end, skipping what was unused, and never goes back.
 */
import { decodeCbor, encodeCbor } from "../codec/cbor"
import { readBytes, writeBytes } from "../storage/settings"

/** Options of a counter. */
export interface CounterOptions {
    /** Settings key of the reservation. */
    key: string
    /** Values reserved per flash write. Default 64. */
    block?: number
}

/** Raised when the stored reservation cannot be read: continuing could reuse a nonce. */
export class CounterError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "CounterError"
    }
}

/** A persisted, strictly increasing counter. */
export class MessageCounter {
    private nextValue = 0
    private reservedUntil = 0
    private readonly block: number

    private constructor(private readonly options: CounterOptions) {
        this.block = options.block ?? 64
    }

    /** Opens the counter where the last reservation ended. */
    static async open(options: CounterOptions): Promise<MessageCounter> {
        const c = new MessageCounter(options)
        const stored = await readBytes(options.key)
        if (stored) {
            let v: any
            try {
                v = decodeCbor(stored, { maxBytes: 16, maxDepth: 0, maxItems: 1 })
            } catch (e) {
                v = undefined
            }
            if (typeof v !== "number" || v < 0 || v !== Math.floor(v)) throw new CounterError(`counter ${options.key} unreadable`)
            c.nextValue = v
            c.reservedUntil = v
        }
        return c
    }

    /** The next value; reserves a new block in flash first when the current one is used up. */
    async next(): Promise<number> {
        if (this.nextValue >= this.reservedUntil) {
            const until = this.nextValue + this.block
            await writeBytes(this.options.key, encodeCbor(until))
            this.reservedUntil = until
        }
        return this.nextValue++
    }
}
