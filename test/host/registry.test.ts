/**
 * The registry's behaviour, in-process (no network): enrollment, SCRAM login,
 * claims, rate limits with growing lockouts, downgrade attempts, broker
 * credential expiry, and that the database never holds a secret.
 */
import assert from "node:assert/strict"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, describe, mock, test } from "node:test"
import Database from "better-sqlite3"
import { Registry } from "../../devs/registry/app.ts"
import type { BrokerAccess } from "../../devs/registry/broker-access.ts"
import { claimProof, ownerRoot } from "../../devs/owner/keys.ts"
import { claim, enroll, inProcessTransport, login, ownerLogin, registerOwner, type Transport } from "../../devs/registry/client.ts"
import { MIGRATIONS } from "../../devs/registry/store.ts"
import { DEFAULT_EXCHANGE_LIMITS } from "../../devs/registry/exchanges.ts"
import { escapeField, EVENT_BURST, EVENT_WINDOW_MS } from "../../devs/registry/events.ts"
import { DEFAULT_POLICY, ENROLLMENT_POLICY, FORGET_AFTER_MS } from "../../devs/registry/rate-limit.ts"
import { OwnerService } from "../../devs/owner/service.ts"
import { OwnerStore } from "../../devs/owner/store.ts"
import { makeHostDevice } from "../../devs/sim/host-device.ts"
import { ManualClock } from "./support/clock.ts"
import { ownerSession } from "./support/owner.ts"
import { storeBackends, type StoreBackend } from "./support/stores.ts"

class FakeBroker implements BrokerAccess {
    endpoint = { host: "127.0.0.1", port: 8883 }
    logins = new Map<string, string>()
    async grant(id: string, password: string) {
        this.logins.set(id, password)
    }
    async revoke(id: string) {
        this.logins.delete(id)
    }
    /** Per owner: its login's password and the devices it may reach. */
    owners = new Map<string, { password: string; devices: string[] }>()
    async grantOwner(owner: string, password: string, devices: string[]) {
        this.owners.set(owner, { password, devices: [...devices] })
    }
    async allowOwner(owner: string, id: string) {
        this.owners.get(owner)?.devices.push(id)
    }
    async revokeOwner(owner: string) {
        this.owners.delete(owner)
    }
    /** Legacy owner logins (before accounts), as the broker still knows them. */
    legacy = new Map<string, string>()
    async checkOwnerLogin(owner: string, password: string) {
        return this.legacy.get(owner) === password
    }
}

const dir = mkdtempSync(join(tmpdir(), "registry-test-"))
after(() => rmSync(dir, { recursive: true, force: true }))

for (const backend of storeBackends()) {
    after(() => backend.close())
    suite(backend)
}

