/**
 * Owner accounts at the registry. An owner is a name and a SCRAM-SHA-256
 * verifier (RFC 5802 §3), registered once: a second registration of a taken
 * name is refused, so nobody holds another's name by claiming first. The
 * owner service logs in with the same RFC 7804 exchange as devices, under
 * the same failure limits and events, on its own endpoint (owner names and
 * device ids are separate spaces). The final 200 returns:
 * - an owner session token (256 random bits; the registry keeps its SHA-256),
 *   sent as `Authorization: Bearer` on claims, which it makes on the account's behalf;
 * - the owner's broker login: a random password that expires, bound to the
 *   account and to one MQTT client id, allowed to read its devices' up topics
 *   and write their down topics, and nothing else.
 *
 * Endpoints (JSON; binary fields base64):
 * - `POST /v1/owners` `{ name, scram: {salt, iterations, storedKey, serverKey}, legacy?: {password} }`: 201, or
 *   409 "name taken". A name that holds claims made before owner accounts existed (by name alone) is taken
 *   too, unless `legacy.password` is the owner broker login those claims handed out: then the account adopts them.
 * - `GET /v1/owners/session`: the RFC 7804 exchange with `Authorization: SCRAM-SHA-256 …`, username = the name.
 */
import { createHash, createHmac, randomBytes } from "node:crypto"
import { ownerUsername, type BrokerAccess } from "./broker-access.ts"
import { parseAuthorization } from "./http-auth.ts"
import {
    makeVerifier,
    parseClientFirst,
    SCRAM_MAX_ITERATIONS,
    SCRAM_MECHANISM,
    SCRAM_MIN_ITERATIONS,
    ScramProtocolError,
    serverFinal,
    serverFirst,
    type ScramServerExchange,
    type ScramVerifier,
} from "./scram.ts"
import type { OwnerRecord, RegistryStore } from "./store.ts"

/** What an owner name may be: printable, no spaces, no separators of MQTT topics or SCRAM. */
export const OWNER_NAME = /^[A-Za-z0-9._@-]{1,64}$/

const SESSION_TTL_MS = 3_600_000
const EXCHANGE_TTL_MS = 30_000
const MAX_PENDING_EXCHANGES = 10_000
const MAX_BODY_BYTES = 4096

/** A reply of the registry. */
export interface RegistryReply {
    status: number
    headers: Record<string, string>
    body: Record<string, unknown>
}

/** What the owner accounts need of the registry around them: its store, clock, limits and event log. */
export interface OwnerAccountsContext {
    store: RegistryStore
    clock: () => number
    broker?: BrokerAccess
    brokerTokenTtlMs: number
    realm: string
    event(kind: string, source: string, identity: string, detail: string): void
    /** Refuses (429) while any key is locked out; the error is thrown as the registry's own. */
    guard(keys: string[]): void
    failed(keys: string[], source: string, identity: string, what: string): void
    succeed(keys: string[]): void
}

class OwnerHttpError extends Error {
    constructor(
        readonly status: number,
        message: string,
        readonly headers: Record<string, string> = {}
    ) {
        super(message)
    }
}

function b64(field: unknown, name: string, min: number, max: number): Buffer {
    if (typeof field !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(field) || field.length % 4 !== 0)
        throw new OwnerHttpError(400, `${name} must be base64`)
    const b = Buffer.from(field, "base64")
    if (b.length < min || b.length > max) throw new OwnerHttpError(400, `${name} must be ${min}..${max} bytes`)
    return b
}

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest()

/** Owner registration, login and sessions. */
export class OwnerAccounts {
    private readonly exchanges = new Map<string, { exchange: ScramServerExchange; expires: number }>()
    private readonly decoyKey = randomBytes(32)

    constructor(private readonly ctx: OwnerAccountsContext) {}

    /**
     * Answers the owner endpoints; undefined for any other path. Errors the
     * registry raises (its 429) pass through to its own handler.
     */
    async handle(method: string, path: string, headers: Record<string, string | undefined>, body: Buffer, source: string) {
        try {
            if (method === "POST" && path === "/v1/owners") return await this.register(body, source)
            if (method === "GET" && path === "/v1/owners/session") return await this.session(headers["authorization"], source)
            return undefined
        } catch (e) {
            if (e instanceof OwnerHttpError) return { status: e.status, headers: e.headers, body: { error: e.message } }
            if (e instanceof ScramProtocolError) {
                this.ctx.event("auth-failure", source, "?", `owner login protocol error: ${e.message}`)
                return { status: 400, headers: {}, body: { error: e.message } }
            }
            throw e
        }
    }

