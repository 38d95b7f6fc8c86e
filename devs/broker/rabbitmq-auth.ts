/**
 * The registry's answers to RabbitMQ's `rabbitmq_auth_backend_http` (3.10):
 * every MQTT login, vhost, resource and topic check of every node comes here.
 *
 * With `auth_http.http_method = post`, a node POSTs a form-encoded body to
 * `<base>/user`, `/vhost`, `/resource` or `/topic` and reads a 200 whose body
 * is `allow` (`allow <tags>` for a user) or `deny`; anything else refuses.
 * What 3.10.8 sends (rabbit_auth_backend_http.erl, rabbit_mqtt_processor.erl):
 *
 *   /user      username, password, vhost, client_id (the MQTT CONNECT's client id)
 *   /vhost     username, vhost, ip, tags, client_id
 *   /resource  username, vhost, resource (exchange|queue), name, permission (configure|write|read), tags, client_id
 *   /topic     username, vhost, resource=topic, name=amq.topic, permission (write|read), tags, routing_key,
 *              variable_map.username, variable_map.vhost, variable_map.client_id
 *
 * The MQTT plugin maps the topic `things/<id>/up/readings` to the routing key
 * `things.<id>.up.readings` (`/` to `.`, `+` to `*`; `#` stays), so the rules
 * are written on dotted keys:
 * - a login is a device id or `owner-<name>` with a live password
 *   (./rabbitmq-logins.ts), and only under client id = username: MQTT lets a
 *   new session with a client id take over the old one (MQTT 3.1.1 §3.1.4),
 *   and device ids are public, so an unbound login could keep any device offline;
 * - a device writes `things.<id>.up.…` and reads `things.<id>.down.…`; an owner
 *   reads `things.<d>.up.…` and writes `things.<d>.down.…` of each device it owns;
 * - AMQP resources: the exchange `amq.topic` (read, write), and the login's own
 *   session queues `mqtt-subscription-<client id>qos0|qos1`, which the plugin
 *   names after the client id, so the binding holds for queues too;
 * - one more login per registry, tagged `administrator`, only for the
 *   management API (a request with a client id, i.e. over MQTT, is refused):
 *   with it the registry closes the sessions of expired passwords
 *   (./rabbitmq-access.ts). Each registry makes its own at start
 *   (`registerAdminLogin`), `registry-<64 random bits, hex>` with a 192-bit
 *   password that stays in its memory, and keeps the password's SHA-256 in
 *   the registries' shared store: the nodes ask one registry's backend, or
 *   any behind a balancer, about another's login, so every backend must
 *   accept every registry's login, and none needs the password to do so.
 *
 * RabbitMQ checks a password only at CONNECT; the topic and resource checks
 * here also refuse a login that has expired, which stops an old session at
 * its next new topic, and the registry closes it at expiry in any case.
 *
 * Served over HTTPS on a listener of its own, never the devices' port, with
 * client certificates: nodes present one issued by the registry's CA. The
 * answers tell whether a login or a password is valid and which owner holds
 * which device, so only the broker may ask; and in a deployment the nodes are
 * other machines, so loopback-only HTTP would not reach them. Every request is
 * hostile input: an unknown path, a body over 4 KiB, a repeated or overlong
 * field get a refusal and a security event, never an exception out of here;
 * an event names the login only when it has a login's shape and never
 * echoes a client id or a field name (a mangled body can run a password into them).
 */
import { randomBytes, timingSafeEqual } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { createServer, type Server } from "node:https"
import type { TLSSocket } from "node:tls"
import { TLS_SERVER_OPTIONS } from "../net/tls.ts"
import type { BrokerLogins } from "../registry/broker-access.ts"
import { passwordHash } from "./rabbitmq-logins.ts"

/** The four checks of the backend. */
export type AuthCheck = "user" | "vhost" | "resource" | "topic"

const CHECKS: readonly AuthCheck[] = ["user", "vhost", "resource", "topic"]

/** A decision; a refusal says why, for the security event (never sent to the broker). */
export type AuthDecision = { allow: true; tags?: string[] } | { allow: false; reason: string }

/** Records a security event (the registry's `event`). */
export type AuthEventSink = (kind: string, source: string, identity: string, detail: string) => void

/** Largest request body: a topic check is about 300 bytes. */
export const MAX_AUTH_BODY = 4096
/** Longest field value accepted (a routing key is at most 255 bytes in AMQP 0-9-1). */
const MAX_FIELD = 512

const DEVICE_ID = /^[0-9a-f]{32}$/
const OWNER_LOGIN = /^owner-[A-Za-z0-9._@-]{1,64}$/
/** A routing or binding key of a device's topics: `things.<id>.(up|down).<rest>`. */
const THING_KEY = /^things\.([0-9a-f]{32})\.(up|down)\.(.+)$/

/** A registry's own login for the management API (the password lives only in that registry's memory). */
export interface AdminLogin {
    username: string
    password: string
}

