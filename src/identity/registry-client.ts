/**
 * The device side of the registry: enrollment with a verifier only, and
 * SCRAM-SHA-256 authentication over HTTPS as in RFC 7804. Any other mechanism
 * the server offers is refused and logged as a downgrade attempt; a server
 * that cannot prove it holds our verifier is refused and logged.
 * `registryExchange` is what the uplink and the updater call: enroll if
 * needed, then authenticate.
 */
import { base64Decode, base64Encode } from "../codec/base64"
import { EventLog } from "../events/log"
import { Endpoint } from "../net/endpoint"
import { HttpsConnection, HttpsError, HttpsResponse } from "../net/https"
import { DeviceIdentity, isEnrolled, markEnrolled, readOwnerEnvelope } from "./credentials"
import { makeScramVerifier, ScramClient, ScramError, ScramKeyCache } from "./scram"

/**
 * Broker credentials issued after a successful exchange, for the broker at `host:port`; held in RAM only.
 * A cluster's grant also names every node (`nodes`, `host:port` first), which the uplink fails over between.
 */
export interface BrokerGrant extends Endpoint {
    nodes: Endpoint[]
    username: string
    password: string
    /** Registry clock (ms since the epoch) at which the password stops working. */
    expiresAt: number
    /** Lifetime of the password from when it was issued, in milliseconds. */
    ttlMs: number
}

/** The outcome of an authentication. */
export interface RegistrySession {
    claimed: boolean
    broker?: BrokerGrant
    /** The update service's WSSK gateway, when the registry has one. */
    updates?: UpdateServiceInfo
    /** The registry's answer to a report sent with the exchange (see `authenticate`). */
    reply?: SessionReply
}

/** Where the update service listens, and how long it may take to start a deploy. */
export interface UpdateServiceInfo extends Endpoint {
    /** How long a device keeps its update window open waiting for the deploy. */
    windowMs: number
}

/** What the registry said about a report. */
export interface SessionReply {
    /** The update service holds our WSSK master key. */
    wsskKeyStored: boolean
    /** "accepted", or why the update step was refused. */
    update?: string
}

/** Broker nodes a grant may name: a cluster of three to five, with room to spare; more is a registry fault. */
const MAX_BROKER_NODES = 8

/** Raised when the registry exchange fails; `kind` says what to log. */
export class RegistryError extends Error {
    constructor(
        readonly kind: "tls-refused" | "downgrade" | "auth-failure" | "rate-limited" | "enroll-refused" | "unreachable" | "protocol",
        message: string
    ) {
        super(message)
        this.name = "RegistryError"
    }
}

const MECHANISM = "SCRAM-SHA-256"

/** The SCRAM password is the hex form of the secret: plain ASCII, so SASLprep leaves it as is. */
function scramPassword(identity: DeviceIdentity): Buffer {
    return Buffer.from(identity.secret.toString("hex"))
}

/** Parses `Scheme a=b, c="d"` into the scheme and its parameters. */
export function parseAuthHeader(header: string): { scheme: string; params: { [k: string]: string } } {
    const sp = header.indexOf(" ")
    const scheme = sp < 0 ? header : header.slice(0, sp)
    const params: { [k: string]: string } = {}
    if (sp >= 0)
        for (const part of header.slice(sp + 1).split(",")) {
            const eq = part.indexOf("=")
            if (eq <= 0) continue
            let value = part.slice(eq + 1).trim()
            if (value.length >= 2 && value[0] === '"' && value[value.length - 1] === '"') value = value.slice(1, value.length - 1)
            params[part.slice(0, eq).trim().toLowerCase()] = value
        }
    return { scheme, params }
}

async function call(
    https: HttpsConnection,
    method: "GET" | "POST",
    path: string,
    headers: { [k: string]: string },
    body?: string
): Promise<HttpsResponse> {
    try {
        return await https.request({ method, path, headers, body })
    } catch (e: any) {
        if (e instanceof HttpsError && e.failure === "tls") throw new RegistryError("tls-refused", e.message)
        if (e instanceof HttpsError) throw new RegistryError("unreachable", e.message)
        throw e
    }
}

