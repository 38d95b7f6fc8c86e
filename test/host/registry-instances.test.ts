/**
 * Several registries on one PostgreSQL database, as behind a TLS load
 * balancer or one DNS name: two `npm run registry -- --database postgres://…`
 * processes, each with its own HTTPS port, and a client whose requests go to
 * one and the other in turn. A login whose client-first message reaches one
 * registry finishes at the other (the exchange is in the database, taken
 * once: a final message replayed at the first registry is refused); an
 * unknown user gets the same decoy salt from both; a brute force spread over
 * both is limited at the same count as on one. And the broker's management
 * login one registry makes is accepted by the other's RabbitMQ auth backend,
 * and so are the device and owner broker logins one registry grants (they
 * are in the shared database too): the nodes may ask either.
 */
import assert from "node:assert/strict"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import pg from "pg"
import { ManagementUnavailable, RabbitAccess } from "../../devs/broker/rabbitmq-access.ts"
import { answerAuth, RabbitAuthPolicy, registerAdminLogin, type AuthCheck } from "../../devs/broker/rabbitmq-auth.ts"
import { passwordHash, SqliteBrokerLogins } from "../../devs/broker/rabbitmq-logins.ts"
import { freePort } from "../../devs/net/ports.ts"
import { PostgresStore } from "../../devs/registry/postgres-store.ts"
import { enroll, httpsTransport, login, ownerLogin, registerOwner, type Transport } from "../../devs/registry/client.ts"
import { parseAuthorization } from "../../devs/registry/http-auth.ts"
import { DEFAULT_POLICY } from "../../devs/registry/rate-limit.ts"
import { SCRAM_MECHANISM, ScramClient } from "../../devs/registry/scram.ts"
import { makeHostDevice } from "../../devs/sim/host-device.ts"
import { startPgCluster, type PgCluster } from "../../devs/stack/pg-cluster.ts"
import { ensurePki } from "../../devs/stack/pki.ts"

const dir = mkdtempSync(join(tmpdir(), "registry-instances-"))
let cluster: PgCluster
/** The URL of the database "fleet" both registries share. */
let fleet: string
const registries: ChildProcess[] = []
let ca: Buffer
/** The two registries sharing the database "fleet". */
let a: Transport
let b: Transport

/** Starts `npm run registry` on `database` (its password in PGPASSWORD, never argv); resolves with its HTTPS transport. */
async function startRegistry(database: string): Promise<Transport> {
    const url = new URL(database)
    const password = decodeURIComponent(url.password)
    url.password = ""
    const port = await freePort()
    const pki = join(dir, "pki")
    const child = spawn(
        process.execPath,
        ["--import", "tsx", "devs/bin/registry.ts", "--cert", join(pki, "server.crt"), "--key", join(pki, "server.key")].concat([
            "--port",
            String(port),
            "--database",
            url.toString(),
        ]),
        { env: { ...process.env, PGPASSWORD: password }, stdio: ["ignore", "pipe", "pipe"] }
    )
    registries.push(child)
    let output = ""
    await new Promise<void>((resolve, reject) => {
        const onData = (c: Buffer) => {
            output += c
            if (/registry listening on/.test(output)) resolve()
        }
        child.stdout!.on("data", onData)
        child.stderr!.on("data", onData)
        child.once("exit", code => reject(new Error(`registry exited ${code}: ${output}`)))
    })
    assert.ok(!output.includes(password), "the database password in the registry's output")
    return httpsTransport(`https://localhost:${port}`, ca)
}

/** A load balancer in front of `targets`: each request goes to the next, in turn; `sent` records which. */
function roundRobin(...targets: Transport[]) {
    const sent: number[] = []
    let next = 0
    const t: Transport = (method, path, headers, body) => {
        const i = next++ % targets.length
        sent.push(i)
        return targets[i](method, path, headers, body)
    }
    return { t, sent }
}

/** The salt a registry's server-first message names for `username`. */
async function saltFor(t: Transport, username: string): Promise<string> {
    const first = new ScramClient(username, Buffer.alloc(32)).first()
    const r = await t("GET", "/v1/session", { authorization: `${SCRAM_MECHANISM} data=${Buffer.from(first).toString("base64")}` })
    const data = parseAuthorization(r.headers["www-authenticate"] ?? "").params.get("data") ?? ""
    return /,s=([^,]+),/.exec(Buffer.from(data, "base64").toString("utf8"))?.[1] ?? ""
}