/** A management login's name: `registry-` and 64 random bits. */
const ADMIN_LOGIN = /^registry-[0-9a-f]{16}$/

/** Where the registries keep their management logins' password hashes (the registry's store). */
export interface AdminLogins {
    putBrokerAdmin(username: string, passwordHash: Buffer, at: number): Promise<void>
    brokerAdminHash(username: string): Promise<Buffer | undefined>
    deleteBrokerAdmin(username: string): Promise<void>
}

/** Makes this registry's management login and keeps its hash in `logins`; the registry deletes it there when it stops. */
export async function registerAdminLogin(logins: AdminLogins, clock: () => number = Date.now): Promise<AdminLogin> {
    const login = { username: `registry-${randomBytes(8).toString("hex")}`, password: randomBytes(24).toString("base64url") }
    await logins.putBrokerAdmin(login.username, passwordHash(login.password), clock())
    return login
}

const allow: AuthDecision = { allow: true }
const deny = (reason: string): AuthDecision => ({ allow: false, reason })

/** Decides the backend's checks on parsed fields (see the module comment for the rules). */
export class RabbitAuthPolicy {
    constructor(
        private readonly logins: BrokerLogins,
        private readonly admins: Pick<AdminLogins, "brokerAdminHash">,
        private readonly clock: () => number = Date.now
    ) {}

    async decide(check: AuthCheck, p: Record<string, string>): Promise<AuthDecision> {
        const username = p.username ?? ""
        if (ADMIN_LOGIN.test(username)) return this.decideAdmin(check, username, p)
        if (!DEVICE_ID.test(username) && !OWNER_LOGIN.test(username)) return deny("not a device or owner login")
        const login = await this.logins.get(username)
        if (!login) return deny("unknown login")
        // the user check carries client_id; the others carry it too, except the topic check's variable_map
        const clientId = check === "topic" ? p["variable_map.client_id"] : p.client_id
        if (clientId !== username) return deny("the client id is not the username")
        if (login.expiresAt !== null && login.expiresAt <= this.clock()) return deny("password expired")
        if (check === "user") return timingSafeEqual(passwordHash(p.password ?? ""), login.passwordHash) ? allow : deny("wrong password")
        if (check === "vhost") return p.vhost === "/" ? allow : deny("another vhost")
        if (check === "resource") return this.resource(username, p)
        return this.topic(username, p)
    }

    private async decideAdmin(check: AuthCheck, username: string, p: Record<string, string>): Promise<AuthDecision> {
        if (p.client_id !== undefined || p["variable_map.client_id"] !== undefined)
            return deny("the registry's login is for the management API only")
        const hash = await this.admins.brokerAdminHash(username)
        if (!hash) return deny("unknown login")
        if (check === "user")
            return timingSafeEqual(passwordHash(p.password ?? ""), hash) ? { allow: true, tags: ["administrator"] } : deny("wrong password")
        if (check === "vhost") return p.vhost === "/" ? allow : deny("vhost")
        return deny("the registry's login neither publishes nor consumes")
    }

    private resource(username: string, p: Record<string, string>): AuthDecision {
        if (p.vhost !== "/") return deny("vhost")
        if (p.resource === "exchange")
            return p.name === "amq.topic" && (p.permission === "read" || p.permission === "write")
                ? allow
                : deny(`exchange ${p.permission}`)
        if (p.resource === "queue") {
            const own = p.name === `mqtt-subscription-${username}qos0` || p.name === `mqtt-subscription-${username}qos1`
            const permission = p.permission === "configure" || p.permission === "read" || p.permission === "write"
            return own && permission ? allow : deny("not this login's session queue")
        }
        return deny("resource kind")
    }

    private async topic(username: string, p: Record<string, string>): Promise<AuthDecision> {
        if (p.vhost !== "/" || p.resource !== "topic" || p.name !== "amq.topic") return deny("not the MQTT exchange")
        const key = THING_KEY.exec(p.routing_key ?? "")
        // the event names the device and direction tried, not the rest of the key (it is the client's text)
        const tried = key ? `things.${key[1]}.${key[2]}.…` : "a key outside things.<id>.up|down"
        const what = `${p.permission === "read" ? "read" : "write"} ${tried}`
        if (!key) return deny(what)
        const [, device, direction] = key
        // a device publishes up and hears down; its owner the other way round
        if (DEVICE_ID.test(username)) {
            const ok =
                device === username &&
                ((p.permission === "write" && direction === "up") || (p.permission === "read" && direction === "down"))
            return ok ? allow : deny(what)
        }
        const owner = username.slice("owner-".length)
        const ok = (p.permission === "read" && direction === "up") || (p.permission === "write" && direction === "down")
        return ok && (await this.logins.owns(owner, device)) ? allow : deny(what)
    }
}

/** A malformed request: refused before any rule runs. */
class MalformedRequest extends Error {}