    /** The owner a bearer token belongs to, or undefined (no token, unknown, expired). */
    authenticate(authorization: string | undefined): string | undefined {
        const m = /^Bearer ([A-Za-z0-9_-]{43})$/.exec(authorization ?? "")
        return m ? this.ctx.store.ownerSession(sha256(m[1]), this.ctx.clock()) : undefined
    }

    private json(body: Buffer): Record<string, unknown> {
        if (body.length > MAX_BODY_BYTES) throw new OwnerHttpError(413, "body too large")
        try {
            const v = JSON.parse(body.toString("utf8"))
            if (v && typeof v === "object" && !Array.isArray(v)) return v
        } catch {
            // fall through
        }
        throw new OwnerHttpError(400, "body must be a JSON object")
    }

    private async register(body: Buffer, source: string): Promise<RegistryReply> {
        const keys = [`owner-register-ip:${source}`]
        this.ctx.guard(keys)
        const req = this.json(body)
        const { name } = req
        if (typeof name !== "string" || !OWNER_NAME.test(name)) throw new OwnerHttpError(400, "name must be 1..64 of A-Z a-z 0-9 . _ @ -")
        const scram = (req.scram ?? {}) as Record<string, unknown>
        const iterations = scram.iterations
        if (!Number.isInteger(iterations) || (iterations as number) < SCRAM_MIN_ITERATIONS || (iterations as number) > SCRAM_MAX_ITERATIONS)
            throw new OwnerHttpError(400, `scram.iterations must be an integer ${SCRAM_MIN_ITERATIONS}..${SCRAM_MAX_ITERATIONS}`)
        const owner: OwnerRecord = {
            name,
            scramSalt: b64(scram.salt, "scram.salt", 16, 64),
            scramIterations: iterations as number,
            storedKey: b64(scram.storedKey, "scram.storedKey", 32, 32),
            serverKey: b64(scram.serverKey, "scram.serverKey", 32, 32),
            createdAt: this.ctx.clock(),
        }
        // a name that already holds claims (made before accounts existed) is taken too, unless the claims' login proves them
        const legacy = this.ctx.store.devicesOf(name).length > 0
        const proof = ((req.legacy ?? {}) as Record<string, unknown>).password
        const proven =
            legacy &&
            typeof proof === "string" &&
            proof.length <= 128 &&
            this.ctx.broker !== undefined &&
            this.ctx.store.getOwner(name) === undefined
                ? await this.ctx.broker.checkOwnerLogin(name, proof)
                : false
        if ((legacy && !proven) || !this.ctx.store.insertOwner(owner)) {
            this.ctx.event("owner-register-refused", source, name, "registration of a name already taken")
            this.ctx.failed(keys, source, name, "owner registration")
            throw new OwnerHttpError(409, "name taken")
        }
        this.ctx.event("owner-registered", source, name, proven ? "owner account adopting its earlier claims" : "new owner account")
        return { status: 201, headers: {}, body: { name } }
    }

    private challenge() {
        return { "www-authenticate": `${SCRAM_MECHANISM} realm="${this.ctx.realm}"` }
    }

    private async session(authorization: string | undefined, source: string): Promise<RegistryReply> {
        const now = this.ctx.clock()
        for (const [sid, p] of this.exchanges) if (p.expires < now) this.exchanges.delete(sid)
        if (!authorization) throw new OwnerHttpError(401, "authentication required", this.challenge())
        const { scheme, params } = parseAuthorization(authorization)
        if (scheme.toUpperCase() !== SCRAM_MECHANISM) {
            this.ctx.event("downgrade", source, "?", `owner client tried ${scheme.slice(0, 20)}`)
            throw new OwnerHttpError(401, "only SCRAM-SHA-256 is accepted", this.challenge())
        }
        const data = params.get("data")
        if (!data) throw new OwnerHttpError(401, "missing data", this.challenge())
        const message = Buffer.from(data, "base64").toString("utf8")
        const sid = params.get("sid")
        return sid ? await this.sessionFinal(sid, message, source) : this.sessionFirst(message, source)
    }

    private limitKeys(name: string, source: string) {
        return [`login-ip:${source}`, `login-owner:${name}`]
    }