/**
 * Enrolls the device: sends its id, its SCRAM verifier and its claim verifier.
 * The secret never leaves the device; the verifier cannot be used to log in.
 * Resolves `true` when enrolled now, `false` when the registry already knows the id.
 */
export async function enroll(https: HttpsConnection, identity: DeviceIdentity): Promise<boolean> {
    const envelope = await readOwnerEnvelope()
    if (!envelope) throw new RegistryError("enroll-refused", "owner envelope missing: factory reset needed")
    const v = await makeScramVerifier(scramPassword(identity))
    const body = JSON.stringify({
        id: identity.deviceId,
        scram: {
            salt: base64Encode(v.salt),
            iterations: v.iterations,
            storedKey: base64Encode(v.storedKey),
            serverKey: base64Encode(v.serverKey),
        },
        claim: {
            salt: base64Encode(identity.claim.salt),
            iterations: identity.claim.iterations,
            hash: base64Encode(identity.claim.hash),
        },
        owner: { envelope: base64Encode(envelope) },
    })
    const r = await call(https, "POST", "/v1/devices", {}, body)
    if (r.status === 201) return true
    if (r.status === 409) return false
    if (r.status === 429) throw new RegistryError("rate-limited", "enrollment rate-limited")
    throw new RegistryError("enroll-refused", `enrollment refused: HTTP ${r.status}`)
}

/** Checks a challenge: it must be SCRAM-SHA-256; anything else is a downgrade attempt. */
function scramChallenge(r: HttpsResponse): { [k: string]: string } {
    const header = r.headers["www-authenticate"]
    if (r.status === 429) throw new RegistryError("rate-limited", "registry rate-limited this device")
    if (r.status !== 401 || !header) throw new RegistryError("protocol", `expected a SCRAM challenge, got HTTP ${r.status}`)
    const { scheme, params } = parseAuthHeader(header)
    if (scheme.toUpperCase() !== MECHANISM)
        throw new RegistryError("downgrade", `registry offered ${scheme.slice(0, 24)} instead of ${MECHANISM}`)
    return params
}

/**
 * Authenticates with SCRAM-SHA-256 (RFC 7804 §5). Verifies the server's
 * signature before trusting anything in the reply, including broker credentials.
 * `cache` keeps the salted keys in RAM so later logins skip PBKDF2.
 *
 * `report` (JSON) rides with the final message, as a POST body: the registry
 * acts on it only if our proof verifies, and its answer counts only once the
 * server's signature has verified (src/update uses this for the update channel).
 */
export async function authenticate(
    https: HttpsConnection,
    identity: DeviceIdentity,
    cache: ScramKeyCache,
    report?: string
): Promise<RegistrySession> {
    const scram = new ScramClient({ username: identity.deviceId, password: scramPassword(identity), cache })
    const data = (s: string) => base64Encode(Buffer.from(s))
    const first = await call(https, "GET", "/v1/session", { authorization: `${MECHANISM} data=${data(scram.clientFirst())}` })
    const challenge = scramChallenge(first)
    const sid = challenge["sid"]
    const serverFirst = challenge["data"] ? base64Decode(challenge["data"]) : undefined
    if (!sid || !serverFirst) throw new RegistryError("protocol", "SCRAM challenge without sid or data")
    let final: string
    try {
        final = await scram.clientFinal(serverFirst.toString("utf-8"))
    } catch (e: any) {
        throw new RegistryError("auth-failure", `registry's SCRAM challenge refused: ${e.message}`)
    }
    const authorization = `${MECHANISM} sid=${sid}, data=${data(final)}`
    const r = await call(https, report ? "POST" : "GET", "/v1/session", { authorization }, report)
    if (r.status === 429) throw new RegistryError("rate-limited", "registry rate-limited this device")
    if (r.status !== 200) throw new RegistryError("auth-failure", `registry refused our proof: HTTP ${r.status}`)
    const info = parseAuthHeader("x " + (r.headers["authentication-info"] || "")).params
    const serverFinal = info["data"] ? base64Decode(info["data"]) : undefined
    if (info["sid"] !== sid || !serverFinal) throw new RegistryError("auth-failure", "registry sent no server signature")
    try {
        scram.verifyServerFinal(serverFinal.toString("utf-8"))
    } catch (e: any) {
        if (e instanceof ScramError) throw new RegistryError("auth-failure", "registry could not prove it holds our verifier")
        throw e
    }
    return parseSession(r.body)
}

