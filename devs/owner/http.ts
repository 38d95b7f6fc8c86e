/**
 * The owner service over HTTP (fastify): a JSON API under `/api/`, live
 * updates as server-sent events, and the owner console (./pages.ts, whose
 * modules in ./console draw from the same API in the browser). Loopback by default; any other address only with
 * TLS. Auth is ./console-auth.ts: a console session (cookie + CSRF token on
 * every state-changing request) or the API token (`Authorization: Bearer`).
 *
 * Nothing served or logged here holds a key, a password, a token or a claim
 * code: the device list and detail are built from what the store keeps about
 * devices, never from their roots, and errors are fixed sentences.
 */
import { timingSafeEqual } from "node:crypto"
import { isIP } from "node:net"
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify"
import { parseCommand } from "./commands.ts"
import { ConsoleAuth, MIN_PASSWORD_LENGTH, SESSION_TTL_MS, SETUP_LINK_FILE } from "./console-auth.ts"
import { consoleAsset, devicePage, listPage, loginPage, notFoundPage, rolloutPage, rolloutsPage, setupPage } from "./pages.ts"
import type { RolloutAction } from "./rollout/driver.ts"
import { RolloutError } from "./rollout/engine.ts"
import { parseNewRollout, rolloutView, TAG } from "./rollout/request.ts"
import { ClaimError, type OwnerService, type ServiceEvents } from "./service.ts"

/** Options of the HTTP server. */
export interface OwnerHttpOptions {
    service: OwnerService
    auth: ConsoleAuth
    /** Address to listen on; anything but loopback needs `tls`. Default 127.0.0.1. */
    host?: string
    port: number
    tls?: { key: Buffer; cert: Buffer }
    log?: (line: string) => void
    /** The simulated device `npm start` runs, which the console may factory-reset; never a real one. */
    simulator?: SimulatorControl
}

/** What the console may do to the simulator `npm start` runs (devs/sim implements it). */
export interface SimulatorControl {
    /** The id of the device the simulator runs now, once it printed one. */
    deviceId(): string | undefined
    /** Wipes the simulator's flash (identity, event log, settings; not the firmware keys) and boots it as a new device. */
    factoryReset(): Promise<void>
}

const DEVICE_ID = /^[0-9a-f]{32}$/
const SESSION_COOKIE = "owner_session"
/** Server-sent event streams open at once. */
const MAX_STREAMS = 32
const KEEPALIVE_MS = 15_000
/** Header of a state-changing request from the console. */
const CSRF_HEADER = "x-csrf-token"

/** Whether an address is loopback, where plain HTTP is acceptable. */
export function isLoopback(host: string): boolean {
    return host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."))
}

type Auth = { kind: "token" } | { kind: "session"; csrf: string; sid: string }

function cookie(req: FastifyRequest, name: string): string | undefined {
    for (const part of (req.headers.cookie ?? "").split(";")) {
        const [k, ...v] = part.trim().split("=")
        if (k === name) return v.join("=")
    }
    return undefined
}

function sameText(a: string, b: string): boolean {
    const [x, y] = [Buffer.from(a), Buffer.from(b)]
    return x.length === y.length && timingSafeEqual(x, y)
}

const SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