before(async () => {
    ca = readFileSync(ensurePki(join(dir, "pki")).caCert)
    cluster = await startPgCluster(await freePort())
    fleet = await cluster.createDatabase("fleet")
    ;[a, b] = await Promise.all([startRegistry(fleet), startRegistry(fleet)])
})

after(async () => {
    for (const r of registries) r.kill("SIGTERM")
    await Promise.all(registries.map(r => (r.exitCode === null ? new Promise(res => r.once("exit", res)) : undefined)))
    await cluster?.stop()
    rmSync(dir, { recursive: true, force: true })
})

describe("two registries on one PostgreSQL database", () => {
    test("a login's client-first at one registry and its client-final at the other succeeds, for devices and owners", async () => {
        const { device, enrollment } = await makeHostDevice()
        const lb = roundRobin(a, b)
        assert.equal((await enroll(lb.t, enrollment)).status, 201)
        const from = lb.sent.length
        const r = await login(lb.t, device.id, device.password)
        assert.equal(r.status, 200)
        assert.deepEqual(lb.sent.slice(from), [1, 0], "client-first at b, client-final at a")
        // and the other way round
        const again = roundRobin(a, b)
        assert.equal((await login(again.t, device.id, device.password)).status, 200)
        assert.deepEqual(again.sent, [0, 1])
        // an owner account registered at one logs in across both
        const password = Buffer.alloc(32, 7)
        assert.equal((await registerOwner(a, "alice", password)).status, 201)
        const owner = await ownerLogin(roundRobin(b, a).t, "alice", password)
        // its session, opened at a, is known at b
        assert.match(owner.token, /^[A-Za-z0-9_-]{43}$/)
        const claim = await b("POST", "/v1/claim", { authorization: `Bearer ${owner.token}` }, { id: device.id, code: "WRONG" })
        assert.deepEqual([claim.status, claim.body], [403, { error: "claim refused" }])
        const stranger = await b("POST", "/v1/claim", { authorization: `Bearer ${"A".repeat(43)}` }, { id: device.id, code: "WRONG" })
        assert.equal(stranger.status, 401)
    })

    test("a client-final message is taken once: replayed at the first registry after the second took it, it is refused", async () => {
        const { device, enrollment } = await makeHostDevice()
        assert.equal((await enroll(a, enrollment)).status, 201)
        const finals: Record<string, string>[] = []
        const spy: Transport = async (method, path, headers, body) => {
            if (/sid=/.test(headers.authorization ?? "")) finals.push(headers)
            return (finals.length ? b : a)(method, path, headers, body)
        }
        assert.equal((await login(spy, device.id, device.password)).status, 200)
        assert.equal(finals.length, 1)
        const replay = await a("GET", "/v1/session", finals[0])
        assert.equal(replay.status, 401)
        assert.equal(replay.body.error, "unknown or expired exchange")
    })

    test("an unknown user gets the same decoy salt from both, as a known one gets its own", async () => {
        const unknown = "0123456789abcdef0123456789abcdef"
        const [fromA, fromB] = [await saltFor(a, unknown), await saltFor(b, unknown)]
        assert.ok(fromA.length > 0)
        assert.equal(fromA, fromB)
        assert.notEqual(await saltFor(a, "fedcba9876543210fedcba9876543210"), fromA)
    })

    test("a brute force spread over both registries is limited at the same count as on one", async () => {
        const { device, enrollment } = await makeHostDevice()
        assert.equal((await enroll(a, enrollment)).status, 201)
        const guesses = async (t: Transport, n: number) => {
            const statuses: number[] = []
            for (let i = 0; i < n; i++) statuses.push((await login(t, device.id, Buffer.from(`guess${i}`))).status)
            return statuses
        }
        // one registry on a database of its own: the count a single instance allows
        const single = await startRegistry(await cluster.createDatabase("single"))
        assert.equal((await enroll(single, enrollment)).status, 201)
        const onOne = await guesses(single, 3 * DEFAULT_POLICY.limit)
        assert.deepEqual(onOne, [...Array(DEFAULT_POLICY.limit).fill(401), ...Array(2 * DEFAULT_POLICY.limit).fill(429)])
        // the same guesses, each exchange's two messages at different registries
        const lb = roundRobin(a, b)
        assert.deepEqual(await guesses(lb.t, 3 * DEFAULT_POLICY.limit), onOne)
        assert.ok(lb.sent.includes(0) && lb.sent.includes(1))
        // locked at both, right password or not
        assert.equal((await login(a, device.id, device.password)).status, 429)
        assert.equal((await login(b, device.id, device.password)).status, 429)
    })

    test("the broker management login either registry made is accepted by the other's auth backend, and only while it runs", async () => {
        // the two registries' stores and auth backends, as the RabbitMQ nodes reach them (the password in the URL, as PGPASSWORD)
        const stores = await Promise.all([PostgresStore.open(fleet), PostgresStore.open(fleet)])
        const logins = new SqliteBrokerLogins(":memory:")
        try {
            const policies = stores.map(s => new RabbitAuthPolicy(logins, s))
            const events: string[] = []
            const ask = async (at: number, fields: Record<string, string>) =>
                (
                    await answerAuth(
                        policies[at],
                        "POST",
                        "/user",
                        Buffer.from(new URLSearchParams(fields).toString()),
                        "127.0.0.1",
                        (...e) => events.push(e.join(" "))
                    )
                ).body
            const admins = [await registerAdminLogin(stores[0]), await registerAdminLogin(stores[1])]
            assert.notEqual(admins[0].username, admins[1].username, "each registry has a login of its own")
            for (const [maker, admin] of admins.entries())
                for (const at of [0, 1]) {
                    const { username, password } = admin
                    assert.equal(
                        await ask(at, { username, password, vhost: "/" }),
                        "allow administrator",
                        `made at ${maker}, asked at ${at}`
                    )
                    assert.equal(await ask(at, { username, password: `${password}x`, vhost: "/" }), "deny")
                    // never over MQTT, whichever backend is asked
                    assert.equal(await ask(at, { username, password, vhost: "/", client_id: username }), "deny")
                }
            // the store keeps a hash, never the password; no event names it
            const kept = await stores[1].brokerAdminHash(admins[0].username)
            assert.equal(kept?.length, 32)
            assert.ok(!kept!.includes(Buffer.from(admins[0].password)))
            assert.ok(events.length >= 4 && events.every(e => admins.every(a => !e.includes(a.password))))
            // a registry that stops takes its login with it: the other refuses it from then on
            await stores[0].deleteBrokerAdmin(admins[0].username)
            assert.equal(await ask(1, { username: admins[0].username, password: admins[0].password, vhost: "/" }), "deny")
            assert.equal(await ask(0, { username: admins[1].username, password: admins[1].password, vhost: "/" }), "allow administrator")
        } finally {
            logins.close()
            await Promise.all(stores.map(s => s.close()))
        }
    })

    test("a broker login one registry grants is checked by the other's auth backend: client id, expiry, renewal, owners", async () => {
        const stores = await Promise.all([PostgresStore.open(fleet), PostgresStore.open(fleet)])
        let now = Date.now()
        const clock = () => now
        // each registry's broker access (granting installs nothing in the broker: no node is needed); b's backend checks
        const accessAt = (at: number) =>
            new RabbitAccess({
                logins: stores[at].brokerLogins(),
                endpoints: [{ host: "127.0.0.1", port: 1 }],
                managementUrls: [],
                admin: { username: "registry-0000000000000000", password: "unused" },
            })
        const access = accessAt(0)
        const policy = new RabbitAuthPolicy(stores[1].brokerLogins(), stores[1], clock)
        const events: string[] = []
        const ask = async (check: AuthCheck, fields: Record<string, string>) =>
            (
                await answerAuth(policy, "POST", `/${check}`, Buffer.from(new URLSearchParams(fields).toString()), "127.0.0.1", (...e) =>
                    events.push(e.join(" "))
                )
            ).body
        const topic = (username: string, clientId: string, permission: string, key: string) =>
            ask("topic", {
                username,
                vhost: "/",
                resource: "topic",
                name: "amq.topic",
                permission,
                routing_key: key,
                "variable_map.client_id": clientId,
            })
        const db = new pg.Client({ connectionString: fleet })
        await db.connect()
        try {
            const [id, other] = ["0a".repeat(16), "0b".repeat(16)]
            const password = "device-password-" + "x".repeat(16)
            await access.grant(id, password, now + 60_000)
            assert.equal(await ask("user", { username: id, password, client_id: id }), "allow")
            assert.equal(await ask("vhost", { username: id, vhost: "/", client_id: id }), "allow")
            assert.equal(await topic(id, id, "write", `things.${id}.up.reading`), "allow")
            assert.equal(await topic(id, id, "read", `things.${id}.down.update`), "allow")
            assert.equal(await topic(id, id, "write", `things.${other}.up.reading`), "deny")
            // bound to its client id, whichever check
            assert.equal(await ask("user", { username: id, password, client_id: other }), "deny")
            assert.equal(await ask("vhost", { username: id, vhost: "/", client_id: other }), "deny")
            assert.equal(await topic(id, other, "write", `things.${id}.up.reading`), "deny")
            assert.equal(await ask("user", { username: id, password: `${password}x`, client_id: id }), "deny")
            // a renewal at either registry replaces the login for both
            const renewed = "renewed-password-" + "y".repeat(16)
            await accessAt(1).grant(id, renewed, now + 120_000)
            assert.equal(await ask("user", { username: id, password, client_id: id }), "deny")
            assert.equal(await ask("user", { username: id, password: renewed, client_id: id }), "allow")
            // an owner granted at a follows its devices at b, and only those
            const ownerPassword = "owner-password-" + "z".repeat(16)
            await access.grantOwner("alice", ownerPassword, [id])
            assert.equal(await ask("user", { username: "owner-alice", password: ownerPassword, client_id: "owner-alice" }), "allow")
            assert.equal(await topic("owner-alice", "owner-alice", "read", `things.${id}.up.reading`), "allow")
            assert.equal(await topic("owner-alice", "owner-alice", "write", `things.${id}.down.update`), "allow")
            assert.equal(await topic("owner-alice", "owner-alice", "read", `things.${other}.up.reading`), "deny")
            await access.allowOwner("alice", other)
            assert.equal(await topic("owner-alice", "owner-alice", "read", `things.${other}.up.reading`), "allow")
            assert.equal(await access.checkOwnerLogin("alice", ownerPassword), true)
            // the database keeps each password's SHA-256, never the password; no event names one
            const { rows } = await db.query<{ username: string; password_hash: Buffer }>(
                "SELECT username, password_hash FROM broker_logins"
            )
            const kept = new Map(rows.map(r => [r.username, r.password_hash]))
            assert.deepEqual(kept.get(id), passwordHash(renewed))
            assert.deepEqual(kept.get("owner-alice"), passwordHash(ownerPassword))
            for (const secret of [password, renewed, ownerPassword]) {
                assert.ok(rows.every(r => !r.username.includes(secret) && !r.password_hash.includes(Buffer.from(secret))))
                assert.ok(events.every(e => !e.includes(secret)))
            }
            // after its expiry, b refuses the login at every check
            now += 120_000
            assert.equal(await ask("user", { username: id, password: renewed, client_id: id }), "deny")
            assert.equal(await ask("vhost", { username: id, vhost: "/", client_id: id }), "deny")
            assert.equal(await topic(id, id, "write", `things.${id}.up.reading`), "deny")
            assert.ok(events.some(e => e.includes("password expired")))
            // an owner's login does not expire at the broker: a revoke at a ends it at b (closing its sessions needs a
            // management API, which this test has none of: the revoke says so after deleting the login)
            await assert.rejects(access.revokeOwner("alice"), ManagementUnavailable)
            assert.equal(await ask("user", { username: "owner-alice", password: ownerPassword, client_id: "owner-alice" }), "deny")
            assert.equal(await topic("owner-alice", "owner-alice", "read", `things.${id}.up.reading`), "deny")
            assert.equal((await db.query("SELECT 1 FROM broker_owned_devices WHERE owner = 'alice'")).rows.length, 0)
        } finally {
            await db.end()
            await Promise.all(stores.map(s => s.close()))
        }
    })
})
