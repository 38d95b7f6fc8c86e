/**
 * The registry as RabbitMQ's auth backend (devs/broker/rabbitmq-auth.ts),
 * on a one-node cluster started here with the registry's stack:
 *
 * 1. Each rule allowed and refused, asked as a node asks (HTTPS with the
 *    broker's client certificate): device logins bound to their client id,
 *    device and owner topics, session queues, the exchange, the registry's
 *    management login; malformed requests, and a caller without the client
 *    certificate, are refused; every refusal is a security event.
 * 2. Through the broker, with MQTT: a device and its owner exchange messages;
 *    another client id, another device's topic, another owner's device and an
 *    expired password are refused; an expired password's live session is
 *    closed by the registry.
 */
import assert from "node:assert/strict"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { request } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import mqtt, { type IClientOptions, type MqttClient } from "mqtt"
import { claimProof } from "../../devs/owner/keys.ts"
import { claim, enroll, httpsTransport, login, ownerLogin, type Transport } from "../../devs/registry/client.ts"
import { makeHostDevice, type HostDevice } from "../../devs/sim/host-device.ts"
import { until } from "../../devs/sim/until.ts"
import { startClusterStack, type ClusterStack } from "../../devs/stack/cluster.ts"
import { ensureClientCertificate } from "../../devs/stack/pki.ts"
import { ownerSession } from "./support/owner.ts"

const dir = mkdtempSync(join(tmpdir(), "broker-auth-"))
/** Broker passwords live 6 s here: long enough for each step, short enough to watch one expire. */
const TTL_MS = 6000
let stack: ClusterStack
let ca: Buffer
let registry: Transport
/** Two devices of alice, one of bob. */
let a1: HostDevice, a2: HostDevice, b1: HostDevice
/** The owners' broker logins, renewed by `ownerLogins` (they live TTL_MS, as the devices' do). */
let alice: { username: string; password: string }
let bob: { username: string; password: string }
const ownerPasswords = new Map<string, Buffer>()

before(async () => {
    stack = await startClusterStack({ dir, nodes: 1, brokerTokenTtlMs: TTL_MS })
    ca = readFileSync(stack.pki.caCert)
    registry = httpsTransport(`https://localhost:${stack.registryPort}`, ca)
    for (const name of ["alice", "bob"]) ownerPasswords.set(name, (await ownerSession(registry, name)).password)
    const owned = async (owner: string) => {
        const { device, enrollment } = await makeHostDevice()
        assert.equal((await enroll(registry, enrollment)).status, 201)
        const { token } = await ownerLogin(registry, owner, ownerPasswords.get(owner)!)
        assert.equal((await claim(registry, device.id, claimProof(device.claimCode), token)).status, 200)
        return device
    }
    a1 = await owned("alice")
    a2 = await owned("alice")
    b1 = await owned("bob")
})

after(async () => {
    await stack?.stop()
    rmSync(dir, { recursive: true, force: true })
})

/** Fresh broker logins of both owners, from their SCRAM logins: the earlier ones may have expired. */
async function ownerLogins() {
    const broker = async (name: string) => {
        const { broker } = await ownerLogin(registry, name, ownerPasswords.get(name)!)
        assert.ok(broker, `the registry gave ${name} a broker login`)
        return broker
    }
    alice = await broker("alice")
    bob = await broker("bob")
}

/** A fresh broker password for `device`, from a SCRAM login. */
async function grant(device: HostDevice) {
    const reply = await login(registry, device.id, device.password)
    assert.equal(reply.status, 200)
    return reply.body.broker as { host: string; port: number; username: string; password: string }
}

/** Asks the backend as a node does: HTTPS, the broker's client certificate (unless `anonymous`). */
function ask(path: string, fields: Record<string, string> | string, anonymous = false): Promise<{ status: number; body: string }> {
    const client = ensureClientCertificate(stack.pki, "sentinel-broker")
    const body = typeof fields === "string" ? fields : new URLSearchParams(fields).toString()
    return new Promise((resolve, reject) => {
        const req = request(
            {
                host: "localhost",
                port: stack.authPort,
                path,
                method: "POST",
                ca,
                // another source than the nodes' (127.0.0.1): security events are limited per kind and source
                localAddress: "127.0.0.2",
                ...(anonymous ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
                headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) },
            },
            res => {
                let text = ""
                res.on("data", c => (text += c))
                res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }))
            }
        )
        req.on("error", reject)
        req.end(body)
    })
}