function suite(backend: StoreBackend) {
    async function setup(name: string) {
        const clock = new ManualClock()
        const store = await backend.open(name.replace(/-/g, "_"))
        const broker = new FakeBroker()
        const lines: string[] = []
        const registry = new Registry({ store, broker, clock: clock.now, brokerTokenTtlMs: 60_000, log: line => lines.push(line) })
        return { store, broker, registry, lines, t: inProcessTransport(registry, "10.0.0.1"), advance: (ms: number) => clock.advance(ms) }
    }

    /** The client-first request of an RFC 7804 SCRAM exchange, as a stranger sends it: no proof follows. */
    function clientFirst(t: Transport, username: string, nonce: string) {
        const data = Buffer.from(`n,,n=${username},r=${nonce}`).toString("base64")
        return t("GET", "/v1/session", { authorization: `SCRAM-SHA-256 data=${data}` })
    }

    describe(`registry on ${backend.name}`, () => {
        test("enrollment stores verifiers only; the database never sees the password or claim code", async () => {
            const { store, t } = await setup("secrets")
            const { device, enrollment } = await makeHostDevice()
            assert.equal((await enroll(t, enrollment)).status, 201)
            assert.equal((await login(t, device.id, device.password)).status, 200)
            await store.close()
            for (const file of await backend.files("secrets")) {
                assert.equal(file.indexOf(device.password), -1)
                assert.equal(file.indexOf(Buffer.from(device.password.toString("base64"))), -1)
                assert.equal(file.indexOf(Buffer.from(device.claimCode)), -1)
            }
        })

        test("re-enrollment of an id is refused and logged", async () => {
            const { store, t } = await setup("reenroll")
            const { enrollment } = await makeHostDevice()
            assert.equal((await enroll(t, enrollment)).status, 201)
            const again = await enroll(t, { ...enrollment, scram: (await makeHostDevice()).enrollment.scram })
            assert.equal(again.status, 409)
            assert.equal((await store.events({ kind: "re-enroll-refused" })).length, 1)
        })

        test("malformed enrollments are refused with a clear error", async () => {
            const { t } = await setup("malformed")
            const { enrollment } = await makeHostDevice()
            const bad = [
                { ...enrollment, id: "XYZ" },
                { ...enrollment, scram: { ...(enrollment.scram as object), iterations: 1000 } },
                { ...enrollment, scram: { ...(enrollment.scram as object), storedKey: "c2hvcnQ=" } },
                { ...enrollment, claim: undefined },
            ]
            for (const body of bad) {
                const r = await enroll(t, body)
                assert.equal(r.status, 400)
                assert.equal(typeof r.body.error, "string")
            }
        })

        test("the claim hands the owner the sealed envelope; only the code opens it; the raw code never reaches the registry", async () => {
            const { broker, t, store } = await setup("envelope")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            const seen: unknown[] = []
            const spy: Transport = async (method, path, headers, body) => (seen.push(body), t(method, path, headers, body))
            const ownerStore = new OwnerStore(join(dir, `alice-${backend.name}.db`))
            const service = new OwnerService({
                store: ownerStore,
                registry: spy,
                registryUrl: "in-process",
                name: "alice",
                brokerCa: Buffer.alloc(0),
            })
            await service.signIn()
            await service.claim(device.id, device.claimCode)
            const root = ownerStore.device(device.id)!.root
            assert.deepEqual(root, ownerRoot(device.password, device.id))
            assert.deepEqual(broker.owners.get("alice")?.devices, [device.id])
            assert.ok(!JSON.stringify(seen).includes(device.claimCode))
            // the stored envelope is ciphertext: the owner root is not in it
            assert.equal((await store.getDevice(device.id))!.ownerEnvelope.indexOf(root), -1)
            // a wrong code cannot open an envelope (here: the owner mistypes, the registry refuses first)
            const other = await makeHostDevice()
            await enroll(t, other.enrollment)
            await assert.rejects(service.claim(other.device.id, "WRONG-CODE-0000"), /claim refused \(HTTP 403\)/)
            await service.stop()
            ownerStore.close()
        })

        test("an unclaimed device authenticates but gets no broker access; after the claim it does", async () => {
            const { broker, t } = await setup("claim")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            const before = await login(t, device.id, device.password)
            assert.equal(before.status, 200)
            assert.equal(before.body.claimed, false)
            assert.equal(before.body.broker, undefined)
            const alice = await ownerSession(t, "alice")
            const mallory = await ownerSession(t, "mallory")
            assert.equal((await claim(t, device.id, "WRONG-CODE", alice.token)).status, 403)
            assert.equal((await claim(t, device.id, claimProof(device.claimCode.toLowerCase()), alice.token)).status, 200)
            // one-time: the code does not work again, for anyone, and the answer is a wrong code's
            const again = await claim(t, device.id, claimProof(device.claimCode), mallory.token)
            assert.deepEqual([again.status, again.body], [403, { error: "claim refused" }])
            const afterClaim = await login(t, device.id, device.password)
            const creds = afterClaim.body.broker as { username: string; password: string; expiresAt: number }
            assert.equal(creds.username, device.id)
            assert.equal(broker.logins.get(device.id), creds.password)
            assert.ok(creds.password.length >= 32)
        })

        test("a login that carries a report (the updater's) grants no broker password: the MQTT session's stays valid", async () => {
            const { broker, t } = await setup("report-login")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            await claim(t, device.id, claimProof(device.claimCode), (await ownerSession(t, "alice")).token)
            const mqtt = (await login(t, device.id, device.password)).body.broker as { password: string }
            const updater = await login(t, device.id, device.password, { update: { confirm: "00".repeat(32) } })
            assert.equal(updater.status, 200)
            assert.equal(updater.body.broker, undefined)
            assert.equal(broker.logins.get(device.id), mqtt.password)
        })

        test("broker credentials are revoked at expiry; a new login issues a different password", async () => {
            const { broker, registry, t, advance } = await setup("expiry")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            await claim(t, device.id, claimProof(device.claimCode), (await ownerSession(t, "alice")).token)
            const first = (await login(t, device.id, device.password)).body.broker as { password: string }
            advance(59_000)
            assert.deepEqual(await registry.expireBrokerCredentials(), [])
            advance(2_000)
            // the owner's broker login, issued at its login just before, expires with the device's
            assert.deepEqual(await registry.expireBrokerCredentials(), [device.id, "owner alice"])
            assert.equal(broker.logins.has(device.id), false)
            const second = (await login(t, device.id, device.password)).body.broker as { password: string }
            assert.notEqual(second.password, first.password)
        })

        test("100 wrong passwords: lockout, growing lockouts, one event per limit reached", async () => {
            const { store, t, advance } = await setup("ratelimit")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            const statuses: number[] = []
            for (let i = 0; i < 100; i++) statuses.push((await login(t, device.id, Buffer.from("guess" + i))).status)
            assert.equal(statuses.filter(s => s === 401).length, 5)
            assert.equal(statuses.filter(s => s === 429).length, 95)
            // the limit was reached once for the source, and once for the source on this device
            const events = await store.events({ kind: "rate-limited" })
            assert.equal(events.length, 2)
            assert.ok(events.every(e => e.identity === device.id && e.source === "10.0.0.1"))
            // locked out even with the right password
            assert.equal((await login(t, device.id, device.password)).status, 429)
            advance(30_001)
            for (let i = 0; i < 5; i++) await login(t, device.id, Buffer.from("again" + i))
            const locked = await login(t, device.id, device.password)
            assert.equal(locked.status, 429)
            assert.equal(locked.headers["retry-after"], "60")
            assert.equal((await store.events({ kind: "rate-limited" })).length, 4)
            assert.equal((await store.events({ kind: "auth-failure" })).length, 10)
        })

        test("a stranger's failures do not lock the device out from another source; the stranger's is limited; counts fade", async () => {
            const { store, registry, t, advance } = await setup("lockout")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            const other = await makeHostDevice()
            await enroll(t, other.enrollment)
            const stranger = inProcessTransport(registry, "10.6.6.6")
            const guesses = async (id: string, n: number) => {
                const statuses: number[] = []
                for (let i = 0; i < n; i++) statuses.push((await login(stranger, id, Buffer.from(`guess${i}`))).status)
                return statuses
            }
            // the device id is public; a stranger tries it a hundred times, and its claim too
            const statuses = await guesses(device.id, 100)
            assert.equal(statuses.filter(s => s === 401).length, DEFAULT_POLICY.limit)
            const mallory = await ownerSession(t, "mallory")
            for (let i = 0; i < 20; i++) await claim(stranger, device.id, `GUESS-${i}`, mallory.token)
            // the device, from where it is, logs in at once, as does its owner's claim
            assert.equal((await login(inProcessTransport(registry, "10.0.0.7"), device.id, device.password)).status, 200)
            const alice = await ownerSession(t, "alice")
            const claimed = await claim(inProcessTransport(registry, "10.0.0.8"), device.id, claimProof(device.claimCode), alice.token)
            assert.equal(claimed.status, 200)
            // the stranger's source is locked, for every device it tries, right password or not
            assert.equal((await login(stranger, other.device.id, other.device.password)).status, 429)
            // lockouts grow while it keeps trying...
            advance(DEFAULT_POLICY.baseLockoutMs + 1)
            await guesses(device.id, DEFAULT_POLICY.limit)
            const second = await login(stranger, other.device.id, other.device.password)
            assert.equal(second.headers["retry-after"], String((2 * DEFAULT_POLICY.baseLockoutMs) / 1000))
            // ...and fade once it stops: a failure window later it starts from zero, two quiet forgiveMs later from the first lockout
            advance(2 * DEFAULT_POLICY.baseLockoutMs + DEFAULT_POLICY.windowMs + 2 * DEFAULT_POLICY.forgiveMs)
            assert.deepEqual(await guesses(device.id, DEFAULT_POLICY.limit - 1), Array(DEFAULT_POLICY.limit - 1).fill(401))
            await guesses(device.id, 1)
            const third = await login(stranger, other.device.id, other.device.password)
            assert.equal(third.headers["retry-after"], String(DEFAULT_POLICY.baseLockoutMs / 1000))
            assert.ok((await store.events({ kind: "rate-limited" })).every(e => e.source === "10.6.6.6"))
        })

        test("enrollments of new ids from one source are limited, with an event; others still enroll, and the limit fades", async () => {
            const { store, registry, t, advance } = await setup("enrollflood")
            const flood = inProcessTransport(registry, "10.6.6.6")
            const statuses: number[] = []
            for (let i = 0; i < ENROLLMENT_POLICY.limit + 10; i++)
                statuses.push((await enroll(flood, (await makeHostDevice()).enrollment)).status)
            assert.deepEqual(statuses, [...Array(ENROLLMENT_POLICY.limit).fill(201), ...Array(10).fill(429)])
            const [event] = await store.events({ kind: "rate-limited" })
            assert.equal(event.source, "10.6.6.6")
            assert.match(event.detail, /^enrollment: limit reached/)
            assert.equal((await enroll(t, (await makeHostDevice()).enrollment)).status, 201)
            advance(ENROLLMENT_POLICY.baseLockoutMs + 1)
            assert.equal((await enroll(flood, (await makeHostDevice()).enrollment)).status, 201)
        })

        test("rate limits are forgotten once nothing is left to remember: window and lockout both older than FORGET_AFTER_MS", async () => {
            // the most lockouts a key keeps is the number that reaches the longest lockout; each takes forgiveMs to forgive
            for (const p of [DEFAULT_POLICY, ENROLLMENT_POLICY]) {
                const kept = Math.ceil(Math.log2(p.maxLockoutMs / p.baseLockoutMs))
                assert.ok(p.maxLockoutMs + kept * p.forgiveMs + p.windowMs <= FORGET_AFTER_MS, JSON.stringify(p))
            }
            const store = await backend.open("forget")
            await store.putRateLimit({ key: "stale", attempts: 1, windowStart: 100, lockedUntil: 200, lockouts: 1 })
            await store.putRateLimit({ key: "locked", attempts: 0, windowStart: 100, lockedUntil: 5000, lockouts: 3 })
            await store.putRateLimit({ key: "counting", attempts: 2, windowStart: 4000, lockedUntil: 0, lockouts: 0 })
            await store.forgetRateLimits(1000)
            assert.deepEqual(await Promise.all(["stale", "locked", "counting"].map(async k => (await store.getRateLimit(k))?.key)), [
                undefined,
                "locked",
                "counting",
            ])
            await store.close()
        })

        test("the claim answer tells nobody who exists: claimed, unclaimed and unknown devices refuse a code alike", async () => {
            const { registry, t } = await setup("claimoracle")
            const [alice, mallory] = [await ownerSession(t, "alice"), await ownerSession(t, "mallory")]
            const claimed = await makeHostDevice()
            await enroll(t, claimed.enrollment)
            assert.equal((await claim(t, claimed.device.id, claimProof(claimed.device.claimCode), alice.token)).status, 200)
            const unclaimed = await makeHostDevice()
            await enroll(t, unclaimed.enrollment)
            const probes: [string, string, string][] = [
                ["a claimed device, a wrong code", claimed.device.id, claimProof("WRONG")],
                ["a claimed device, its old code", claimed.device.id, claimProof(claimed.device.claimCode)],
                ["an unclaimed device, a wrong code", unclaimed.device.id, claimProof("WRONG")],
                ["an unknown device", "0123456789abcdef0123456789abcdef", claimProof("WRONG")],
            ]
            const answers = []
            for (const [i, [, id, proof]] of probes.entries()) {
                // each from its own source, so no probe meets another's rate limit
                const r = await claim(inProcessTransport(registry, `10.9.0.${i + 1}`), id, proof, mallory.token)
                answers.push({ status: r.status, headers: r.headers, body: r.body })
            }
            for (const [i, [what]] of probes.entries()) assert.deepEqual(answers[i], answers[0], what)
            assert.deepEqual(answers[0], { status: 403, headers: {}, body: { error: "claim refused" } })
        })

        test("wrong claim codes are rate-limited like logins", async () => {
            const { store, t } = await setup("claimlimit")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            const mallory = await ownerSession(t, "mallory")
            const statuses = []
            for (let i = 0; i < 8; i++) statuses.push((await claim(t, device.id, `GUESS-${i}`, mallory.token)).status)
            assert.deepEqual(statuses, [403, 403, 403, 403, 403, 429, 429, 429])
            // even the right code waits out the lockout
            assert.equal((await claim(t, device.id, claimProof(device.claimCode), (await ownerSession(t, "alice")).token)).status, 429)
            assert.equal((await store.events({ kind: "rate-limited" })).length, 2)
            assert.equal((await store.events({ kind: "claim-failure" })).length, 5)
        })

        test("a client offering a weaker mechanism is refused and logged", async () => {
            const { store, t } = await setup("downgrade")
            const r = await t("GET", "/v1/session", { authorization: "Basic ZGV2aWNlOnBhc3N3b3Jk" })
            assert.equal(r.status, 401)
            assert.equal(r.headers["www-authenticate"], 'SCRAM-SHA-256 realm="sentinel"')
            assert.equal((await store.events({ kind: "downgrade" })).length, 1)
        })

        test("one source cannot fill the pending SCRAM exchanges: past its bound it is refused, and others still log in", async () => {
            const { registry, store, t, advance } = await setup("exchanges")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            // one subscriber's /64 is one source, whatever addresses it picks inside it
            const statuses: number[] = []
            for (let i = 0; i < 10_001; i++) {
                const flood = inProcessTransport(registry, `2001:db8:6:6::${(i % 0xfff0).toString(16)}`)
                statuses.push((await clientFirst(flood, device.id, `flood${i}`)).status)
            }
            assert.equal(statuses.filter(s => s === 401).length, DEFAULT_EXCHANGE_LIMITS.perSource)
            assert.equal(statuses.filter(s => s === 429).length, 10_001 - DEFAULT_EXCHANGE_LIMITS.perSource)
            assert.ok(DEFAULT_EXCHANGE_LIMITS.perSource * 100 < DEFAULT_EXCHANGE_LIMITS.total)
            // the device, and anyone else, still logs in
            assert.equal((await login(t, device.id, device.password)).status, 200)
            assert.equal((await login(inProcessTransport(registry, "10.0.0.2"), device.id, device.password)).status, 200)
            // one event a refusal, at most EVENT_BURST of them a minute
            assert.equal((await store.events({ kind: "rate-limited" })).length, EVENT_BURST)
            // the source's exchanges expire, and it may try again
            advance(DEFAULT_EXCHANGE_LIMITS.ttlMs + 1)
            assert.equal((await clientFirst(inProcessTransport(registry, "2001:db8:6:6::1"), device.id, "again")).status, 401)
        })

        test("a flood of events of one kind from one source is written EVENT_BURST times a minute, then summed up in one row", async () => {
            const { store, lines, registry, advance } = await setup("eventflood")
            const attacker = inProcessTransport(registry, "10.6.6.6")
            for (let i = 0; i < 600; i++) await attacker("GET", "/v1/session", { authorization: "Basic ZGV2aWNlOnBhc3N3b3Jk" })
            assert.equal((await store.events({ kind: "downgrade" })).length, EVENT_BURST)
            // another source has its own window
            await inProcessTransport(registry, "10.0.0.2")("GET", "/v1/session", { authorization: "Basic eDp5" })
            assert.equal((await store.events({ kind: "downgrade" })).length, EVENT_BURST + 1)
            advance(EVENT_WINDOW_MS)
            await attacker("GET", "/v1/session", { authorization: "Basic ZGV2aWNlOnBhc3N3b3Jk" })
            const rows = await store.events({ kind: "downgrade" })
            assert.equal(rows.length, EVENT_BURST + 3)
            assert.deepEqual(
                rows.slice(-2).map(r => [r.source, r.identity, r.detail]),
                [
                    ["10.6.6.6", "*", "... and 590 more in the last minute"],
                    ["10.6.6.6", "?", "client tried Basic"],
                ]
            )
            assert.equal(lines.length, rows.length)
            assert.equal(
                lines[lines.length - 2],
                "registry event downgrade source=10.6.6.6 identity=*: ... and 590 more in the last minute"
            )
        })

        test("every event field from outside is escaped: a SCRAM username cannot forge a log line or reach a terminal", async () => {
            const { store, lines, t } = await setup("forgery")
            const victim = "0123456789abcdef0123456789abcdef"
            const forged = `x\nregistry event claimed source=10.0.0.9 identity=${victim}: claimed by mallory\r\u001b[2J\u2028\u202e\\x41`
            assert.equal((await login(t, forged, Buffer.from("guess"))).status, 401)
            const [event] = await store.events({ kind: "auth-failure" })
            assert.equal(
                event.identity,
                `x\\nregistry event claimed source=10.0.0.9 identity=${victim}: claimed by mallory\\r\\x1b[2J\\u{2028}\\u{202e}\\\\x41`
            )
            assert.equal(lines.length, 1)
            assert.match(lines[0], /^registry event auth-failure source=10\.0\.0\.1 identity=x\\nregistry event claimed/)
            for (const line of lines) assert.match(line, /^[\x20-\x7e]*$/)
        })

        test("escapeField: printable ASCII stays, everything else is an escape, and long text is cut", () => {
            assert.equal(escapeField("device-01 ok: [a=b]"), "device-01 ok: [a=b]")
            assert.equal(escapeField("a\\b\n\r\t\u0000\u007f\u0085\u00e9\u{1f600}"), "a\\\\b\\n\\r\\t\\x00\\x7f\\x85\\xe9\\u{1f600}")
            for (let code = 0; code < 0x3000; code++) assert.match(escapeField(String.fromCodePoint(code)), /^[\x20-\x7e]+$/)
            const cut = escapeField("\n".repeat(500), 200)
            assert.ok(cut.length <= 200 && cut.endsWith("..."), cut)
        })

        test("an unknown device gets a challenge like a known one, and fails", async () => {
            const { t } = await setup("unknown")
            const r = await login(t, "0".repeat(32), Buffer.from("whatever"))
            assert.equal(r.status, 401)
            assert.match(r.headers["www-authenticate"] ?? "", /realm/)
        })

        // PostgreSQL has no statements to prepare ahead: node-pg sends each query with its parameters
        if (backend.name === "sqlite")
            test("the store prepares its SQL on opening: account, enrollment, claim, login and failed login prepare nothing", async () => {
                const { t } = await setup("prepared")
                const { device, enrollment } = await makeHostDevice()
                const prepare = mock.method(Database.prototype, "prepare")
                try {
                    const alice = await ownerSession(t, "alice")
                    assert.equal((await enroll(t, enrollment)).status, 201)
                    assert.equal((await claim(t, device.id, claimProof(device.claimCode), alice.token)).status, 200)
                    assert.equal((await login(t, device.id, device.password)).status, 200)
                    assert.equal((await login(t, device.id, Buffer.from("wrong"))).status, 401)
                    assert.equal(prepare.mock.callCount(), 0)
                } finally {
                    prepare.mock.restore()
                }
            })

        test("schema migrations run once and are recorded", async () => {
            // numbered 1..N with no gaps: 3 added the update service's tables, 4 the owner accounts, 5 what registries share,
            // 6 the roots and key lists, 7 the registries' broker management logins, 8 the broker logins on PostgreSQL
            assert.deepEqual(
                MIGRATIONS.map(m => m.version),
                [1, 2, 3, 4, 5, 6, 7, 8]
            )
            const latest = MIGRATIONS[MIGRATIONS.length - 1].version
            // two opening at once (two registries starting together) migrate once between them
            const [a, b] = await Promise.all([backend.open("migrate"), backend.open("migrate")])
            assert.deepEqual([await a.schemaVersion(), await b.schemaVersion()], [latest, latest])
            await Promise.all([a.close(), b.close()])
            const c = await backend.open("migrate")
            assert.equal(await c.schemaVersion(), latest)
            await c.close()
        })

        test("a registry's broker management login: its hash seen through every handle on the store, until deleted", async () => {
            const [a, b] = [await backend.open("admins"), await backend.open("admins")]
            const hash = createHash("sha256").update("a password").digest()
            await a.putBrokerAdmin("registry-00000000000000aa", hash, 1)
            assert.deepEqual(await b.brokerAdminHash("registry-00000000000000aa"), hash)
            assert.equal(await b.brokerAdminHash("registry-00000000000000bb"), undefined)
            // a restart under the same name replaces the hash
            const next = createHash("sha256").update("another").digest()
            await b.putBrokerAdmin("registry-00000000000000aa", next, 2)
            assert.deepEqual(await a.brokerAdminHash("registry-00000000000000aa"), next)
            await b.deleteBrokerAdmin("registry-00000000000000aa")
            assert.equal(await a.brokerAdminHash("registry-00000000000000aa"), undefined)
            await Promise.all([a.close(), b.close()])
        })
    })

    describe(`owner accounts on ${backend.name}`, () => {
        test("a taken name is refused, logged and limited: claiming first no longer takes anyone's name", async () => {
            const { store, t } = await setup("squat")
            await ownerSession(t, "alice")
            const statuses = []
            for (let i = 0; i < 7; i++) statuses.push((await registerOwner(t, "alice", randomBytes(32))).status)
            assert.deepEqual(statuses, [409, 409, 409, 409, 409, 429, 429])
            assert.equal((await store.events({ kind: "owner-register-refused" })).length, 5)
            assert.equal((await store.events({ kind: "rate-limited" })).length, 1)
            // the name keeps its first owner's verifier: the squatter's password does not log in
            await assert.rejects(ownerLogin(t, "alice", randomBytes(32)), /HTTP 401/)
        })

        test("claims need an owner session, and belong to its account whatever the body says", async () => {
            const { broker, store, t } = await setup("claim-session")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            const proof = claimProof(device.claimCode)
            assert.equal((await t("POST", "/v1/claim", {}, { id: device.id, code: proof, owner: "alice" })).status, 401)
            assert.equal((await claim(t, device.id, proof, "A".repeat(43))).status, 401)
            const alice = await ownerSession(t, "alice")
            const other = await t(
                "POST",
                "/v1/claim",
                { authorization: `Bearer ${alice.token}` },
                { id: device.id, code: proof, owner: "mallory" }
            )
            assert.equal(other.status, 403)
            assert.equal((await claim(t, device.id, proof, alice.token)).status, 200)
            assert.equal((await store.getDevice(device.id))!.owner, "alice")
            assert.deepEqual(broker.owners.get("alice")?.devices, [device.id])
            // the next login installs the owner's devices with a new password, bound to its client id
            const again = await ownerLogin(t, "alice", alice.password)
            assert.deepEqual(broker.owners.get("alice"), { password: again.broker!.password, devices: [device.id] })
            assert.notEqual(again.broker!.password, alice.broker!.password)
            assert.deepEqual([again.broker!.username, again.broker!.clientId], ["owner-alice", "owner-alice"])
            // session tokens are kept hashed
            await store.close()
            for (const file of await backend.files("claim_session"))
                for (const token of [alice.token, again.token]) assert.equal(file.indexOf(Buffer.from(token)), -1)
        })

        test("owner logins fail and lock out like device logins; the owner's broker login expires", async () => {
            const { broker, store, registry, t, advance } = await setup("owner-login")
            await ownerSession(t, "alice")
            const statuses = []
            for (let i = 0; i < 7; i++)
                statuses.push((await login(t, "alice", randomBytes(32), undefined, undefined, "/v1/owners/session")).status)
            assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429])
            assert.equal((await store.events({ kind: "auth-failure" })).filter(e => e.identity === "alice").length, 5)
            assert.ok((await store.events({ kind: "rate-limited" })).some(e => e.detail.includes("login-owner:alice")))
            advance(61_000)
            assert.deepEqual(await registry.expireBrokerCredentials(), ["owner alice"])
            assert.equal(broker.owners.has("alice"), false)
        })

        test("a name that holds claims from before accounts is taken, unless its old broker login proves them", async () => {
            const { broker, store, t } = await setup("legacy")
            const { device, enrollment } = await makeHostDevice()
            await enroll(t, enrollment)
            assert.ok(await store.claimDevice(device.id, "bob", 0))
            broker.legacy.set("bob", "old-broker-password")
            assert.equal((await registerOwner(t, "bob", randomBytes(32))).status, 409)
            assert.equal((await registerOwner(t, "bob", randomBytes(32), "a-guess")).status, 409)
            const password = randomBytes(32)
            assert.equal((await registerOwner(t, "bob", password, "old-broker-password")).status, 201)
            await ownerLogin(t, "bob", password)
            assert.deepEqual(broker.owners.get("bob")?.devices, [device.id])
        })
    })
}