    private sessionFirst(message: string, source: string): RegistryReply {
        const first = parseClientFirst(message)
        const name = first.username
        this.ctx.guard(this.limitKeys(name, source))
        const owner = OWNER_NAME.test(name) ? this.ctx.store.getOwner(name) : undefined
        const verifier: ScramVerifier = owner
            ? { salt: owner.scramSalt, iterations: owner.scramIterations, storedKey: owner.storedKey, serverKey: owner.serverKey }
            : this.decoyVerifier(name)
        if (this.exchanges.size >= MAX_PENDING_EXCHANGES) throw new OwnerHttpError(503, "busy")
        const { message: reply, exchange } = serverFirst(first, verifier)
        const sid = randomBytes(16).toString("hex")
        this.exchanges.set(sid, { exchange, expires: this.ctx.clock() + EXCHANGE_TTL_MS })
        return {
            status: 401,
            headers: { "www-authenticate": `${SCRAM_MECHANISM} sid=${sid}, data=${Buffer.from(reply).toString("base64")}` },
            body: { error: "continue" },
        }
    }

    private async sessionFinal(sid: string, message: string, source: string): Promise<RegistryReply> {
        const pending = this.exchanges.get(sid)
        this.exchanges.delete(sid)
        if (!pending || pending.expires < this.ctx.clock()) throw new OwnerHttpError(401, "unknown or expired exchange", this.challenge())
        const name = pending.exchange.username
        const keys = this.limitKeys(name, source)
        this.ctx.guard(keys)
        const final = serverFinal(pending.exchange, message)
        const owner = this.ctx.store.getOwner(name)
        if (!final || !owner) {
            this.ctx.event("auth-failure", source, name, "owner login: invalid proof")
            this.ctx.failed(keys, source, name, "owner login")
            throw new OwnerHttpError(401, "authentication failed", this.challenge())
        }
        this.ctx.succeed(keys)
        const now = this.ctx.clock()
        const token = randomBytes(32).toString("base64url")
        this.ctx.store.putOwnerSession(sha256(token), name, now + SESSION_TTL_MS)
        this.ctx.store.deleteExpiredOwnerSessions(now)
        const body: Record<string, unknown> = { owner: name, token, ttlMs: SESSION_TTL_MS, expiresAt: now + SESSION_TTL_MS }
        if (this.ctx.broker) {
            try {
                body.broker = await this.issueBrokerLogin(name)
            } catch (e) {
                this.ctx.event("broker-unavailable", "registry", name, (e as Error).message.slice(0, 96))
            }
        }
        this.ctx.event("owner-login", source, name, "owner session opened")
        const info = `sid=${sid}, data=${Buffer.from(final).toString("base64")}`
        return { status: 200, headers: { "authentication-info": info }, body }
    }

    /** A new broker password for the owner, bound to its client id, for its devices' topics; the old one stops working. */
    private async issueBrokerLogin(name: string) {
        const broker = this.ctx.broker!
        const password = randomBytes(24).toString("base64url")
        const username = ownerUsername(name)
        const ttlMs = this.ctx.brokerTokenTtlMs
        const expiresAt = this.ctx.clock() + ttlMs
        await broker.grantOwner(name, password, this.ctx.store.devicesOf(name))
        this.ctx.store.putOwnerBrokerExpiry(name, expiresAt)
        return {
            host: broker.endpoint.host,
            port: broker.endpoint.port,
            username,
            password,
            // the login is bound to its username as client id (./broker-access.ts)
            clientId: username,
            ttlMs,
            expiresAt,
        }
    }

    /** Lets the owner's broker login reach a device it just claimed. */
    async allowDevice(name: string, deviceId: string) {
        await this.ctx.broker?.allowOwner(name, deviceId)
    }

    /** Revokes every owner broker login past its expiry. Returns the owners revoked. */
    async expireBrokerLogins(): Promise<string[]> {
        const expired = this.ctx.store.expiredOwnerBrokerLogins(this.ctx.clock())
        for (const name of expired) {
            await this.ctx.broker?.revokeOwner(name)
            this.ctx.store.deleteOwnerBrokerExpiry(name)
        }
        return expired
    }

    private decoyVerifier(name: string) {
        const salt = createHmac("sha256", this.decoyKey).update(name).digest().subarray(0, 16)
        return { ...makeVerifier(randomBytes(32), salt, 1), iterations: SCRAM_MIN_ITERATIONS }
    }
}
