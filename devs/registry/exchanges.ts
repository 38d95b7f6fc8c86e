/**
 * SCRAM exchanges between their two round trips. RFC 7804 §5 keeps server
 * state from the client-first to the client-final message, found again by the
 * `sid` the server hands out; until the final message (or `ttlMs`), each is
 * an entry here, opened by anyone who sends a client-first message.
 *
 * The table is the store's (./store.ts), so a client-first message may reach
 * one registry and its client-final another behind the same name: each
 * exchange is taken out once, atomically, so a final message is checked at
 * most once (RFC 5802 §9: the server nonce is never accepted twice). The
 * alternative, a server-first message carrying its own state sealed under a
 * key all registries share, needs no row but cannot refuse a replayed final
 * message before it expires, nor bound how many a source holds.
 *
 * So the table is bounded twice: at most `perSource` pending exchanges per
 * source (./source.ts), and `total` overall, with `perSource` far below
 * `total`, so one source cannot fill it. A device finishes its exchange in
 * one round trip plus its own PBKDF2; `perSource` leaves room for a whole
 * house of devices behind one address logging in at once.
 */
import { randomBytes } from "node:crypto"
import type { ScramServerExchange } from "./scram.ts"
import type { RegistryStore } from "./store.ts"

/** Bounds of the table. */
export interface ExchangeLimits {
    /** Pending exchanges one source may hold. */
    perSource: number
    /** Pending exchanges overall (rows every registry on the store shares). */
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

/** Who an exchange logs in: a device or an owner account (./owners.ts); a sid opened for one is unknown to the other. */
export type ExchangeEndpoint = "device" | "owner"

/** Pending exchanges by `sid`, counted per source, kept in the store that every registry shares. */
export class PendingExchanges {
    constructor(
        private readonly store: RegistryStore,
        private readonly limits: ExchangeLimits = DEFAULT_EXCHANGE_LIMITS
    ) {}

    /** Opens an exchange for `source`: its `sid` (128 random bits, hex), or why not. */
    async open(
        endpoint: ExchangeEndpoint,
        source: string,
        exchange: ScramServerExchange,
        now: number
    ): Promise<{ sid: string } | { refused: ExchangeRefusal }> {
        const sid = randomBytes(16).toString("hex")
        const state = JSON.stringify({ endpoint, ...exchange, verifier: encodeVerifier(exchange.verifier) })
        const refused = await this.store.openExchange({ sid, source, state, expiresAt: now + this.limits.ttlMs }, this.limits, now)
        return refused ? { refused: refused as ExchangeRefusal } : { sid }
    }

    /** Takes the exchange `sid` out of the table (it is used once); undefined if unknown, expired, or opened at another endpoint. */
    async take(endpoint: ExchangeEndpoint, sid: string, now: number): Promise<ScramServerExchange | undefined> {
        // a sid is only ever hex we made; anything else is not looked up
        if (!/^[0-9a-f]{32}$/.test(sid)) return undefined
        const state = await this.store.takeExchange(sid, now)
        if (state === undefined) return undefined
        const { endpoint: opened, username, nonce, authPrefix, verifier } = JSON.parse(state)
        if (opened !== endpoint) return undefined
        return { username, nonce, authPrefix, verifier: decodeVerifier(verifier) }
    }
}

function encodeVerifier(v: ScramServerExchange["verifier"]) {
    return {
        salt: v.salt.toString("base64"),
        iterations: v.iterations,
        storedKey: v.storedKey.toString("base64"),
        serverKey: v.serverKey.toString("base64"),
    }
}

function decodeVerifier(v: ReturnType<typeof encodeVerifier>): ScramServerExchange["verifier"] {
    return {
        salt: Buffer.from(v.salt, "base64"),
        iterations: v.iterations,
        storedKey: Buffer.from(v.storedKey, "base64"),
        serverKey: Buffer.from(v.serverKey, "base64"),
    }
}
