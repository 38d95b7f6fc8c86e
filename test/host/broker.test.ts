/**
 * Broker access with the real Mosquitto: a claimed device's SCRAM login yields
 * an expiring password installed through dynamic security, which opens an MQTT
 * session over TLS limited to the device's own topics, and stops working once
 * it expires.
 */
import assert from "node:assert/strict"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import mqtt from "mqtt"
import { Registry } from "../../devs/registry/app.ts"
import { claimProof } from "../../devs/owner/keys.ts"
import { claim, enroll, inProcessTransport, login, type Transport } from "../../devs/registry/client.ts"
import { SqliteStore } from "../../devs/registry/store.ts"
import { makeHostDevice } from "../../devs/sim/host-device.ts"
import { ManualClock } from "./support/clock.ts"
import { MosquittoDynsec } from "../../devs/broker/dynsec.ts"
import { startMosquitto, type MosquittoInstance } from "../../devs/broker/mosquitto.ts"
import { ensurePki } from "../../devs/stack/pki.ts"
import { freePort } from "../../devs/net/ports.ts"

const dir = mkdtempSync(join(tmpdir(), "broker-test-"))
let broker: MosquittoInstance
let dynsec: MosquittoDynsec
let ca: Buffer
const clock = new ManualClock(Date.now())
let registry: Registry
let t: Transport

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

/** A device enrolled, claimed by `owner` and logged in; `owner` is the owner's broker login if this was the owner's first claim. */
async function claimedDevice(owner = "alice") {
    const { device, enrollment } = await makeHostDevice()
    assert.equal((await enroll(t, enrollment)).status, 201)
    const claimed = await claim(t, device.id, claimProof(device.claimCode), owner)
    assert.equal(claimed.status, 200)
    const session = await login(t, device.id, device.password)
    return {
        device,
        creds: session.body.broker as { username: string; password: string; expiresAt: number },
        owner: claimed.body.broker as { username: string; password: string } | undefined,
    }
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
        const victim = await claimedDevice("carol")
        const other = await claimedDevice("carol")
        assert.ok(victim.owner, "carol's first claim hands over her broker login")
        const session = await connect(victim.creds.username, victim.creds.password)
        let dropped = false
        session.on("close", () => (dropped = true))
        // the device id is public: it is in every topic name
        await assert.rejects(connect(other.creds.username, other.creds.password, victim.device.id), /Not authorized/)
        await assert.rejects(connect(victim.owner.username, victim.owner.password, victim.device.id), /Not authorized/)
        // nor may a device's own login squat another id
        await assert.rejects(connect(victim.creds.username, victim.creds.password, other.device.id), /Not authorized/)
        await new Promise(r => setTimeout(r, 300))
        assert.equal(dropped, false, "the victim's session was dropped")
        assert.ok(session.connected)
        await session.publishAsync(`things/${victim.device.id}/up/readings`, "still here", { qos: 1 })
        // and the owner connects under its own id
        const owner = await connect(victim.owner.username, victim.owner.password)
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
})