const events = (kind: string) => stack.registry.store.events({ kind })

/** A topic check as the MQTT plugin sends it. */
const topic = (username: string, permission: string, routingKey: string, clientId = username) => ({
    username,
    vhost: "/",
    resource: "topic",
    name: "amq.topic",
    permission,
    tags: "",
    routing_key: routingKey,
    "variable_map.client_id": clientId,
    "variable_map.username": username,
    "variable_map.vhost": "/",
})
const resource = (username: string, kind: string, name: string, permission: string) => ({
    username,
    vhost: "/",
    resource: kind,
    name,
    permission,
    tags: "",
    client_id: username,
})

describe("auth backend rules", () => {
    test("device logins: the right password under its own client id only, until it expires", async () => {
        const g = await grant(a1)
        const user = (over: Record<string, string>) =>
            ask("/user", { username: a1.id, password: g.password, vhost: "/", client_id: a1.id, ...over })
        assert.equal((await user({})).body, "allow")
        const refusedBefore = (await events("broker-login-refused")).length
        assert.equal((await user({ password: g.password + "x" })).body, "deny")
        assert.equal((await user({ client_id: a2.id })).body, "deny", "another client id")
        assert.equal((await user({ client_id: "" })).body, "deny", "no client id")
        assert.equal(
            (await ask("/user", { username: b1.id, password: g.password, vhost: "/", client_id: b1.id })).body,
            "deny",
            "another login"
        )
        assert.equal((await ask("/user", { username: "admin", password: "guest", vhost: "/", client_id: "admin" })).body, "deny")
        const refused = (await events("broker-login-refused")).slice(refusedBefore)
        assert.equal(refused.length, 5)
        assert.ok(
            refused.every(e => !e.detail.includes(g.password)),
            "no password in an event"
        )
        assert.ok(refused.some(e => /client id/.test(e.detail) && e.identity === a1.id))
        // a password past its expiry is refused by the backend itself, whether or not the registry has revoked it yet
        await stack.access.grant(a1.id, "expired-password", Date.now() - 1)
        const expired = await ask("/user", { username: a1.id, password: "expired-password", vhost: "/", client_id: a1.id })
        assert.equal(expired.body, "deny")
        assert.ok((await events("broker-login-refused")).some(e => e.identity === a1.id && e.detail === "user: password expired"))
        // vhost: only "/", under the login's client id
        await grant(a1)
        assert.equal((await ask("/vhost", { username: a1.id, vhost: "/", ip: "127.0.0.1", tags: "", client_id: a1.id })).body, "allow")
        assert.equal((await ask("/vhost", { username: a1.id, vhost: "other", ip: "127.0.0.1", tags: "", client_id: a1.id })).body, "deny")
    })

    test("device topics: write its up, read its down, nothing else", async () => {
        await grant(a1)
        const t = async (permission: string, key: string, clientId?: string) =>
            (await ask("/topic", topic(a1.id, permission, key, clientId))).body
        assert.equal(await t("write", `things.${a1.id}.up.readings`), "allow")
        assert.equal(await t("read", `things.${a1.id}.down.#`), "allow")
        const before = (await events("broker-acl-refused")).length
        assert.equal(await t("read", `things.${a1.id}.up.readings`), "deny")
        assert.equal(await t("write", `things.${a1.id}.down.command`), "deny")
        assert.equal(await t("write", `things.${a2.id}.up.readings`), "deny", "another device's topic")
        assert.equal(await t("read", `things.*.down.#`), "deny", "a wildcard over devices")
        assert.equal(await t("read", `things.#`), "deny")
        assert.equal(await t("write", `things.${a1.id}.up`), "deny", "the prefix alone")
        assert.equal(await t("write", `things.${a1.id}.up.readings`, a2.id), "deny", "under another client id")
        assert.equal((await events("broker-acl-refused")).length - before, 7)
    })

    test("owner topics: read up and write down of each device it owns, never another owner's", async () => {
        await ownerLogins()
        const t = async (permission: string, key: string) => (await ask("/topic", topic(alice.username, permission, key))).body
        for (const d of [a1, a2]) {
            assert.equal(await t("read", `things.${d.id}.up.#`), "allow")
            assert.equal(await t("write", `things.${d.id}.down.command`), "allow")
            assert.equal(await t("write", `things.${d.id}.up.readings`), "deny")
            assert.equal(await t("read", `things.${d.id}.down.#`), "deny")
        }
        assert.equal(await t("read", `things.${b1.id}.up.#`), "deny", "bob's device")
        assert.equal(await t("write", `things.${b1.id}.down.command`), "deny")
        assert.equal((await ask("/topic", topic(bob.username, "read", `things.${b1.id}.up.#`))).body, "allow")
        const user = (password: string, clientId: string) =>
            ask("/user", { username: alice.username, password, vhost: "/", client_id: clientId })
        assert.equal((await user(alice.password, alice.username)).body, "allow")
        assert.equal((await user(bob.password, alice.username)).body, "deny")
        assert.equal((await user(alice.password, a1.id)).body, "deny", "an owner login under a device's client id")
    })

    test("resources: the MQTT exchange to read and write, and only the login's own session queues", async () => {
        await grant(a1)
        const r = async (kind: string, name: string, permission: string) =>
            (await ask("/resource", resource(a1.id, kind, name, permission))).body
        assert.equal(await r("exchange", "amq.topic", "write"), "allow")
        assert.equal(await r("exchange", "amq.topic", "read"), "allow")
        assert.equal(await r("exchange", "amq.topic", "configure"), "deny")
        assert.equal(await r("exchange", "amq.fanout", "write"), "deny")
        for (const p of ["configure", "read", "write"]) {
            assert.equal(await r("queue", `mqtt-subscription-${a1.id}qos1`, p), "allow")
            assert.equal(await r("queue", `mqtt-subscription-${a1.id}qos0`, p), "allow")
        }
        assert.equal(await r("queue", `mqtt-subscription-${a2.id}qos1`, "read"), "deny", "another device's session queue")
        assert.equal(await r("queue", `mqtt-subscription-${alice.username}qos1`, "read"), "deny")
        assert.equal(await r("queue", "amq.gen-x", "configure"), "deny")
    })

    test("the registry's management login: administrator without a client id, nothing over MQTT, no topics", async () => {
        // the registry's own admin password is in its memory only; a wrong one is refused, and so is any MQTT use of the name
        const admin = stack.adminUsername
        assert.match(admin, /^registry-[0-9a-f]{16}$/)
        assert.equal((await ask("/user", { username: admin, password: "guess", vhost: "/" })).body, "deny")
        assert.equal((await ask("/topic", topic(admin, "read", `things.${a1.id}.up.#`))).body, "deny")
        assert.equal((await ask("/resource", resource(admin, "queue", "q", "read"))).body, "deny")
        // a name of the shape that no registry registered
        assert.equal((await ask("/vhost", { username: "registry-0123456789abcdef", vhost: "/" })).body, "deny")
        // the registry closes sessions with it (the expiry test below), so the broker accepted it with the administrator tag
    })

    test("malformed requests and callers without the broker's certificate are refused, as security events", async () => {
        await ownerLogins()
        const before = (await events("broker-auth-malformed")).length
        assert.equal((await ask("/users", { username: a1.id })).status, 404)
        assert.equal((await ask("/topic", `username=${a1.id}&username=${a2.id}`)).status, 400, "a repeated field")
        assert.equal((await ask("/topic", `username=${"x".repeat(600)}`)).status, 400, "an overlong field")
        assert.equal((await ask("/topic", `username=%00${a1.id}`)).status, 400, "a control character")
        assert.equal((await ask("/topic", "a=".padEnd(5000, "b"))).status, 413)
        assert.equal((await events("broker-auth-malformed")).length - before, 5)
        const tlsBefore = (await events("broker-auth-tls-refused")).length
        await assert.rejects(ask("/user", { username: a1.id, password: "x", vhost: "/", client_id: a1.id }, true))
        await until("the TLS refusal as an event", async () => (await events("broker-auth-tls-refused")).length > tlsBefore, 5000)
        // and the backend still answers
        assert.equal((await ask("/topic", topic(bob.username, "read", `things.${b1.id}.up.#`))).body, "allow")
    })
})

