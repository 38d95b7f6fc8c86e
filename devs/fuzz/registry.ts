/**
 * Fuzzing every registry endpoint in-process (`Registry.handle`), with
 * hostile methods, paths, headers, bodies and source addresses, on a real
 * store (a SQLite file, or a database in a throwaway PostgreSQL cluster) with
 * the update service behind it and a manual clock.
 *
 * Seeds: an enrollment, a claim with the right proof under an owner's session, both SCRAM steps (the
 * final one with and without a report for the update service), the health
 * check, the manifest of the one image published (by its digest) and the trust index. A final step is sent in a fresh
 * exchange: its Authorization header is a template whose `{SID}` and
 * `{FINAL}` become the exchange's id and the right client-final-message, the
 * latter mutated unless the input says otherwise, so a mutation reaches the
 * proof check rather than an unknown exchange.
 *
 * Wrong acceptance, per endpoint: `handle` throws, or answers 5xx (503
 * "busy" aside); an answer of 400 and above without a JSON `error`; a 2xx
 * for anything but a valid enrollment of a new id (checked here against the
 * documented format), a claim of an enrolled, unclaimed device with its
 * proof and the owner's session, a login with the untouched proof of a live exchange, the health
 * check, the manifest of the one image published, or the trust index and its documents' signatures. After the inputs the
 * store must hold exactly the devices enrolled, each well-formed, owned only
 * by whom a 200 said, and the registry must still enroll and log in a new
 * device.
 */
import { createHash, pbkdf2Sync, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import Database from "better-sqlite3"
import pg from "pg"
import { freePort } from "../net/ports.ts"
import { claimProof } from "../owner/keys.ts"
import { Registry } from "../registry/app.ts"
import type { BrokerAccess } from "../registry/broker-access.ts"
import { enroll, inProcessTransport, login, ownerLogin, registerOwner } from "../registry/client.ts"
import { SCRAM_MECHANISM, ScramClient } from "../registry/scram.ts"
import { PostgresStore } from "../registry/postgres-store.ts"
import { SqliteStore, type RegistryStore } from "../registry/store.ts"
import { startPgCluster, type PgCluster } from "../stack/pg-cluster.ts"
import { makeHostDevice } from "../sim/host-device.ts"
import { KeyVault } from "../updates/key-vault.ts"
import { CLASS_ID, manifestFor, signManifest } from "../updates/manifest.ts"
import { UpdateService } from "../updates/service.ts"
import { generateSigningKey } from "../updates/cose-sign1.ts"
import { singleKeyTrust } from "../updates/trust.ts"
import { mutate, Rng, type Campaign, type Verdict } from "./fuzzer.ts"
import { mutateJson, type Json } from "./json.ts"

/** One request, as the HTTPS server hands it to `handle`. */
export interface RegistryRequest {
    method: string
    path: string
    headers: Record<string, string>
    /** JSON bodies stay values until sent, so mutations can reach inside them; `raw` wins when set. */
    body?: Json
    raw?: Buffer
    source: string
    /** A final SCRAM step in a fresh exchange: 0 sends the right client-final, another number a mutation of it seeded so. */
    final?: number
}

/** A broker that records what the registry asks of it. */
class RecordingBroker implements BrokerAccess {
    endpoint = { host: "localhost", port: 1 }
    /** Per owner: the devices its login may reach. */
    readonly owners = new Map<string, string[]>()
    async grant() {}
    async revoke() {}
    async grantOwner(owner: string, _password: string, devices: string[]) {
        this.owners.set(owner, [...devices])
    }
    async allowOwner(owner: string, id: string) {
        this.owners.get(owner)?.push(id)
    }
    async revokeOwner(owner: string) {
        this.owners.delete(owner)
    }
    async checkOwnerLogin() {
        return false
    }
}

const DEVICE_ID = /^[0-9a-f]{32}$/
/** The owner account that claims. */
const OWNER_NAME = "alice"
/** The one image the campaign's update service publishes, and where its manifest is served. */
const IMAGE = Buffer.alloc(1024, 7)
const MANIFEST_PATH = `/v1/firmware/${CLASS_ID.toString("hex")}/${createHash("sha256").update(IMAGE).digest("hex")}`
/** The signatures the trust index leads to: root 1 and key list 1, one each (`singleKeyTrust`). */
const TRUST_PATHS = ["/v1/trust", "/v1/trust/root/1/0", "/v1/trust/keys/1/0"]
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "get", "", "GET /v1/health", "POST\r\nX: y"]
const PATHS = [
    "/v1/devices",
    "/v1/session",
    "/v1/claim",
    "/v1/health",
    MANIFEST_PATH,
    `/v1/firmware/${CLASS_ID.toString("hex")}/${"0".repeat(64)}`,
    `/v1/firmware/${CLASS_ID.toString("hex")}/latest`,
    ...TRUST_PATHS,
    "/v1/trust/root/1/1",
    "/v1/trust/root/0x1/0",
    "/v1/devices/../claim",
    "//v1/health",
    "/v1/health/",
    "/V1/HEALTH",
    "/v1/firmware/../../etc/passwd/latest",
    "/v1/%2e%2e/claim",
    "*",
    "",
]
const SOURCES = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "192.0.2.7", "::1", "::ffff:10.0.0.9", "?"]

