/**
 * A registry client for the owner tools, tests and benchmarks: enrollment,
 * the RFC 7804 SCRAM-SHA-256 exchange, claims. It speaks through a
 * `Transport`, so the same code drives the HTTPS service or a `Registry` in-process.
 */
import { request } from "node:https"
import { makeVerifier, SCRAM_MECHANISM, ScramClient, ScramProtocolError } from "./scram.ts"
import { parseAuthorization } from "./app.ts"
import { pbkdf2Sync, randomBytes } from "node:crypto"
import { sealEncrypt0 } from "../owner/cose.ts"
import { claimProof, ENVELOPE_AAD, envelopeKey, ownerRoot } from "../owner/keys.ts"

/** A reply from the registry. */
export interface Reply {
    status: number
    headers: Record<string, string | undefined>
    body: Record<string, unknown>
}

/** Sends one request to the registry. */
export type Transport = (method: string, path: string, headers: Record<string, string>, body?: unknown) => Promise<Reply>

/** HTTPS transport to `baseUrl`, trusting `ca` (PEM) in addition to nothing else. */
export function httpsTransport(baseUrl: string, ca: Buffer): Transport {
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
                    headers: { ...headers, ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}) },
                },
                res => {
                    const chunks: Buffer[] = []
                    res.on("data", c => chunks.push(c))
                    res.on("end", () => {
                        let parsed: Record<string, unknown> = {}
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

/** A device's credentials as the host-side tools make them (tests and benchmarks). */
export interface HostDevice {
    id: string
    password: Buffer
    claimCode: string
}

/** Makes a random device and its enrollment request body, as the firmware would (claim proof, sealed owner envelope). */
export async function makeHostDevice(): Promise<{ device: HostDevice; enrollment: Record<string, unknown> }> {
    const device = { id: randomBytes(16).toString("hex"), password: randomBytes(32), claimCode: randomBytes(20).toString("hex").toUpperCase() }
    const envelope = await sealEncrypt0(ownerRoot(device.password, device.id), {
        key: envelopeKey(device.claimCode, device.id),
        kid: Buffer.from(device.id, "hex"),
        iv: randomBytes(13),
        externalAad: ENVELOPE_AAD,
    })
    const v = makeVerifier(device.password, randomBytes(16))
    const claimSalt = randomBytes(16)
    const enrollment = {
        id: device.id,
        scram: { salt: v.salt.toString("base64"), iterations: v.iterations, storedKey: v.storedKey.toString("base64"), serverKey: v.serverKey.toString("base64") },
        claim: { salt: claimSalt.toString("base64"), iterations: 4096, hash: pbkdf2Sync(claimProof(device.claimCode), claimSalt, 4096, 32, "sha256").toString("base64") },
        owner: { envelope: envelope.toString("base64") },
    }
    return { device, enrollment }
}

/** Enrolls a device; returns the reply. */
export function enroll(t: Transport, enrollment: Record<string, unknown>): Promise<Reply> {
    return t("POST", "/v1/devices", {}, enrollment)
}

/** Claims a device for an owner with its claim proof (`claimProof(code)`: the code itself is never sent). */
export function claim(t: Transport, id: string, proof: string, owner: string): Promise<Reply> {
    return t("POST", "/v1/claim", {}, { id, code: proof, owner })
}

/**
 * Runs the RFC 7804 SCRAM-SHA-256 exchange. Resolves with the final reply
 * after checking the server's signature; rejects if the server offers no
 * SCRAM, fails the exchange, or cannot prove it holds the verifier.
 * A `report` for the update service rides with the final step (a POST), as the firmware sends it.
 */
export async function login(t: Transport, id: string, password: Buffer, report?: unknown): Promise<Reply> {
    const scram = new ScramClient(id, password)
    const data = (s: string) => Buffer.from(s).toString("base64")
    const first = await t("GET", "/v1/session", { authorization: `${SCRAM_MECHANISM} data=${data(scram.first())}` })
    const challenge = parseAuthorization(first.headers["www-authenticate"] ?? "")
    if (first.status !== 401 || challenge.scheme !== SCRAM_MECHANISM || !challenge.params.get("sid"))
        return first
    const sid = challenge.params.get("sid")!
    const serverFirst = Buffer.from(challenge.params.get("data") ?? "", "base64").toString("utf8")
    const final = await t(
        report === undefined ? "GET" : "POST",
        "/v1/session",
        { authorization: `${SCRAM_MECHANISM} sid=${sid}, data=${data(scram.final(serverFirst))}` },
        report
    )
    if (final.status !== 200) return final
    const info = parseAuthorization(`x ${final.headers["authentication-info"] ?? ""}`).params
    if (info.get("sid") !== sid) throw new ScramProtocolError("Authentication-Info for another exchange")
    scram.verify(Buffer.from(info.get("data") ?? "", "base64").toString("utf8"))
    return final
}
