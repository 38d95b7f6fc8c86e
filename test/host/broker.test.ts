/**
 * Broker access with the real Mosquitto: a claimed device's SCRAM login yields
 * an expiring password installed through dynamic security, which opens an MQTT
 * session over TLS limited to the device's own topics, and stops working once
 * it expires. An owner's login, issued at its SCRAM login, works only under
 * its own client id and only on its devices' topics.
 */
import assert from "node:assert/strict"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import mqtt from "mqtt"
import { Registry } from "../../devs/registry/app.ts"
import { claimProof } from "../../devs/owner/keys.ts"
import { claim, enroll, inProcessTransport, login, ownerLogin, type OwnerLogin, type Transport } from "../../devs/registry/client.ts"
import { SqliteStore } from "../../devs/registry/store.ts"
import { makeHostDevice } from "../../devs/sim/host-device.ts"
import { ManualClock } from "./support/clock.ts"
import { MosquittoDynsec } from "../../devs/broker/dynsec.ts"
import { startMosquitto, type MosquittoInstance } from "../../devs/broker/mosquitto.ts"
import { ensurePki } from "../../devs/stack/pki.ts"
import { freePort } from "../../devs/net/ports.ts"
import { ownerSession } from "./support/owner.ts"

const dir = mkdtempSync(join(tmpdir(), "broker-test-"))
let broker: MosquittoInstance
let dynsec: MosquittoDynsec
let ca: Buffer
const clock = new ManualClock(Date.now())
let registry: Registry
let t: Transport
let alice: OwnerLogin & { password: Buffer }

before(async () => {
    const pki = ensurePki(join(dir, "pki"))
    ca = readFileSync(pki.caCert)
    broker = await startMosquitto({
        dir: join(dir, "mosquitto"),
        port: await freePort(),
        tls: { cert: pki.serverCert, key: pki.serverKey },
    })
    dynsec = new MosquittoDynsec({ host: "127.0.0.1", port: broker.port }, broker.admin, ca)
    registry = new Registry({ store: new SqliteStore(":memory:"), broker: dynsec, clock: clock.now, brokerTokenTtlMs: 60_000 })
    t = inProcessTransport(registry)
    alice = await ownerSession(t, "alice")
})

after(async () => {
    await dynsec?.close()
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
})

/** An MQTT 3.1.1 session over TLS; a login's client id is its username unless `clientId` says otherwise. */
function connect(username?: string, password?: string, clientId = username) {
    return mqtt.connectAsync(`mqtts://localhost:${broker.port}`, {
        ca,
        username,
        password,
        clientId,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
    })
}

/** A device enrolled, claimed by `owner` (alice unless said) and logged in. */
async function claimedDevice(owner = alice) {
    const { device, enrollment } = await makeHostDevice()
    assert.equal((await enroll(t, enrollment)).status, 201)
    assert.equal((await claim(t, device.id, claimProof(device.claimCode), owner.token)).status, 200)
    const session = await login(t, device.id, device.password)
    return { device, creds: session.body.broker as { username: string; password: string; expiresAt: number } }
}