/** Whether `v` is base64 of `min`..`max` bytes, as enrollment fields must be. */
function base64Of(v: unknown, min: number, max: number): boolean {
    if (typeof v !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) return false
    const n = Buffer.from(v, "base64").length
    return n >= min && n <= max
}

function iterations(v: unknown): boolean {
    return Number.isInteger(v) && (v as number) >= 4096 && (v as number) <= 100000
}

/** The documented enrollment format (devs/registry/app.ts), checked independently of the registry. */
function validEnrollment(body: unknown): body is { id: string } {
    if (!body || typeof body !== "object" || Array.isArray(body)) return false
    const b = body as Record<string, Record<string, unknown>>
    const scram = b.scram ?? {}
    const claim = b.claim ?? {}
    return (
        typeof b.id === "string" &&
        DEVICE_ID.test(b.id) &&
        base64Of(scram.salt, 16, 64) &&
        iterations(scram.iterations) &&
        base64Of(scram.storedKey, 32, 32) &&
        base64Of(scram.serverKey, 32, 32) &&
        base64Of(claim.salt, 16, 64) &&
        iterations(claim.iterations) &&
        base64Of(claim.hash, 32, 32) &&
        base64Of((b.owner ?? {}).envelope, 40, 256)
    )
}

/** The claim verifier an enrollment carries: a claim must match it (PBKDF2 of the canonical proof). */
interface ClaimVerifier {
    salt: Buffer
    iterations: number
    hash: Buffer
}

function claimVerifier(enrollment: unknown): ClaimVerifier {
    const claim = (enrollment as { claim: { salt: string; iterations: number; hash: string } }).claim
    return { salt: Buffer.from(claim.salt, "base64"), iterations: claim.iterations, hash: Buffer.from(claim.hash, "base64") }
}

/** What a body is as bytes on the wire. */
function bodyBytes(r: RegistryRequest): Buffer {
    if (r.raw) return r.raw
    return r.body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(r.body))
}

const b64 = (s: string) => Buffer.from(s).toString("base64")

/** Every row of a table as it is in the database, read past the store. */
async function tableRows(database: string, table: "devices" | "device_updates"): Promise<Record<string, unknown>[]> {
    if (database.startsWith("postgres://")) {
        const client = new pg.Client({ connectionString: database })
        await client.connect()
        try {
            return (await client.query(`SELECT * FROM ${table}`)).rows
        } finally {
            await client.end()
        }
    }
    const db = new Database(database, { readonly: true })
    try {
        return db.prepare(`SELECT * FROM ${table}`).all() as Record<string, unknown>[]
    } finally {
        db.close()
    }
}

/** The registry fuzzing campaign on SQLite; `close()` removes its store. */
export function registryCampaign(): Promise<Campaign<RegistryRequest>> {
    return registryCampaignOn("sqlite")
}

/** The same campaign on PostgreSQL, in a cluster of its own that `close()` stops. */
export function registryPostgresCampaign(): Promise<Campaign<RegistryRequest>> {
    return registryCampaignOn("postgres")
}