/** Builds the server (not listening yet). */
export function buildOwnerHttp(options: OwnerHttpOptions): FastifyInstance {
    const { service, auth } = options
    const host = options.host ?? "127.0.0.1"
    if (!isLoopback(host) && !options.tls)
        throw new Error(`listening on ${host} needs TLS (a certificate and key): only loopback may be plain HTTP`)
    const log = options.log ?? (line => console.log(line))
    const secure = options.tls !== undefined
    const app = Fastify({
        logger: false,
        bodyLimit: 16 * 1024,
        // closing the server closes idle keep-alive connections too, instead of waiting for them
        forceCloseConnections: true,
        ...(options.tls ? { https: { key: options.tls.key, cert: options.tls.cert, minVersion: "TLSv1.2" as const } } : {}),
    })
    app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) =>
        done(null, Object.fromEntries(new URLSearchParams(body as string)))
    )
    /** The open event streams: ended when the server closes (a hijacked reply would keep it open for ever). */
    const streams = new Set<FastifyReply>()
    app.addHook("onClose", async () => {
        for (const reply of streams) reply.raw.end()
    })

    const authOf = (req: FastifyRequest): Auth | undefined => {
        const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1]
        if (bearer) return auth.apiToken(bearer) ? { kind: "token" } : undefined
        const sid = cookie(req, SESSION_COOKIE)
        const s = auth.session(sid)
        return s && { kind: "session", csrf: s.csrf, sid: sid! }
    }
    const sessionCookie = (value: string, maxAgeS: number) =>
        `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? "; Secure" : ""}`
    const html = (reply: FastifyReply, body: string, status = 200) => reply.code(status).type("text/html; charset=utf-8").send(body)

    app.addHook("onSend", async (_req, reply, payload) => {
        reply.headers(SECURITY_HEADERS)
        return payload
    })
    // every /api/ route needs a token or a session, and a state-changing request from a session its CSRF token
    app.addHook("preHandler", async (req, reply) => {
        if (!req.url.startsWith("/api/")) return
        const a = authOf(req)
        if (!a) return reply.code(401).send({ error: "log in at /login, or send the API token as Authorization: Bearer" })
        if (a.kind === "session" && !["GET", "HEAD"].includes(req.method)) {
            const sent = req.headers[CSRF_HEADER]
            if (typeof sent !== "string" || !sameText(sent, a.csrf)) {
                log(`console: ${req.method} ${req.routeOptions.url} without its CSRF token refused (${req.ip})`)
                return reply.code(403).send({ error: `missing or wrong ${CSRF_HEADER}` })
            }
        }
        ;(req as FastifyRequest & { auth?: Auth }).auth = a
    })
    app.setErrorHandler((e: Error & { statusCode?: number }, _req, reply) => {
        const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500
        if (status === 500) log(`http: ${e.message}`)
        reply.code(status).send({ error: status === 500 ? "internal error" : e.message.slice(0, 200) })
    })

    // --- pages

    app.get("/static/:name", async (req, reply) => {
        const asset = consoleAsset((req.params as { name: string }).name)
        if (!asset) return reply.code(404).send({ error: "no such file" })
        return reply.type(asset.type).send(asset.body)
    })
    app.get("/login", async (req, reply) => {
        if (!auth.hasPassword())
            return html(
                reply,
                setupPage(undefined, `No console password yet: open the one-time setup link in ${SETUP_LINK_FILE} beside the owner store.`)
            )
        const failed = typeof (req.query as Record<string, unknown>).failed === "string"
        return html(reply, loginPage(failed ? "Wrong password. After 5 failures in a minute, logins from here wait a minute." : undefined))
    })
    app.post("/login", async (req, reply) => {
        const source = req.ip
        const wait = auth.retryAfter(source)
        if (wait > 0) {
            log(`console: login from ${source} refused, locked for ${Math.ceil(wait / 1000)} s`)
            // a page, as the login form is a browser's
            return html(
                reply.header("retry-after", String(Math.ceil(wait / 1000))),
                loginPage(`Too many failed logins from here: wait ${Math.ceil(wait / 1000)} s, then try again.`),
                429
            )
        }
        const session = auth.login((req.body as Record<string, unknown> | undefined)?.password, source)
        if (!session) {
            log(`console: failed login from ${source}`)
            return reply.code(303).header("location", "/login?failed=1").send()
        }
        log(`console: login from ${source}`)
        return reply
            .code(303)
            .header("set-cookie", sessionCookie(session.sid, SESSION_TTL_MS / 1000))
            .header("location", "/")
            .send()
    })
    app.post("/logout", async (req, reply) => {
        const a = authOf(req)
        if (a?.kind === "session") {
            const sent = (req.body as Record<string, unknown> | undefined)?.csrf ?? req.headers[CSRF_HEADER]
            if (typeof sent !== "string" || !sameText(sent, a.csrf)) return reply.code(403).send({ error: "missing or wrong CSRF token" })
            auth.logout(a.sid)
        }
        return reply.code(303).header("set-cookie", sessionCookie("", 0)).header("location", "/login").send()
    })
    app.get("/setup", async (req, reply) => {
        const token = (req.query as Record<string, unknown>).token
        if (!auth.checkSetupToken(token))
            return html(reply, setupPage(undefined, "This setup link is not valid (it works once, before a password is set)."), 403)
        return html(reply, setupPage(token as string))
    })
    app.post("/setup", async (req, reply) => {
        const body = (req.body ?? {}) as Record<string, unknown>
        if (!auth.checkSetupToken(body.token)) return reply.code(403).send({ error: "this setup link is not valid" })
        if (typeof body.password !== "string" || body.password.length < MIN_PASSWORD_LENGTH || body.password !== body.confirm)
            return html(
                reply,
                setupPage(body.token as string, `The two passwords must match, at least ${MIN_PASSWORD_LENGTH} characters.`),
                400
            )
        auth.setPassword(body.password)
        log("console: password set")
        return reply.code(303).header("location", "/login").send()
    })
    const page =
        (render: (req: FastifyRequest, csrf: string) => string | undefined) => async (req: FastifyRequest, reply: FastifyReply) => {
            const a = authOf(req)
            if (a?.kind !== "session") return reply.code(303).header("location", "/login").send()
            const body = render(req, a.csrf)
            return body === undefined ? html(reply, notFoundPage(a.csrf, service.name), 404) : html(reply, body)
        }
    app.get(
        "/",
        page((_req, csrf) => listPage(service.name ?? "", service.deviceList(), csrf))
    )
    const rolloutOf = (idText: string) => {
        const id = /^\d{1,9}$/.test(idText) ? Number(idText) : 0
        return id > 0 ? service.rollouts.get(id) : undefined
    }
    const deviceNames = () => new Map(service.store.devices().map(d => [d.id, d.name]))
    app.get(
        "/rollouts",
        page((_req, csrf) => rolloutsPage(service.name ?? "", service.rollouts.list(), csrf))
    )
    app.get(
        "/rollouts/:id",
        page((req, csrf) => {
            const r = rolloutOf((req.params as { id: string }).id)
            return r && rolloutPage(rolloutView(r, deviceNames()), csrf, service.name)
        })
    )
    app.get(
        "/devices/:id",
        page((req, csrf) => {
            const id = (req.params as { id: string }).id
            const detail = DEVICE_ID.test(id) ? service.deviceDetail(id) : undefined
            return detail && devicePage(detail, csrf, service.name, options.simulator?.deviceId() === id)
        })
    )

    // --- the API

    const deviceParam = (req: FastifyRequest) => {
        const id = (req.params as { id: string }).id
        if (!DEVICE_ID.test(id) || !service.follows(id)) throw Object.assign(new Error("no such device"), { statusCode: 404 })
        return id
    }
    app.get("/api/session", async req => {
        const a = (req as FastifyRequest & { auth: Auth }).auth
        return { owner: service.name, kind: a.kind, ...(a.kind === "session" ? { csrf: a.csrf } : {}) }
    })
    app.get("/api/devices", async () => ({ devices: service.deviceList() }))
    app.get("/api/devices/:id", async req => service.deviceDetail(deviceParam(req)))
    app.get("/api/devices/:id/readings", async req => {
        const id = deviceParam(req)
        const q = req.query as Record<string, string | undefined>
        const num = (v: string | undefined) => (v !== undefined && /^\d{1,15}$/.test(v) ? Number(v) : undefined)
        const readings = service.store.readings(id, { name: q.name, since: num(q.since), until: num(q.until), limit: num(q.limit) })
        return { readings }
    })
    app.get("/api/rejections", async () => ({ counts: service.store.rejectionCounts(), latest: service.store.rejections(100) }))
    app.post("/api/devices/claim", async (req, reply) => {
        const body = (req.body ?? {}) as Record<string, unknown>
        const { id, code, name } = body
        if (typeof id !== "string" || !DEVICE_ID.test(id)) return reply.code(400).send({ error: "id must be 32 lower-case hex digits" })
        if (typeof code !== "string" || code.length < 8 || code.length > 64)
            return reply.code(400).send({ error: "code must be the claim code" })
        if (name !== undefined && (typeof name !== "string" || name.length > 64))
            return reply.code(400).send({ error: "name is up to 64 characters" })
        try {
            await service.claim(id, code, name as string | undefined)
        } catch (e) {
            if (e instanceof ClaimError) return reply.code(e.status === 401 ? 502 : e.status).send({ error: e.message })
            throw e
        }
        return reply.code(201).send({ id })
    })
    app.patch("/api/devices/:id", async (req, reply) => {
        const id = deviceParam(req)
        const { name, tags } = (req.body ?? {}) as Record<string, unknown>
        if (name === undefined && tags === undefined) return reply.code(400).send({ error: "give a name, tags, or both" })
        if (name !== undefined && (typeof name !== "string" || name.length < 1 || name.length > 64))
            return reply.code(400).send({ error: "name is 1..64 characters" })
        if (tags !== undefined && (!Array.isArray(tags) || tags.length > 16 || !tags.every(t => typeof t === "string" && TAG.test(t))))
            return reply.code(400).send({ error: "tags is a list of up to 16 tags, each 1..32 of a-z 0-9 _ . -" })
        if (typeof name === "string") service.rename(id, name)
        if (Array.isArray(tags)) service.setTags(id, tags as string[])
        return { id, name: service.store.device(id)!.name, tags: service.store.tags(id) }
    })
    app.delete("/api/devices/:id", async req => {
        const id = deviceParam(req)
        await service.remove(id)
        return { id, removed: true }
    })
    app.post("/api/simulator/factory-reset", async (_req, reply) => {
        if (!options.simulator) return reply.code(404).send({ error: "no simulated device here: only npm start runs one" })
        log("console: factory reset of the simulated device")
        await options.simulator.factoryReset()
        return reply.code(202).send({ reset: true })
    })
    app.post("/api/devices/:id/commands", async (req, reply) => {
        const id = deviceParam(req)
        const command = parseCommand(req.body)
        if (typeof command === "string") return reply.code(400).send({ error: command })
        return reply.code(202).send(await service.command(id, command))
    })
    app.get("/api/rollouts", async () => ({
        rollouts: service.rollouts.list().map(record => rolloutView(service.rollouts.get(record.id)!)),
    }))
    app.post("/api/rollouts", async (req, reply) => {
        const input = parseNewRollout(req.body)
        if (typeof input === "string") return reply.code(400).send({ error: input })
        try {
            return reply.code(201).send(rolloutView(service.rollouts.create(input), deviceNames()))
        } catch (e) {
            if (e instanceof RolloutError) return reply.code(409).send({ error: e.message })
            throw e
        }
    })
    const rolloutParam = (req: FastifyRequest) => {
        const r = rolloutOf((req.params as { id: string }).id)
        if (!r) throw Object.assign(new Error("no such rollout"), { statusCode: 404 })
        return r
    }
    app.get("/api/rollouts/:id", async req => rolloutView(rolloutParam(req), deviceNames()))
    app.post("/api/rollouts/:id/:action", async (req, reply) => {
        const r = rolloutParam(req)
        const action = (req.params as { action: string }).action
        if (!["pause", "resume", "abort", "retry-failed"].includes(action))
            return reply.code(404).send({ error: "a rollout can be paused, resumed, aborted, or its failed devices retried" })
        try {
            return rolloutView(service.rollouts.act(r.record.id, action as RolloutAction), deviceNames())
        } catch (e) {
            if (e instanceof RolloutError) return reply.code(409).send({ error: e.message })
            throw e
        }
    })
    app.get("/api/stream", (req, reply) => {
        if (streams.size >= MAX_STREAMS) return void reply.code(503).send({ error: "too many streams" })
        streams.add(reply)
        reply.hijack()
        reply.raw.writeHead(200, { "content-type": "text/event-stream", "x-accel-buffering": "no", ...SECURITY_HEADERS })
        reply.raw.write(": sentinel-node owner service\n\n")
        const kinds = ["reading", "state", "event", "command", "rejection", "device", "update", "rollout"] as const
        const listeners = kinds.map(kind => {
            const listener = (data: ServiceEvents[typeof kind][0]) => reply.raw.write(`event: ${kind}\ndata: ${JSON.stringify(data)}\n\n`)
            service.on(kind, listener as never)
            return [kind, listener] as const
        })
        const keepalive = setInterval(() => reply.raw.write(": keep-alive\n\n"), KEEPALIVE_MS)
        req.raw.on("close", () => {
            streams.delete(reply)
            clearInterval(keepalive)
            for (const [kind, listener] of listeners) service.off(kind, listener as never)
        })
    })
    return app
}

/** Starts listening; resolves with the URL. */
export async function listenOwnerHttp(app: FastifyInstance, options: Pick<OwnerHttpOptions, "host" | "port" | "tls">): Promise<string> {
    const host = options.host ?? "127.0.0.1"
    await app.listen({ host, port: options.port })
    const port = (app.server.address() as { port: number }).port
    return `${options.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`
}
