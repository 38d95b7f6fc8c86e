/**
 * The local bridge: readings sealed as a device seals them are verified and
 * republished to a plain local Mosquitto in Home Assistant discovery format;
 * nothing key-like reaches the local broker, and rejected messages are not bridged.
 */
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { after, before, test } from "node:test"
import { encode } from "cbor2"
import mqtt, { type MqttClient } from "mqtt"
import { HomeAssistantBridge } from "../../devs/owner/bridge.ts"
import { sealEncrypt0 } from "../../devs/owner/cose.ts"
import { channelKeys } from "../../devs/owner/keys.ts"
import { RejectReason, ReplayWindow, UplinkVerifier, type Rejected } from "../../devs/owner/verifier.ts"
import { freePort, waitForPort } from "../../devs/net/ports.ts"
import { until } from "../../devs/sim/until.ts"

let port: number
let broker: ReturnType<typeof spawn>
let local: MqttClient

before(async () => {
    port = await freePort()
    // Mosquitto 2 without a config file: anonymous, loopback only, like a small home broker
    broker = spawn("mosquitto", ["-p", String(port)], { stdio: "ignore" })
    await waitForPort(port, 10_000)
    local = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`)
})

after(async () => {
    await local?.endAsync()
    broker?.kill("SIGTERM")
})

test("verified readings appear as Home Assistant sensors on the local broker, without any key", async () => {
    const id = randomBytes(16).toString("hex")
    const root = randomBytes(32)
    const followed = { up: channelKeys(root, id, "up"), window: new ReplayWindow() }
    const verifier = new UplinkVerifier(d => (d === id ? followed : undefined))
    const bridge = new HomeAssistantBridge(local)

    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`)
    const got = new Map<string, string>()
    watcher.on("message", (topic, payload) => got.set(topic, payload.toString("utf8")))
    await watcher.subscribeAsync(["homeassistant/#", "sentinel/#"])

    const topic = `things/${id}/up/readings`
    const keys = channelKeys(root, id, "up")
    const pack = [
        new Map<number, unknown>([
            [-2, `urn:dev:sentinel:${id}:`],
            [0, "shtc3/temperature"],
            [1, "Cel"],
            [2, 21.5],
            [6, -1],
        ]),
        new Map<number, unknown>([
            [0, "shtc3/humidity"],
            [1, "%RH"],
            [2, 44],
        ]),
        new Map<number, unknown>([
            [0, "shtc3/faults"],
            [2, 3],
        ]),
    ]
    const seal = (counter: number, p: unknown[]) =>
        sealEncrypt0(Buffer.from(encode(p)), {
            key: keys.key,
            kid: keys.kid,
            contextIv: keys.contextIv,
            counter,
            externalAad: Buffer.from(topic),
        })
    const message = await seal(0, pack)
    const verified = verifier.verify(topic, message)
    assert.equal(verified.kind, "readings")
    await bridge.publish({
        deviceId: id,
        readings: verified.kind === "readings" ? verified.readings.map(r => ({ name: r.name, value: r.value! })) : [],
    })
    // a replay and a forgery are rejected before the bridge sees them
    assert.throws(
        () => verifier.verify(topic, message),
        (e: Rejected) => e.reason === RejectReason.Replayed
    )
    const forged = await sealEncrypt0(Buffer.from(encode(pack)), {
        key: randomBytes(32),
        kid: keys.kid,
        contextIv: keys.contextIv,
        counter: 5,
        externalAad: Buffer.from(topic),
    })
    assert.throws(
        () => verifier.verify(topic, forged),
        (e: Rejected) => e.reason === RejectReason.Forged
    )

    await until("two discovery configs and two values on the local broker", () => got.size >= 4, 5000)
    const config = JSON.parse(got.get(`homeassistant/sensor/sentinel_${id}/shtc3_temperature/config`)!)
    assert.equal(config.state_topic, `sentinel/${id}/shtc3/temperature`)
    assert.equal(config.unit_of_measurement, "°C")
    assert.equal(config.device_class, "temperature")
    assert.equal(config.unique_id, `sentinel_${id}_shtc3_temperature`)
    assert.equal(got.get(`sentinel/${id}/shtc3/temperature`), "21.5")
    assert.equal(got.get(`sentinel/${id}/shtc3/humidity`), "44")
    // counters are not sensors
    assert.ok(![...got.keys()].some(t => t.includes("faults")))
    const everything = [...got.entries()].flat().join("\n")
    for (const secret of [root.toString("hex"), keys.key.toString("hex"), keys.contextIv.toString("hex")])
        assert.ok(!everything.includes(secret))
    await watcher.endAsync()
})