/** Connects once (no reconnects); resolves with the client, or with the CONNACK code or error that refused it. */
function connect(port: number, options: IClientOptions): Promise<{ client: MqttClient } | { refused: string }> {
    return new Promise(resolve => {
        const client = mqtt.connect(`mqtts://localhost:${port}`, {
            ca,
            protocolVersion: 4,
            reconnectPeriod: 0,
            connectTimeout: 10_000,
            ...options,
        })
        const refuse = (why: string) => {
            client.end(true)
            resolve({ refused: why })
        }
        client.once("connect", () => resolve({ client }))
        client.once("error", e => refuse(`${(e as { code?: number }).code ?? ""} ${e.message}`))
        client.once("close", () => refuse("closed"))
    })
}

/** Why a connection was refused, for an assertion's message ("" when it connected). */
const why = (r: { client: MqttClient } | { refused: string }) => ("refused" in r ? r.refused : "connected")

/** Resolves once `client` is closed (true), or after `ms` (false). */
function closedWithin(client: MqttClient, ms: number): Promise<boolean> {
    return new Promise(resolve => {
        if (!client.connected) return resolve(true)
        const timer = setTimeout(() => resolve(false), ms)
        client.once("close", () => {
            clearTimeout(timer)
            resolve(true)
        })
    })
}

