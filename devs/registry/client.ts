/**
 * A registry client for the owner tools, tests and benchmarks: enrollment,
 * the RFC 7804 SCRAM-SHA-256 exchange, claims. It speaks through a
 * `Transport`, so the same code drives the HTTPS service or a `Registry` in-process.
 */
import { randomBytes } from "node:crypto"
import { request, type Agent } from "node:https"
import type { Registry } from "./app.ts"
import { parseAuthorization } from "./http-auth.ts"
import { makeVerifier, SCRAM_MECHANISM, ScramClient, ScramProtocolError, type ScramKeyCache } from "./scram.ts"

/** A reply from the registry. */
export interface Reply {
    status: number
    headers: Record<string, string | undefined>
    body: Record<string, unknown>
}

/** Sends one request to the registry. */
export type Transport = (method: string, path: string, headers: Record<string, string>, body?: unknown) => Promise<Reply>

/**
 * HTTPS transport to `baseUrl`, trusting `ca` (PEM) in addition to nothing else. Requests go through
 * `agent` when given (a keep-alive agent of one socket sends them all on one connection, as a device does).
 */
export function httpsTransport(baseUrl: string, ca: Buffer, agent?: Agent): Transport {
    const base = new URL(baseUrl)
    return (method, path, headers, body) =>
        new Promise((resolve, reject) => {
            const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
            const req = request(
                {
                    host: base.hostname,
                    port: base.port,
                    path,
                    method,
                    ca,
                    agent,
                    headers: { ...headers, ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}) },
                },
                res => {
                    const chunks: Buffer[] = []
                    res.on("data", c => chunks.push(c))
                    res.on("end", () => {
                        let parsed: Record<string, unknown>
                        try {
                            parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"))
                        } catch {
                            parsed = {}
                        }
                        resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body: parsed })
                    })
                }
            )
            req.on("error", reject)
            req.end(payload)
        })
}

/** Calls a `Registry` in this process, as a request from `source` would (tests and benchmarks). */
export function inProcessTransport(registry: Pick<Registry, "handle">, source = "127.0.0.1"): Transport {
    return async (method, path, headers, body) =>
        (await registry.handle(method, path, headers, Buffer.from(body === undefined ? "" : JSON.stringify(body)), source)) as Reply
}

/** Enrolls a device; returns the reply. */
export function enroll(t: Transport, enrollment: Record<string, unknown>): Promise<Reply> {
    return t("POST", "/v1/devices", {}, enrollment)
}

/** Claims a device with its claim proof (`claimProof(code)`: the code itself is never sent) for the owner of `token`. */
export function claim(t: Transport, id: string, proof: string, token: string): Promise<Reply> {
    return t("POST", "/v1/claim", { authorization: `Bearer ${token}` }, { id, code: proof })
}

/** Registers an owner account with the verifier of its password (and the owner broker login of its earlier claims, if any). */
export function registerOwner(t: Transport, name: string, password: Buffer, legacyBrokerPassword?: string): Promise<Reply> {
    const v = makeVerifier(password, randomBytes(16))
    const scram = {
        salt: v.salt.toString("base64"),
        iterations: v.iterations,
        storedKey: v.storedKey.toString("base64"),
        serverKey: v.serverKey.toString("base64"),
    }
    return t("POST", "/v1/owners", {}, { name, scram, ...(legacyBrokerPassword ? { legacy: { password: legacyBrokerPassword } } : {}) })
}

/** An owner's login: its session token for claims and, with a broker, its broker login. */
export interface OwnerLogin {
    token: string
    ttlMs: number
    broker?: { host: string; port: number; username: string; password: string; clientId: string; ttlMs: number }
}

/** Logs in as an owner (the RFC 7804 exchange on the owner endpoint); throws with the registry's reason when refused. */
export async function ownerLogin(t: Transport, name: string, password: Buffer): Promise<OwnerLogin> {
    const reply = await login(t, name, password, undefined, undefined, "/v1/owners/session")
    if (reply.status !== 200) throw new Error(`owner login refused (HTTP ${reply.status}): ${String(reply.body.error ?? "")}`)
    return reply.body as unknown as OwnerLogin
}

/**
 * Runs the RFC 7804 SCRAM-SHA-256 exchange. Resolves with the final reply
 * after checking the server's signature; rejects if the server offers no
 * SCRAM, fails the exchange, or cannot prove it holds the verifier.
 * A `report` for the update service rides with the final step (a POST), as the firmware sends it.
 * With a `cache`, the keys derived from the password are kept for the next login (RFC 5802 §5.1).
 */
export async function login(
    t: Transport,
    id: string,
    password: Buffer,
    report?: unknown,
    cache?: ScramKeyCache,
    path = "/v1/session"
): Promise<Reply> {
    const scram = new ScramClient(id, password, undefined, cache)
    const data = (s: string) => Buffer.from(s).toString("base64")
    const first = await t("GET", path, { authorization: `${SCRAM_MECHANISM} data=${data(scram.first())}` })
    const challenge = parseAuthorization(first.headers["www-authenticate"] ?? "")
    if (first.status !== 401 || challenge.scheme !== SCRAM_MECHANISM || !challenge.params.get("sid")) return first
    const sid = challenge.params.get("sid")!
    const serverFirst = Buffer.from(challenge.params.get("data") ?? "", "base64").toString("utf8")
    const final = await t(
        report === undefined ? "GET" : "POST",
        path,
        { authorization: `${SCRAM_MECHANISM} sid=${sid}, data=${data(scram.final(serverFirst))}` },
        report
    )
    if (final.status !== 200) return final
    const info = parseAuthorization(`x ${final.headers["authentication-info"] ?? ""}`).params
    if (info.get("sid") !== sid) throw new ScramProtocolError("Authentication-Info for another exchange")
    scram.verify(Buffer.from(info.get("data") ?? "", "base64").toString("utf8"))
    return final
}