async function registryCampaignOn(kind: "sqlite" | "postgres"): Promise<Campaign<RegistryRequest>> {
    const dir = mkdtempSync(join(tmpdir(), "fuzz-registry-"))
    let now = 1_700_000_000_000
    const clock = () => now
    let cluster: PgCluster | undefined
    let database = join(dir, "registry.db")
    let store: RegistryStore
    if (kind === "postgres") {
        cluster = await startPgCluster(await freePort())
        database = await cluster.createDatabase("fuzz")
        store = await PostgresStore.open(database)
    } else store = new SqliteStore(database)
    const broker = new RecordingBroker()
    const key = generateSigningKey()
    const updates = new UpdateService({ store, vault: KeyVault.ephemeral(), clock, event: () => {} })
    for (const d of singleKeyTrust([key.publicKey])) await updates.publishTrust(d.kind, d.copies)
    await updates.publish(signManifest(manifestFor(IMAGE, 1), key), IMAGE)
    const registry = new Registry({
        store,
        broker,
        clock,
        log: () => {},
        updates: { service: updates, endpoint: { host: "localhost", port: 1, windowMs: 1000 } },
    })

    // devices the seeds act on: one to log in as, one to claim, one to enroll
    const setup = inProcessTransport(registry, "203.0.113.1")
    /** Enrolled ids and the claim verifier each was enrolled with. */
    const enrolled = new Map<string, ClaimVerifier>()
    const loginAs = await makeHostDevice()
    const toClaim = await makeHostDevice()
    for (const d of [loginAs, toClaim]) {
        if ((await enroll(setup, d.enrollment)).status !== 201) throw new Error("fuzz setup: enrollment refused")
        enrolled.set(d.device.id, claimVerifier(d.enrollment))
    }
    const toEnroll = await makeHostDevice()
    // the owner who claims: an account at the registry, logged in as the owner service does it
    const ownerPassword = randomBytes(32)
    if ((await registerOwner(setup, OWNER_NAME, ownerPassword)).status !== 201) throw new Error("fuzz setup: owner registration refused")
    const ownerSession = `Bearer ${(await ownerLogin(setup, OWNER_NAME, ownerPassword)).token}`
    const claimedBy = new Set<string>()

    const scramFirst = (id: string) => `${SCRAM_MECHANISM} data=${b64(new ScramClient(id, Buffer.alloc(32)).first())}`
    const seeds: RegistryRequest[] = [
        { method: "POST", path: "/v1/devices", headers: {}, body: toEnroll.enrollment as Json, source: "10.0.0.1" },
        {
            method: "POST",
            path: "/v1/claim",
            headers: { authorization: ownerSession },
            body: { id: toClaim.device.id, code: claimProof(toClaim.device.claimCode) },
            source: "10.0.0.2",
        },
        { method: "GET", path: "/v1/session", headers: { authorization: scramFirst(loginAs.device.id) }, source: "10.0.0.3" },
        {
            method: "GET",
            path: "/v1/session",
            headers: { authorization: `${SCRAM_MECHANISM} sid={SID}, data={FINAL}` },
            source: "10.0.0.3",
            final: 0,
        },
        {
            method: "POST",
            path: "/v1/session",
            headers: { authorization: `${SCRAM_MECHANISM} sid={SID}, data={FINAL}` },
            body: { wssk: randomBytes(32).toString("base64") },
            source: "10.0.0.3",
            final: 0,
        },
        { method: "GET", path: "/v1/health", headers: {}, source: "10.0.0.1" },
        { method: "GET", path: MANIFEST_PATH, headers: {}, source: "10.0.0.1" },
        { method: "GET", path: "/v1/trust", headers: {}, source: "10.0.0.2" },
    ]

    /**
     * Sends a final step in a fresh exchange of `loginAs`. Says whether it went out exactly as the client
     * made it, and whether it carried the exchange's channel binding, nonce and proof bytes at least.
     */
    async function sendFinal(r: RegistryRequest) {
        const client = new ScramClient(loginAs.device.id, loginAs.device.password)
        const first = await registry.handle(
            "GET",
            "/v1/session",
            { authorization: `${SCRAM_MECHANISM} data=${b64(client.first())}` },
            Buffer.alloc(0),
            r.source
        )
        const challenge = /sid=([0-9a-f]+), data=(\S+)/.exec(replyHeader(first, "www-authenticate"))
        if (first.status !== 401 || !challenge) return { reply: first, exact: false, authentic: false }
        const right = client.final(Buffer.from(challenge[2], "base64").toString("utf8"))
        const sent = r.final ? mutate(new Rng(r.final), Buffer.from(right), Buffer.alloc(0), 512).toString("latin1") : right
        const header = (r.headers.authorization ?? "").replace("{SID}", challenge[1]).replace("{FINAL}", b64(sent))
        const reply = await registry.handle(r.method, r.path, { ...r.headers, authorization: header }, bodyBytes(r), r.source)
        const exact = sent === right && header.includes(`sid=${challenge[1]}`) && header.includes(`data=${b64(right)}`)
        return { reply, exact, authentic: sameProof(sent, right) }
    }

    /** Whether a 2xx answer to `r` is one the registry may give: undefined if so, else what is wrong. */
    function rightfulSuccess(r: RegistryRequest, status: number): string | undefined {
        const body = r.raw ? undefined : r.body
        if (r.method === "GET" && r.path === "/v1/health" && status === 200) return undefined
        if (r.method === "GET" && (r.path === MANIFEST_PATH || TRUST_PATHS.includes(r.path)) && status === 200) return undefined
        if (r.method === "POST" && r.path === "/v1/devices" && status === 201) {
            const raw = r.raw ? safeParse(r.raw) : body
            if (!validEnrollment(raw)) return "enrolled a body that is not a valid enrollment"
            if (enrolled.has(raw.id)) return "enrolled an id twice"
            enrolled.set(raw.id, claimVerifier(raw))
            return undefined
        }
        if (r.method === "POST" && r.path === "/v1/claim" && status === 200) {
            const c = (r.raw ? safeParse(r.raw) : body) as Record<string, unknown>
            const id = typeof c?.id === "string" ? c.id : ""
            const verifier = enrolled.get(id)
            if (!verifier || claimedBy.has(id)) return "claimed a device that is not enrolled and unclaimed"
            const code = String(c.code).toUpperCase().replace(/[-\s]/g, "")
            if (!pbkdf2Sync(code, verifier.salt, verifier.iterations, 32, "sha256").equals(verifier.hash))
                return "claimed with a wrong proof"
            if (r.headers.authorization !== ownerSession) return "claimed without the owner's session"
            claimedBy.add(id)
            return undefined
        }
        return `answered ${status}`
    }

    return {
        name: kind === "postgres" ? "registry-postgres" : "registry",
        seeds,
        random: rng => ({
            method: rng.pick(METHODS),
            path: rng.below(2) ? rng.pick(PATHS) : rng.bytes(rng.below(64)).toString("latin1"),
            headers: rng.below(2) ? { authorization: rng.bytes(rng.below(200)).toString("latin1") } : ({} as Record<string, string>),
            raw: rng.bytes(rng.below(600)),
            source: rng.pick(SOURCES),
        }),
        mutate: (rng, seed, other) => {
            const r: RegistryRequest = { ...seed, headers: { ...seed.headers } }
            const what = rng.below(8)
            if (what === 0)
                r.method = rng.below(2) ? rng.pick(METHODS) : mutate(rng, Buffer.from(r.method), Buffer.alloc(0), 16).toString("latin1")
            else if (what === 1)
                r.path = rng.below(3) ? mutate(rng, Buffer.from(r.path), Buffer.from(other.path), 300).toString("latin1") : rng.pick(PATHS)
            else if (what === 2) {
                const auth = r.headers.authorization ?? other.headers.authorization ?? ""
                r.headers.authorization = mutate(
                    rng,
                    Buffer.from(auth, "latin1"),
                    Buffer.from(other.headers.authorization ?? ""),
                    4096
                ).toString("latin1")
            } else if (what === 3 && r.final !== undefined) r.final = 1 + rng.below(1 << 30)
            else if (what === 4 && r.body !== undefined)
                r.raw = rng.below(4) ? mutate(rng, bodyBytes(r), bodyBytes(other), 6000) : Buffer.alloc(4097 + rng.below(3000), 0x20)
            else if (what === 5) r.source = rng.pick(SOURCES)
            else r.body = mutateJson(rng, r.body ?? null, other.body ?? null)
            return r
        },
        show: r => JSON.stringify({ ...r, raw: r.raw ? `${r.raw.length} bytes` : undefined, body: JSON.stringify(r.body)?.slice(0, 160) }),
        check: async (r): Promise<Verdict> => {
            now += 1000
            let reply
            let login: { exact: boolean; authentic: boolean } | undefined
            if (r.final !== undefined) ({ reply, ...login } = await sendFinal(r))
            else reply = await registry.handle(r.method, r.path, r.headers, bodyBytes(r), r.source)
            const { status } = reply
            if (!Number.isInteger(status) || status < 200 || status > 599) throw new Error(`status ${status}`)
            if (status >= 500 && status !== 503) throw new Error(`server error ${status}: ${JSON.stringify(reply.body)}`)
            if (status >= 400) {
                const error = (reply.body as Record<string, unknown> | undefined)?.error
                if (typeof error !== "string") return { invalid: `${status} without a JSON error` }
                // the first SCRAM step: a challenge with an exchange id
                if (status === 401 && /\bsid=/.test(replyHeader(reply, "www-authenticate"))) return "accepted"
                return "refused"
            }
            if (login && (r.method === "GET" || r.method === "POST") && r.path === "/v1/session" && status === 200) {
                if (login.exact) return "accepted"
                if (login.authentic) return { invalid: "logged in with a client-final or header altered around the proof" }
                return { invalid: "logged in without the proof of a live exchange" }
            }
            const wrong = rightfulSuccess(r, status)
            return wrong ? { invalid: wrong } : "accepted"
        },
        after: async () => {
            const wrong: string[] = []
            {
                const rows = await tableRows(database, "devices")
                for (const d of rows) {
                    const id = String(d.id)
                    if (!enrolled.has(id)) wrong.push(`device ${id} in the store was never answered 201`)
                    const bytes = (k: string, min: number, max: number) =>
                        Buffer.isBuffer(d[k]) && (d[k] as Buffer).length >= min && (d[k] as Buffer).length <= max
                    const ok =
                        DEVICE_ID.test(id) &&
                        bytes("scram_salt", 16, 64) &&
                        iterations(Number(d.scram_iterations)) &&
                        bytes("stored_key", 32, 32) &&
                        bytes("server_key", 32, 32) &&
                        bytes("owner_envelope", 40, 256) &&
                        (d.owner === null ? d.claim_hash !== null : d.claim_hash === null)
                    if (!ok) wrong.push(`device ${id} is malformed in the store`)
                    if (d.owner !== null && !(claimedBy.has(id) && d.owner === OWNER_NAME))
                        wrong.push(`device ${id} is owned by ${d.owner}, but no 200 said so`)
                }
                if (rows.length !== enrolled.size) wrong.push(`${rows.length} devices stored, ${enrolled.size} enrolled`)
                for (const u of await tableRows(database, "device_updates"))
                    if (!["idle", "approved", "trial", "rollback"].includes(String(u.phase))) wrong.push(`update row in phase ${u.phase}`)
            }
            // and it still serves: a new device enrolls and logs in, once every lockout has passed
            now += 2 * 3_600_000
            const fresh = await makeHostDevice()
            const t = inProcessTransport(registry, "198.51.100.1")
            if ((await enroll(t, fresh.enrollment)).status !== 201) wrong.push("a new device can no longer enroll")
            else if ((await login(t, fresh.device.id, fresh.device.password)).status !== 200)
                wrong.push("a new device can no longer log in")
            return wrong
        },
        close: async () => {
            registry.close()
            updates.close()
            await store.close()
            await cluster?.stop()
            rmSync(dir, { recursive: true, force: true })
        },
    }
}

/**
 * Whether a client-final-message carries the same channel binding, nonce and proof bytes as the right
 * one, read as the registry reads it (attributes, the last of a name counting; the proof as base64).
 */
function sameProof(sent: string, right: string): boolean {
    const attrs = (m: string) => new Map(m.split(",").map(part => [part.slice(0, 2), part.slice(2)] as const))
    const a = attrs(sent)
    const b = attrs(right)
    const withoutProof = (m: string) => m.slice(0, m.lastIndexOf(",p="))
    return (
        withoutProof(sent) === withoutProof(right) &&
        a.get("c=") === b.get("c=") &&
        a.get("r=") === b.get("r=") &&
        Buffer.from(a.get("p=") ?? "", "base64").equals(Buffer.from(b.get("p=") ?? "", "base64"))
    )
}

/** A header of the registry's answer, or "". */
function replyHeader(reply: { headers: object }, name: string): string {
    return String((reply.headers as Record<string, string>)[name] ?? "")
}

function safeParse(raw: Buffer): unknown {
    try {
        return JSON.parse(raw.toString("utf8"))
    } catch {
        return undefined
    }
}
