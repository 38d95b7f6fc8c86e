/**
 * SCRAM exchanges between their two round trips. RFC 7804 §5 keeps server
 * state from the client-first to the client-final message, found again by the
 * `sid` the server hands out; until the final message (or `ttlMs`), each is
 * an entry here, opened by anyone who sends a client-first message.
 *
 * So the table is bounded twice: at most `perSource` pending exchanges per
 * source (./source.ts), and `total` overall, with `perSource` far below
 * `total`, so one source cannot fill it. A device finishes its exchange in
 * one round trip plus its own PBKDF2; `perSource` leaves room for a whole
 * house of devices behind one address logging in at once.
 */
import { randomBytes } from "node:crypto"

/** Bounds of the table. */
export interface ExchangeLimits {
    /** Pending exchanges one source may hold. */
    perSource: number
    /** Pending exchanges overall (memory bound). */
    total: number
    /** How long an exchange waits for its final message. */
    ttlMs: number
}

/** The default: 32 per source, 10,000 overall (313 sources to fill it), 30 s each. */
export const DEFAULT_EXCHANGE_LIMITS: ExchangeLimits = { perSource: 32, total: 10_000, ttlMs: 30_000 }

/** Why an exchange was not opened. */
export const enum ExchangeRefusal {
    /** The source holds `perSource` exchanges already. */
    SourceFull = "source-full",
    /** The table holds `total` exchanges. */
    Full = "full",
}

interface Entry<T> {
    value: T
    source: string
    expires: number
}

/** Pending exchanges by `sid`, counted per source. */
export class PendingExchanges<T> {
    private readonly entries = new Map<string, Entry<T>>()
    private readonly perSource = new Map<string, number>()

    constructor(private readonly limits: ExchangeLimits = DEFAULT_EXCHANGE_LIMITS) {}

    /** Opens an exchange for `source`: its `sid` (128 random bits, hex), or why not. */
    open(source: string, value: T, now: number): { sid: string } | { refused: ExchangeRefusal } {
        this.sweep(now)
        if ((this.perSource.get(source) ?? 0) >= this.limits.perSource) return { refused: ExchangeRefusal.SourceFull }
        if (this.entries.size >= this.limits.total) return { refused: ExchangeRefusal.Full }
        const sid = randomBytes(16).toString("hex")
        this.entries.set(sid, { value, source, expires: now + this.limits.ttlMs })
        this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1)
        return { sid }
    }

    /** Takes the exchange `sid` out of the table (it is used once); undefined if unknown or expired. */
    take(sid: string, now: number): T | undefined {
        const entry = this.entries.get(sid)
        if (!entry) return undefined
        this.remove(sid, entry)
        return entry.expires < now ? undefined : entry.value
    }

    private remove(sid: string, entry: Entry<T>) {
        this.entries.delete(sid)
        const left = (this.perSource.get(entry.source) ?? 1) - 1
        if (left > 0) this.perSource.set(entry.source, left)
        else this.perSource.delete(entry.source)
    }

    /** Drops expired exchanges; they are in insertion order, so it stops at the first that is still alive. */
    private sweep(now: number) {
        for (const [sid, entry] of this.entries) {
            if (entry.expires >= now) break
            this.remove(sid, entry)
        }
    }
}