/** The fields of a form-encoded body; refuses repeated, overlong or non-text fields. */
export function parseAuthForm(body: Buffer): Record<string, string> {
    const text = body.toString("utf8")
    if (Buffer.byteLength(text) !== body.length) throw new MalformedRequest("body is not UTF-8")
    const fields: Record<string, string> = Object.create(null)
    for (const [k, v] of new URLSearchParams(text)) {
        if (k in fields) throw new MalformedRequest("a field repeated")
        if (k.length > 64 || v.length > MAX_FIELD) throw new MalformedRequest("field too long")
        // eslint-disable-next-line no-control-regex
        if (/[\x00-\x1f\x7f]/.test(v)) throw new MalformedRequest("control character in a field")
        fields[k] = v
    }
    return fields
}

/** The answer to one request: status and body. */
export interface AuthAnswer {
    status: number
    body: string
}

/**
 * Answers one request: the path names the check, the body holds its fields.
 * Every refusal is a security event, with the login tried and why; never the password.
 */
export async function answerAuth(
    policy: RabbitAuthPolicy,
    method: string,
    path: string,
    body: Buffer,
    source: string,
    event: AuthEventSink
): Promise<AuthAnswer> {
    const check = CHECKS.find(c => path === `/${c}`)
    if (method !== "POST" || !check) {
        event("broker-auth-malformed", source, "?", `${method.slice(0, 10)} ${path.slice(0, 60)}: no such check`)
        return { status: 404, body: "deny" }
    }
    let fields: Record<string, string>
    try {
        fields = parseAuthForm(body)
    } catch (e) {
        if (!(e instanceof MalformedRequest)) throw e
        event("broker-auth-malformed", source, "?", `${check}: ${e.message}`)
        return { status: 400, body: "deny" }
    }
    const decision = await policy.decide(check, fields)
    if (decision.allow) return { status: 200, body: ["allow", ...(decision.tags ?? [])].join(" ") }
    // only a name of a login's shape is logged: a mangled body can run the password into the username field
    const username = fields.username ?? ""
    const identity =
        DEVICE_ID.test(username) || OWNER_LOGIN.test(username) || ADMIN_LOGIN.test(username) ? username : "(malformed username)"
    event(check === "user" ? "broker-login-refused" : "broker-acl-refused", source, identity, `${check}: ${decision.reason}`)
    return { status: 200, body: "deny" }
}

/** Options of `serveRabbitAuth`. */
export interface RabbitAuthServerOptions {
    policy: RabbitAuthPolicy
    /** The listener's certificate and key, and the CA whose client certificates (the nodes') are accepted (PEM). */
    tls: { cert: Buffer; key: Buffer; clientCa: Buffer }
    event: AuthEventSink
}

/** The HTTPS listener of the auth backend (not yet listening): client certificates required, bodies bounded. */
export function serveRabbitAuth(options: RabbitAuthServerOptions): Server {
    const reply = (res: ServerResponse, answer: AuthAnswer) => {
        res.writeHead(answer.status, { "content-type": "text/plain", "content-length": Buffer.byteLength(answer.body) })
        res.end(answer.body)
    }
    const server = createServer(
        {
            cert: options.tls.cert,
            key: options.tls.key,
            ca: options.tls.clientCa,
            requestCert: true,
            rejectUnauthorized: true,
            ...TLS_SERVER_OPTIONS,
            keepAliveTimeout: 30_000,
            headersTimeout: 5000,
            requestTimeout: 10_000,
        },
        (req: IncomingMessage, res: ServerResponse) => {
            const source = req.socket.remoteAddress ?? "?"
            const chunks: Buffer[] = []
            let size = 0
            let refused = false
            req.on("data", (c: Buffer) => {
                size += c.length
                if (size <= MAX_AUTH_BODY) return void chunks.push(c)
                if (refused) return
                refused = true
                options.event("broker-auth-malformed", source, "?", `body over ${MAX_AUTH_BODY} bytes`)
                res.setHeader("connection", "close")
                reply(res, { status: 413, body: "deny" })
            })
            req.on("error", () => req.destroy())
            req.on("end", async () => {
                if (refused) return
                let answer: AuthAnswer
                try {
                    const path = (req.url ?? "").split("?")[0]
                    answer = await answerAuth(options.policy, req.method ?? "", path, Buffer.concat(chunks), source, options.event)
                } catch (e) {
                    // a fault of ours (the logins' database): refuse, say so, stay up
                    options.event("broker-auth-error", "registry", "?", (e as Error).message.slice(0, 96))
                    answer = { status: 500, body: "deny" }
                }
                reply(res, answer)
            })
        }
    )
    server.on("tlsClientError", (e: Error, socket: TLSSocket) => {
        options.event("broker-auth-tls-refused", socket.remoteAddress ?? "?", "?", e.message.slice(0, 96))
    })
    return server
}