describe("through the broker", () => {
    test("a device and its owner exchange messages; other client ids, topics and devices are refused", async () => {
        const port = stack.cluster.mqttEndpoints[0].port
        await ownerLogins()
        const owner = await connect(port, { ...alice, clientId: alice.username, clean: false })
        assert.ok("client" in owner, why(owner))
        const got: string[] = []
        owner.client.on("message", (t, p) => got.push(`${t} ${p}`))
        await owner.client.subscribeAsync(`things/${a1.id}/up/#`, { qos: 1 })
        try {
            const g = await grant(a1)
            const device = await connect(port, { username: a1.id, password: g.password, clientId: a1.id })
            assert.ok("client" in device, why(device))
            await device.client.subscribeAsync(`things/${a1.id}/down/#`, { qos: 0 })
            await device.client.publishAsync(`things/${a1.id}/up/readings`, "hello", { qos: 1 })
            await until("the owner to get the reading", () => got.includes(`things/${a1.id}/up/readings hello`), 10_000)

            // the same password under another client id: CONNACK 4 (bad user name or password)
            const other = await connect(port, { username: a1.id, password: g.password, clientId: a2.id })
            assert.ok("refused" in other && /^4 /.test(other.refused), why(other))
            // publishing on another device's topic ends the session (MQTT 3.1.1 has no negative PUBACK)
            void device.client.publishAsync(`things/${a2.id}/up/readings`, "forged", { qos: 1 }).catch(() => {})
            assert.ok(await closedWithin(device.client, 10_000), "the session ends at a forbidden publish")
            device.client.end(true)
            assert.ok(!got.some(l => l.includes("forged")))

            // an owner subscribing to a device it does not own is cut off too
            const bobs = await connect(port, { ...bob, clientId: bob.username })
            assert.ok("client" in bobs, why(bobs))
            void bobs.client.subscribeAsync(`things/${a1.id}/up/#`, { qos: 1 }).catch(() => {})
            assert.ok(await closedWithin(bobs.client, 10_000), "the session ends at a forbidden subscription")
            bobs.client.end(true)
        } finally {
            await owner.client.endAsync()
        }
        assert.ok((await events("broker-acl-refused")).some(e => e.identity === a1.id && e.detail.includes(`things.${a2.id}.up`)))
        assert.ok((await events("broker-acl-refused")).some(e => e.identity === bob.username && e.detail.includes(a1.id)))
    })

    test("an expired password: its live session is closed by the registry, and it no longer logs in", async () => {
        const port = stack.cluster.mqttEndpoints[0].port
        const asked = Date.now()
        const g = await grant(a2)
        const device = await connect(port, { username: a2.id, password: g.password, clientId: a2.id })
        assert.ok("client" in device, why(device))
        // the registry checks expiries every second and then asks the management API to close the session
        assert.ok(await closedWithin(device.client, TTL_MS + 10_000), "the session was closed")
        const closedAfter = Date.now() - asked
        device.client.end(true)
        assert.ok(closedAfter >= TTL_MS, `closed ${closedAfter} ms after the login, before the password expired`)
        console.log(`measured broker-expiry: session closed ${((closedAfter - TTL_MS) / 1000).toFixed(1)} s after its password expired`)
        const again = await connect(port, { username: a2.id, password: g.password, clientId: a2.id })
        assert.ok("refused" in again && /^4 /.test(again.refused), why(again))
    })
})