/** Reads the registry's answer to a login: claimed or not, the broker grant (every node of a cluster), the update service. */
export function parseSession(body: Buffer): RegistrySession {
    let v: any
    try {
        v = JSON.parse(body.toString("utf-8"))
    } catch (e) {
        throw new RegistryError("protocol", "session reply is not JSON")
    }
    const session: RegistrySession = { claimed: v && v.claimed === true }
    const b = v ? v.broker : undefined
    if (session.claimed && b) {
        if (
            typeof b.host !== "string" ||
            typeof b.port !== "number" ||
            typeof b.username !== "string" ||
            typeof b.password !== "string" ||
            typeof b.expiresAt !== "number" ||
            typeof b.ttlMs !== "number" ||
            !(b.ttlMs > 0)
        )
            throw new RegistryError("protocol", "malformed broker grant")
        const nodes: Endpoint[] = [{ host: b.host, port: b.port }]
        if (b.brokers !== undefined) {
            if (!Array.isArray(b.brokers) || b.brokers.length > MAX_BROKER_NODES)
                throw new RegistryError("protocol", "malformed broker nodes")
            for (const node of b.brokers) {
                if (!node || typeof node.host !== "string" || typeof node.port !== "number")
                    throw new RegistryError("protocol", "malformed broker node")
                if (node.host !== b.host || node.port !== b.port) nodes.push({ host: node.host, port: node.port })
            }
        }
        session.broker = {
            host: b.host,
            port: b.port,
            nodes,
            username: b.username,
            password: b.password,
            expiresAt: b.expiresAt,
            ttlMs: b.ttlMs,
        }
    }
    const u = v ? v.updates : undefined
    if (u) {
        if (typeof u.host !== "string" || typeof u.port !== "number" || typeof u.windowMs !== "number" || !(u.windowMs > 0))
            throw new RegistryError("protocol", "malformed update service endpoint")
        session.updates = { host: u.host, port: u.port, windowMs: u.windowMs }
    }
    const reply = v ? v.reply : undefined
    if (reply) {
        const update = typeof reply.update === "string" ? reply.update.slice(0, 64) : undefined
        session.reply = { wsskKeyStored: reply.wssk === "stored", update }
    }
    return session
}

/** Runs a registry step and records a security event for each failure worth one. */
export async function withSecurityEvents<T>(log: EventLog, step: () => Promise<T>): Promise<T> {
    try {
        return await step()
    } catch (e: any) {
        if (e instanceof RegistryError && e.kind !== "unreachable" && e.kind !== "protocol") await log.record(e.kind, e.message)
        throw e
    }
}

/**
 * One registry exchange: enrolls first if the registry has not accepted this
 * identity yet, then authenticates, with `report` if given (see `authenticate`),
 * over `https`, which stays open for the caller's next request (or its `close()`).
 * Failures are logged as security events where they are one, and thrown as `RegistryError`.
 */
export async function registryExchange(
    identity: DeviceIdentity,
    https: HttpsConnection,
    events: EventLog,
    cache: ScramKeyCache,
    report?: string
): Promise<RegistrySession> {
    if (!(await isEnrolled(identity))) {
        const fresh = await withSecurityEvents(events, async () => await enroll(https, identity))
        if (fresh) await events.record("enrolled", `registry ${https.endpoint.host} accepted ${identity.deviceId}`)
        // an id already known is ours only if we can log in with it: authenticate() below decides
        await markEnrolled(identity)
    }
    return await withSecurityEvents(events, async () => await authenticate(https, identity, cache, report))
}
