/**
 * The registry service: enrollment, SCRAM-SHA-256 authentication over HTTP
 * (RFC 7804), owner claims, rate limits, security events, and broker
 * credentials for claimed devices. Served over HTTPS only.
 *
 * Endpoints:
 * - `POST /v1/devices`: enroll `{ id, scram: {salt, iterations, storedKey, serverKey}, claim: {salt, iterations, hash},
 *   owner: {envelope} }` (binary fields base64). 201, or 409 for an id already enrolled, or 429 past the
 *   source's limit of new ids. The envelope is ciphertext the registry cannot open
 *   (src/identity/owner-envelope.ts, keyed as in src/secure/keys.ts).
 * - `GET /v1/session`: RFC 7804 exchange with `Authorization: SCRAM-SHA-256 …`;
 *   the final 200 carries `Authentication-Info` and, for a claimed device, broker credentials.
 * - `POST /v1/claim`: `{ id, code }` with `Authorization: Bearer <owner session token>`, where `code` is
 *   the claim proof; the owner is the session's account (devs/registry/owners.ts: registration, owner login,
 *   the owner's broker login). 200 returns the owner envelope; the owner's broker login may then reach the device.
 *   Every refusal is the same 403, whether the device is claimed, unclaimed or unknown.
 * - `POST /v1/session` (final step only): as the GET, with a JSON report in the body for the update
 *   service (devs/updates/service.ts); it is read only after the device's proof verifies, and the
 *   answer is `reply` in the 200 body. It grants no broker password: the device's current one stays valid.
 * - `GET /v1/firmware/<class id hex>/<image SHA-256 hex>`: the signed manifest of that image
 *   (application/cbor), public: its SLH-DSA signature is what devices trust, not this server. There is no
 *   "latest": a device fetches the release its owner named in a sealed command, so a canary release is
 *   offered to no one else.
 * - `GET /v1/trust`: the newest root and key list versions, CBOR `[root, key list]`; and
 *   `GET /v1/trust/(root|keys)/<version>/<n>`: the n-th signature (from 0) of that document, a COSE_Sign1
 *   (devs/updates/trust.ts). Public, as manifests are; 404 past the last.
 *
 * Limits (./rate-limit.ts explains them): failed logins and claims per source, new ids per source,
 * pending SCRAM exchanges per source (./exchanges.ts), security events per kind and source
 * (./events.ts), bodies of 4096 bytes (413).
 */
import { createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto"
import { createServer, type Server } from "node:https"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { Socket } from "node:net"
import { TLS_SERVER_OPTIONS } from "../net/tls.ts"
import { DEFAULT_EXCHANGE_LIMITS, ExchangeRefusal, PendingExchanges, type ExchangeLimits } from "./exchanges.ts"
import { SecurityEvents } from "./events.ts"
import { DEFAULT_POLICY, ENROLLMENT_POLICY, FORGET_AFTER_MS, RateLimiter, type RateLimitPolicy } from "./rate-limit.ts"
import {
    makeVerifier,
    parseClientFirst,
    SCRAM_MAX_ITERATIONS,
    SCRAM_MECHANISM,
    SCRAM_MIN_ITERATIONS,
    ScramProtocolError,
    serverFinal,
    serverFirst,
} from "./scram.ts"
import type { BrokerAccess } from "./broker-access.ts"
import type { FirmwareUpdates, UpdateEndpoint } from "./firmware-updates.ts"
import { parseAuthorization } from "./http-auth.ts"
import { OwnerAccounts } from "./owners.ts"
import { base64Field, HttpError, jsonBody, MAX_BODY_BYTES } from "./request.ts"
import { sourceOf } from "./source.ts"
import type { DeviceRecord, RegistryStore } from "./store.ts"

/** Options of the registry. */
export interface RegistryOptions {
    store: RegistryStore
    broker?: BrokerAccess
    /** Lifetime of a broker password. Default 1 hour. */
    brokerTokenTtlMs?: number
    /** Failed logins and claims (./rate-limit.ts). */
    rateLimit?: RateLimitPolicy
    /** Successful enrollments of new ids from one source. */
    enrollmentLimit?: RateLimitPolicy
    /** Current time; tests move it. */
    clock?: () => number
    /** Realm in the SCRAM challenge. */
    realm?: string
    /** Where event lines go (default: the console). They never hold a credential. */
    log?: (line: string) => void
    /** Bounds of the pending SCRAM exchanges (./exchanges.ts). */
    exchanges?: ExchangeLimits
    /** The update service and where its WSSK gateway listens, if updates are offered. */
    updates?: { service: FirmwareUpdates; endpoint: UpdateEndpoint }
}

const REALM = "sentinel"
const DEVICE_ID = /^[0-9a-f]{32}$/

function iterations(field: unknown, name: string): number {
    if (!Number.isInteger(field) || (field as number) < SCRAM_MIN_ITERATIONS || (field as number) > SCRAM_MAX_ITERATIONS)
        throw new HttpError(400, `${name} must be an integer ${SCRAM_MIN_ITERATIONS}..${SCRAM_MAX_ITERATIONS}`)
    return field as number
}

/** The registry's request handling, independent of the HTTPS server (tests call `handle`). */
export class Registry {
    readonly store: RegistryStore
    private readonly limiter: RateLimiter
    private readonly enrollments: RateLimiter
    private readonly clock: () => number
    private readonly exchanges: PendingExchanges
    private readonly events: SecurityEvents
    /**
     * Unknown users get a fake but stable salt, so a probe cannot tell them from real ones (RFC 5802 §5.1); its key
     * is the store's, so every registry on the store gives an unknown user the same salt.
     */
    private readonly decoyKey: Promise<Buffer>
    private expiryTimer: NodeJS.Timeout | undefined
    /** Owner accounts: registration, login, sessions, broker logins. */
    readonly owners: OwnerAccounts

    constructor(private readonly options: RegistryOptions) {
        this.store = options.store
        this.limiter = new RateLimiter(options.store, options.rateLimit ?? DEFAULT_POLICY)
        this.enrollments = new RateLimiter(options.store, options.enrollmentLimit ?? ENROLLMENT_POLICY)
        this.clock = options.clock ?? Date.now
        this.exchanges = new PendingExchanges(options.store, options.exchanges ?? DEFAULT_EXCHANGE_LIMITS)
        this.decoyKey = options.store.sharedSecret("decoy-salt")
        // read once it is needed; a store that fails here fails those requests, not the process
        this.decoyKey.catch(() => {})
        this.events = new SecurityEvents(options.store, this.clock, options.log ?? console.log)
        this.owners = new OwnerAccounts({
            store: options.store,
            clock: this.clock,
            broker: options.broker,
            exchanges: this.exchanges,
            decoyKey: this.decoyKey,
            brokerTokenTtlMs: options.brokerTokenTtlMs ?? 3_600_000,
            realm: options.realm ?? REALM,
            event: (kind, source, identity, detail) => this.event(kind, source, identity, detail),
            guard: keys => this.guard(keys),
            failed: (keys, source, identity, what) => this.failed(keys, source, identity, what),
            succeed: async keys => {
                for (const k of keys) await this.limiter.succeed(k)
            },
        })
    }

    /** Logs a security event (also to the console, without any credential), escaped and limited (./events.ts). */
    event(kind: string, source: string, identity: string, detail: string) {
        this.events.record(kind, source, identity, detail)
    }

    /** Handles one request; returns status, headers and a JSON body once the events it caused are stored. */
    async handle(method: string, path: string, headers: Record<string, string | undefined>, body: Buffer, source: string) {
        try {
            return await this.route(method, path, headers, body, source)
        } finally {
            await this.events.settled()
        }
    }

    private async route(method: string, path: string, headers: Record<string, string | undefined>, body: Buffer, source: string) {
        try {
            if (method === "POST" && path === "/v1/devices") return await this.enroll(body, source)
            if (method === "GET" && path === "/v1/session") return await this.session(headers["authorization"], source)
            if (method === "POST" && path === "/v1/session") return await this.session(headers["authorization"], source, body)
            if (method === "GET" && path.startsWith("/v1/firmware/")) return await this.manifest(path)
            if (method === "GET" && path.startsWith("/v1/trust")) return await this.trust(path)
            if (method === "POST" && path === "/v1/claim") return await this.claim(headers["authorization"], body, source)
            const owners = await this.owners.handle(method, path, headers, body, source)
            if (owners) return owners
            if (method === "GET" && path === "/v1/health") return { status: 200, headers: {}, body: { ok: true } }
            throw new HttpError(404, "no such endpoint")
        } catch (e) {
            if (e instanceof HttpError) return { status: e.status, headers: e.headers, body: { error: e.message } }
            if (e instanceof ScramProtocolError) {
                this.event("auth-failure", source, "?", `protocol error: ${e.message}`)
                return { status: 400, headers: {}, body: { error: e.message } }
            }
            throw e
        }
    }

    /** The keys a login or claim is limited under: its source, and its source with the device tried (./rate-limit.ts). */
    private keys(what: "login" | "claim", source: string, id: string): string[] {
        const from = sourceOf(source)
        return [`${what}-ip:${from}`, `${what}:${from}:${id}`]
    }

    /** Refuses the attempt, unchecked and uncounted, while any of its keys is locked out. */
    private async guard(keys: string[]) {
        for (const key of keys) {
            const wait = await this.limiter.retryAfter(key, this.clock())
            if (wait > 0) throw new HttpError(429, "too many failed attempts", { "retry-after": String(Math.ceil(wait / 1000)) })
        }
    }

    /** Counts an attempt under each key, with an event for each lockout it starts. */
    private async counted(limiter: RateLimiter, keys: string[], source: string, identity: string, what: string) {
        for (const key of keys) {
            const lockout = await limiter.count(key, this.clock())
            if (lockout) this.event("rate-limited", source, identity, `${what}: limit reached for ${key}, locked ${lockout / 1000} s`)
        }
    }

    private async failed(keys: string[], source: string, identity: string, what: string) {
        await this.counted(this.limiter, keys, source, identity, what)
    }

    private async enroll(body: Buffer, source: string) {
        const from = sourceOf(source)
        await this.guard([`enroll-ip:${from}`, `enroll-new:${from}`])
        const req = jsonBody(body)
        const id = req.id
        if (typeof id !== "string" || !DEVICE_ID.test(id)) throw new HttpError(400, "id must be 32 lowercase hex characters")
        const scram = (req.scram ?? {}) as Record<string, unknown>
        const claim = (req.claim ?? {}) as Record<string, unknown>
        const device: DeviceRecord = {
            id,
            scramSalt: base64Field(scram.salt, "scram.salt", 16, 64),
            scramIterations: iterations(scram.iterations, "scram.iterations"),
            storedKey: base64Field(scram.storedKey, "scram.storedKey", 32, 32),
            serverKey: base64Field(scram.serverKey, "scram.serverKey", 32, 32),
            claimSalt: base64Field(claim.salt, "claim.salt", 16, 64),
            claimIterations: iterations(claim.iterations, "claim.iterations"),
            claimHash: base64Field(claim.hash, "claim.hash", 32, 32),
            owner: null,
            enrolledAt: this.clock(),
            claimedAt: null,
            ownerEnvelope: base64Field(((req.owner ?? {}) as Record<string, unknown>).envelope, "owner.envelope", 40, 256),
        }
        if (!(await this.store.insertDevice(device))) {
            this.event("re-enroll-refused", source, id, "enrollment of an id already enrolled")
            await this.failed([`enroll-ip:${from}`], source, id, "enrollment")
            throw new HttpError(409, "device already enrolled")
        }
        this.event("enrolled", source, id, "new device enrolled")
        // every new id costs rows: a source may add only so many, however well-formed
        await this.counted(this.enrollments, [`enroll-new:${from}`], source, id, "enrollment")
        return { status: 201, headers: {}, body: { id } }
    }

    private challenge() {
        return { "www-authenticate": `${SCRAM_MECHANISM} realm="${this.options.realm ?? REALM}"` }
    }

    private async manifest(path: string) {
        const m = /^\/v1\/firmware\/([0-9a-f]{32})\/([0-9a-f]{64})$/.exec(path)
        const signed = m ? await this.options.updates?.service.signedManifest(m[1], m[2]) : undefined
        if (!signed) throw new HttpError(404, "no such firmware")
        return { status: 200, headers: {}, body: signed }
    }

    private async trust(path: string) {
        const service = this.options.updates?.service
        const copy = /^\/v1\/trust\/(root|keys)\/(\d{1,10})\/(\d{1,2})$/.exec(path)
        const signed =
            path === "/v1/trust"
                ? await service?.trustIndex()
                : copy && (await service?.trustCopy(copy[1] as "root" | "keys", +copy[2], +copy[3]))
        if (!signed) throw new HttpError(404, "no such trust document")
        return { status: 200, headers: {}, body: signed }
    }

    private async session(authorization: string | undefined, source: string, report?: Buffer) {
        if (!authorization) throw new HttpError(401, "authentication required", this.challenge())
        const { scheme, params } = parseAuthorization(authorization)
        if (scheme.toUpperCase() !== SCRAM_MECHANISM) {
            // only SCRAM is offered; anything else is a client trying a weaker mechanism
            this.event("downgrade", source, "?", `client tried ${scheme.slice(0, 20)}`)
            throw new HttpError(401, "only SCRAM-SHA-256 is accepted", this.challenge())
        }
        const data = params.get("data")
        if (!data) throw new HttpError(401, "missing data", this.challenge())
        const message = Buffer.from(data, "base64").toString("utf8")
        const sid = params.get("sid")
        if (!sid) return await this.sessionFirst(message, source)
        return await this.sessionFinal(sid, message, source, report)
    }

    private async sessionFirst(message: string, source: string) {
        const first = parseClientFirst(message)
        const id = first.username
        const keys = this.keys("login", source, id)
        await this.guard(keys)
        const device = DEVICE_ID.test(id) ? await this.store.getDevice(id) : undefined
        const verifier = device
            ? { salt: device.scramSalt, iterations: device.scramIterations, storedKey: device.storedKey, serverKey: device.serverKey }
            : await this.decoyVerifier(id)
        const { message: reply, exchange } = serverFirst(first, verifier)
        const opened = await this.exchanges.open("device", sourceOf(source), exchange, this.clock())
        if ("refused" in opened) {
            const retry = { "retry-after": String(Math.ceil((this.options.exchanges ?? DEFAULT_EXCHANGE_LIMITS).ttlMs / 1000)) }
            if (opened.refused === ExchangeRefusal.Full) throw new HttpError(503, "busy", retry)
            this.event("rate-limited", source, id, "too many logins in progress from this source")
            throw new HttpError(429, "too many logins in progress", retry)
        }
        const { sid } = opened
        return {
            status: 401,
            headers: { "www-authenticate": `${SCRAM_MECHANISM} sid=${sid}, data=${Buffer.from(reply).toString("base64")}` },
            body: { error: "continue" },
        }
    }

    private async sessionFinal(sid: string, message: string, source: string, report?: Buffer) {
        const exchange = await this.exchanges.take("device", sid, this.clock())
        if (!exchange) throw new HttpError(401, "unknown or expired exchange", this.challenge())
        const id = exchange.username
        const keys = this.keys("login", source, id)
        await this.guard(keys)
        const final = serverFinal(exchange, message)
        const device = await this.store.getDevice(id)
        if (!final || !device) {
            this.event("auth-failure", source, id, "invalid proof")
            await this.failed(keys, source, id, "login")
            throw new HttpError(401, "authentication failed", this.challenge())
        }
        for (const k of keys) await this.limiter.succeed(k)
        const info = `sid=${sid}, data=${Buffer.from(final).toString("base64")}`
        const body: Record<string, unknown> = { id, claimed: device.owner !== null }
        // a login that carries a report is the updater's, which needs no broker: a grant would replace (and so
        // revoke) the password the device's MQTT session is about to use, and its next connection would be refused
        if (device.owner !== null && this.options.broker && !report?.length) {
            try {
                body.broker = await this.issueBrokerCredentials(id)
            } catch (e) {
                // the login still counts (and a report is still read): the device retries the broker later
                this.event("broker-unavailable", "registry", id, (e as Error).message.slice(0, 96))
            }
        }
        if (this.options.updates) {
            body.updates = this.options.updates.endpoint
            // the report is read only now that the proof has verified
            if (report && report.length) body.reply = await this.options.updates.service.handleReport(id, jsonBody(report))
        }
        return { status: 200, headers: { "authentication-info": info }, body }
    }

    private async issueBrokerCredentials(id: string) {
        const broker = this.options.broker!
        const password = randomBytes(24).toString("base64url")
        const ttlMs = this.options.brokerTokenTtlMs ?? 3_600_000
        const expiresAt = this.clock() + ttlMs
        await broker.grant(id, password, expiresAt)
        await this.store.putBrokerExpiry(id, expiresAt)
        // ttlMs too: devices have no wall clock to compare expiresAt with; `brokers`: the nodes of a cluster, to fail over between
        const { host, port } = broker.endpoint
        const brokers =
            broker.endpoints && broker.endpoints.length > 1 ? { brokers: broker.endpoints.map(e => ({ host: e.host, port: e.port })) } : {}
        return { host, port, ...brokers, username: id, password, expiresAt, ttlMs }
    }

    /** Revokes every broker credential past its expiry. Returns the devices revoked. */
    async expireBrokerCredentials(): Promise<string[]> {
        const expired = await this.store.expiredBrokerCredentials(this.clock())
        for (const id of expired) {
            await this.options.broker?.revoke(id)
            await this.store.deleteBrokerExpiry(id)
        }
        return [...expired, ...(await this.owners.expireBrokerLogins()).map(name => `owner ${name}`)]
    }

    /**
     * Checks expiries and writes the summaries of event floods every `intervalMs`, and forgets rate limits
     * nobody touched for `FORGET_AFTER_MS` every thousand of them, until `close()`.
     */
    startExpiryTimer(intervalMs = 1000) {
        let ticks = 0
        this.expiryTimer = setInterval(() => {
            this.events.flush()
            if (ticks++ % 1000 === 0) void this.store.forgetRateLimits(this.clock() - FORGET_AFTER_MS).catch(() => {})
            void this.expireBrokerCredentials().catch(() => {})
        }, intervalMs)
        this.expiryTimer.unref()
    }

    close() {
        if (this.expiryTimer) clearInterval(this.expiryTimer)
    }

    private async decoyVerifier(id: string) {
        const salt = createHmac("sha256", await this.decoyKey)
            .update(id)
            .digest()
            .subarray(0, 16)
        // a verifier nobody knows the password of: the exchange always fails at the proof
        return { ...makeVerifier(randomBytes(32), salt, 1), iterations: SCRAM_MIN_ITERATIONS }
    }

    private async claim(authorization: string | undefined, body: Buffer, source: string) {
        // the owner is the account of the session: no name is taken by claiming under it first
        const owner = await this.owners.authenticate(authorization)
        if (!owner) throw new HttpError(401, "claims need an owner session (log in as the owner first)", { "www-authenticate": "Bearer" })
        const req = jsonBody(body)
        const { id, code } = req
        if (typeof id !== "string" || !DEVICE_ID.test(id)) throw new HttpError(400, "id must be 32 lowercase hex characters")
        if (req.owner !== undefined && req.owner !== owner) throw new HttpError(403, "owner is not the session's account")
        if (typeof code !== "string" || code.length > 64) throw new HttpError(400, "code must be text")
        const keys = this.keys("claim", source, id)
        await this.guard(keys)
        const device = await this.store.getDevice(id)
        const claimable = device && device.owner === null ? device : undefined
        // a refusal says nothing more: claimed, unclaimed and unknown ids get one answer after one PBKDF2 of one weight
        const refused = () => new HttpError(403, "claim refused")
        if (!(await this.checkClaimCode(id, code, claimable))) {
            const why = !device ? "unknown device" : claimable ? "wrong claim code" : "device already claimed"
            this.event("claim-failure", source, id, why)
            await this.failed(keys, source, id, "claim")
            throw refused()
        }
        // another claim won the race since the read above
        if (!claimable || !(await this.store.claimDevice(id, owner, this.clock()))) throw refused()
        for (const k of keys) await this.limiter.succeed(k)
        this.event("claimed", source, id, `claimed by ${owner}`)
        try {
            await this.owners.allowDevice(owner, id)
        } catch (e) {
            // the claim stands; the owner's next login installs every device it holds
            this.event("broker-unavailable", "registry", owner, (e as Error).message.slice(0, 96))
        }
        return { status: 200, headers: {}, body: { id, owner, envelope: claimable.ownerEnvelope.toString("base64") } }
    }

    /**
     * Whether `code` is the device's claim proof. Without a device that can be claimed, the same PBKDF2 runs
     * on a decoy salt at the devices' iteration count (src/identity/credentials.ts), and fails.
     */
    private async checkClaimCode(id: string, code: string, device: DeviceRecord | undefined): Promise<boolean> {
        const canonical = code.toUpperCase().replace(/[-\s]/g, "")
        const verifier =
            device?.claimHash && device.claimSalt && device.claimIterations
                ? { salt: device.claimSalt, iterations: device.claimIterations, hash: device.claimHash }
                : undefined
        const salt =
            verifier?.salt ??
            createHmac("sha256", await this.decoyKey)
                .update(`claim:${id}`)
                .digest()
                .subarray(0, 16)
        const hash = pbkdf2Sync(canonical, salt, verifier?.iterations ?? SCRAM_MIN_ITERATIONS, 32, "sha256")
        return verifier !== undefined && timingSafeEqual(hash, verifier.hash)
    }
}

/** How long a refused upload may go on arriving after its `413` before the connection is dropped. */
const LINGER_MS = 2000

/** Whether the request says, before any of its body arrives, that the body is over `limit`. */
function declaredTooLarge(req: IncomingMessage, limit: number): boolean {
    return Number(req.headers["content-length"]) > limit
}

/** Reads a request body; undefined once it passes `limit` bytes (what follows is discarded as it arrives). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
        if (declaredTooLarge(req, limit)) {
            req.resume()
            return resolve(undefined)
        }
        const chunks: Buffer[] = []
        let size = 0
        const onData = (c: Buffer) => {
            size += c.length
            if (size <= limit) return void chunks.push(c)
            req.off("data", onData)
            req.resume()
            resolve(undefined)
        }
        req.on("data", onData)
        req.on("end", () => resolve(Buffer.concat(chunks)))
        req.on("error", reject)
    })
}

/**
 * Closes a connection whose request was not read to its end, in stages (RFC 9112 §9.6): closing at once,
 * with the client still sending, makes TCP reset the connection, and the reset can destroy the answer
 * before the client reads it. So the answer goes out, then our side closes, and what the client still
 * sends is read and dropped until it closes too or `LINGER_MS` pass. Node ends a `connection: close`
 * answer with the socket's `destroySoon`, which is where the stages go.
 */
function closeInStages(socket: Socket) {
    socket.destroySoon = () => {
        socket.end()
        socket.resume()
        const timer = setTimeout(() => socket.destroy(), LINGER_MS)
        socket.once("end", () => socket.destroy())
        socket.once("close", () => clearTimeout(timer))
    }
}

/** How long the server waits for a client (Node's http.Server timeouts). */
export interface HttpTimeouts {
    /** An idle connection after an answer: it must cover the device's work between two requests. */
    keepAliveMs: number
    /** The request line and headers of a request (a client that trickles them holds a connection). */
    headersMs: number
    /** A whole request, body included. */
    requestMs: number
}

/**
 * A device logs in with two requests on one TLS connection and may follow with the update exchange
 * (the manifest, then a login that carries its report); between them it computes PBKDF2 or verifies a
 * signature, about a second in the simulator. 15 s covers a slower board; past it, the device connects again.
 */
export const HTTP_TIMEOUTS: HttpTimeouts = { keepAliveMs: 15_000, headersMs: 10_000, requestMs: 20_000 }

/** Requests on one connection before the server closes it: a login and an update exchange take five. */
const MAX_REQUESTS_PER_CONNECTION = 16

/**
 * Serves a registry over HTTPS with the given key and certificate (PEM). Connections stay open between
 * requests (HTTP/1.1 persistent connections, RFC 9112 §9.3), so a login costs the device one TLS handshake.
 */
export function serveRegistry(registry: Registry, tls: { key: Buffer; cert: Buffer }, timeouts = HTTP_TIMEOUTS): Server {
    const answer = (res: ServerResponse, result: { status: number; headers: Record<string, string>; body: unknown }) => {
        const binary = Buffer.isBuffer(result.body)
        const payload = binary ? (result.body as Buffer) : Buffer.from(JSON.stringify(result.body))
        res.writeHead(result.status, {
            ...result.headers,
            "content-type": binary ? "application/cbor" : "application/json",
            "content-length": payload.length,
        })
        res.end(payload)
    }
    const tooLarge = (res: ServerResponse) => {
        // the rest of the body is not read, so the connection cannot carry another request
        closeInStages(res.socket as Socket)
        answer(res, { status: 413, headers: { connection: "close" }, body: { error: "body too large" } })
    }
    const serve = async (req: IncomingMessage, res: ServerResponse) => {
        const source = req.socket.remoteAddress ?? "?"
        let result
        try {
            const body = await readBody(req, MAX_BODY_BYTES)
            if (!body) return tooLarge(res)
            const headers = req.headers as Record<string, string | undefined>
            result = await registry.handle(req.method ?? "", (req.url ?? "").split("?")[0], headers, body, source)
        } catch (e) {
            result =
                e instanceof HttpError
                    ? { status: e.status, headers: e.headers, body: { error: e.message } }
                    : { status: 500, headers: {}, body: { error: "internal error" } }
        }
        answer(res, result)
    }
    const server = createServer(
        {
            key: tls.key,
            cert: tls.cert,
            ...TLS_SERVER_OPTIONS,
            keepAliveTimeout: timeouts.keepAliveMs,
            headersTimeout: timeouts.headersMs,
            requestTimeout: timeouts.requestMs,
            // how often Node looks for requests past their time (default 30 s)
            connectionsCheckingInterval: Math.min(timeouts.headersMs, 1000),
        },
        serve
    )
    server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION
    // a client that asks before sending its body (Expect: 100-continue, RFC 9110 §10.1.1) hears 413 before sending it
    server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
        if (declaredTooLarge(req, MAX_BODY_BYTES)) return tooLarge(res)
        res.writeContinue()
        void serve(req, res)
    })
    return server
}