describe("broker access through Mosquitto dynamic security", () => {
    test("anonymous and unknown logins are refused", async () => {
        await assert.rejects(connect())
        await assert.rejects(connect("nobody", "nothing"))
    })

    test("enrollment → claim → token → MQTT CONNECT accepted over TLS", async () => {
        const { device, creds } = await claimedDevice()
        const client = await connect(creds.username, creds.password)
        assert.ok(client.connected)
        await client.publishAsync(`things/${device.id}/up/readings`, "x", { qos: 1 })
        await client.endAsync()
    })

    test("a device can only use its own topics", async () => {
        const a = await claimedDevice()
        const b = await claimedDevice()
        const watcher = await connect(b.creds.username, b.creds.password)
        const granted = await watcher.subscribeAsync(`things/${b.device.id}/down/#`)
        assert.equal(granted[0].qos, 0)
        // the broker answers 0x80 (failure) for topics outside the device's own
        await assert.rejects(watcher.subscribeAsync(`things/${a.device.id}/down/#`), /Subscribe error/)
        await assert.rejects(watcher.subscribeAsync("things/#"), /Subscribe error/)
        const seen: string[] = []
        watcher.on("message", topic => seen.push(topic))
        const attacker = await connect(a.creds.username, a.creds.password)
        // publishing into another device's downlink is silently dropped by the broker (MQTT 3.1.1 has no error for it)
        await attacker.publishAsync(`things/${b.device.id}/down/cmd`, "forged", { qos: 1 })
        await new Promise(r => setTimeout(r, 300))
        assert.deepEqual(seen, [])
        await attacker.endAsync()
        await watcher.endAsync()
    })

    test("a login may use only its own client id: another device's or an owner's login with the victim's id is refused", async () => {
        const carol = await ownerSession(t, "carol")
        const victim = await claimedDevice(carol)
        const other = await claimedDevice(carol)
        const carolsLogin = (await ownerLogin(t, "carol", carol.password)).broker!
        const session = await connect(victim.creds.username, victim.creds.password)
        let dropped = false
        session.on("close", () => (dropped = true))
        // the device id is public: it is in every topic name
        await assert.rejects(connect(other.creds.username, other.creds.password, victim.device.id), /Not authorized/)
        await assert.rejects(connect(carolsLogin.username, carolsLogin.password, victim.device.id), /Not authorized/)
        // nor may a device's own login squat another id
        await assert.rejects(connect(victim.creds.username, victim.creds.password, other.device.id), /Not authorized/)
        await new Promise(r => setTimeout(r, 300))
        assert.equal(dropped, false, "the victim's session was dropped")
        assert.ok(session.connected)
        await session.publishAsync(`things/${victim.device.id}/up/readings`, "still here", { qos: 1 })
        // and the owner connects under its own id
        const owner = await connect(carolsLogin.username, carolsLogin.password)
        await owner.endAsync()
        await session.endAsync()
    })

    test("the token is refused after expiry, and its session is dropped", async () => {
        const { creds } = await claimedDevice()
        const client = await connect(creds.username, creds.password)
        const closed = new Promise<void>(r => client.once("close", () => r()))
        clock.advance(61_000)
        assert.ok((await registry.expireBrokerCredentials()).includes(creds.username))
        await closed
        await assert.rejects(connect(creds.username, creds.password))
        client.end(true)
    })

    test("an owner's broker login works under its own client id only, on its own devices' topics", async () => {
        const mine = await claimedDevice()
        const login = await ownerLogin(t, "alice", alice.password)
        const b = login.broker!
        // the login's client id is its username, which the registry names too
        assert.equal(b.clientId, b.username)
        await assert.rejects(connect(b.username, b.password, "mqttjs_0a1b2c3d"), /Not authorized/)
        await assert.rejects(connect(b.username, b.password, "owner-alice-2"), /Not authorized/)
        const owner = await connect(b.username, b.password, b.clientId)
        const ups: string[] = []
        owner.on("message", topic => ups.push(topic))
        assert.equal((await owner.subscribeAsync(`things/${mine.device.id}/up/#`, { qos: 1 }))[0].qos, 1)
        // another owner's device: refused (SUBACK 0x80)
        const bob = await ownerSession(t, "bob")
        const theirs = await makeHostDevice()
        await enroll(t, theirs.enrollment)
        await claim(t, theirs.device.id, claimProof(theirs.device.claimCode), bob.token)
        await assert.rejects(owner.subscribeAsync(`things/${theirs.device.id}/up/#`, { qos: 1 }), /Subscribe error/)
        const device = await connect(mine.creds.username, mine.creds.password)
        await device.publishAsync(`things/${mine.device.id}/up/readings`, "sealed", { qos: 1 })
        const until = Date.now() + 5000
        while (!ups.length && Date.now() < until) await new Promise(r => setTimeout(r, 20))
        assert.deepEqual(ups, [`things/${mine.device.id}/up/readings`])
        await Promise.all([owner.endAsync(), device.endAsync()])
    })

    test("an owner's renewed login keeps its session: what its devices publish meanwhile is delivered after it reconnects", async () => {
        const mine = await claimedDevice()
        const first = (await ownerLogin(t, "alice", alice.password)).broker!
        const session = { clean: false, protocolVersion: 4 as const, reconnectPeriod: 0, ca, clientId: first.clientId }
        const url = `mqtts://localhost:${broker.port}`
        const owner = await mqtt.connectAsync(url, { ...session, username: first.username, password: first.password })
        await owner.subscribeAsync(`things/${mine.device.id}/up/#`, { qos: 1 })
        const dropped = new Promise<void>(r => owner.once("close", () => r()))
        const renewed = (await ownerLogin(t, "alice", alice.password)).broker!
        await dropped
        owner.end(true)
        // the old password no longer works; while the owner is away its device publishes
        await assert.rejects(mqtt.connectAsync(url, { ...session, username: first.username, password: first.password }))
        const device = await connect(mine.creds.username, mine.creds.password)
        await device.publishAsync(`things/${mine.device.id}/up/readings`, "while away", { qos: 1 })
        await device.endAsync()
        const back = await mqtt.connectAsync(url, { ...session, username: renewed.username, password: renewed.password })
        const got = await new Promise<string>(resolve => back.once("message", (_t, p) => resolve(p.toString())))
        assert.equal(got, "while away")
        await back.endAsync()
    })
})
