/**
 * Uplink benchmarks (printed, never asserted):
 * - bytes on the wire per reading: each PUBLISH the device sent (COSE_Encrypt0
 *   of SenML-CBOR), against the same readings as SenML-JSON in a PUBLISH;
 * - latency sensor -> consumer: from the reading's time (the device's seal
 *   time on the host clock plus the reading's relative SenML time) to its
 *   arrival at the owner, verified; also seal -> consumer alone.
 * The owner service's throughput is in ./owner.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decode } from "cbor2"
import mqtt from "mqtt"
import { openEncrypt0 } from "../owner/cose.ts"
import { channelKeys } from "../owner/keys.ts"
import { senmlJson } from "../owner/senml.ts"
import { ReplayWindow, UplinkVerifier } from "../owner/verifier.ts"
import { startLocalStack } from "../stack/local.ts"
import { freePort } from "../net/ports.ts"
import { SimulatedDevice } from "../sim/simulated-device.ts"
import { until } from "../sim/until.ts"

/** Size of an MQTT 3.1.1 QoS 1 PUBLISH (§3.3): fixed header, topic, packet id, payload. */
function publishBytes(topic: string, payload: number): number {
    const remaining = 2 + Buffer.byteLength(topic) + 2 + payload
    return 1 + (remaining < 128 ? 1 : remaining < 16384 ? 2 : 3) + remaining
}

function percentile(sorted: number[], p: number): number {
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** Runs the firmware against a local stack for about a minute and measures what reached the owner. */
export async function uplinkWireAndLatency() {
    const dir = mkdtempSync(join(tmpdir(), "bench-uplink-"))
    const stack = await startLocalStack({ dir, brokerPort: await freePort(), onLog: () => {} })
    const wire: { topic: string; payload: Buffer }[] = []
    const spy = await mqtt.connectAsync(`mqtts://localhost:${stack.broker.port}`, {
        ...stack.broker.admin,
        ca: readFileSync(stack.pki.caCert),
    })
    await spy.subscribeAsync("things/+/up/readings", { qos: 1 })
    spy.on("message", (topic, payload) => wire.push({ topic, payload: Buffer.from(payload) }))
    const device = new SimulatedDevice({ stack, dir, transcript: [] })
    device.run()
    let root: Buffer
    try {
        await until("30 reading messages", () => device.verified.filter(m => m.kind === "readings").length >= 30, 240_000)
        root = device.root
    } finally {
        await device.stop()
        await spy.endAsync()
        await stack.stop()
    }
    // bytes: what the broker carried, against SenML-JSON of the very same records
    const keys = channelKeys(root, device.id, "up")
    const replayFree = { up: keys, window: new ReplayWindow() }
    const verifier = new UplinkVerifier(id => (id === device.id ? replayFree : undefined))
    let coseWire = 0
    let jsonWire = 0
    let readings = 0
    for (const m of wire) {
        const v = verifier.verify(m.topic, m.payload)
        if (v.kind !== "readings") continue
        const plain = await openEncrypt0(m.payload, { key: keys.key, contextIv: keys.contextIv, externalAad: Buffer.from(m.topic) })
        const pack = decode(plain.plaintext, { preferMap: true }) as Map<number, unknown>[]
        coseWire += publishBytes(m.topic, m.payload.length)
        jsonWire += publishBytes(m.topic, Buffer.byteLength(senmlJson(pack)))
        readings += v.readings.filter(r => r.unit !== undefined).length
    }
    console.log(
        `uplink bytes on the wire per reading: COSE+SenML-CBOR over MQTT ${(coseWire / readings).toFixed(1)} B, ` +
            `plain SenML-JSON over MQTT ${(jsonWire / readings).toFixed(1)} B, ratio ${(coseWire / jsonWire).toFixed(3)} ` +
            `(${readings} readings in ${wire.length} messages)`
    )
    // latency: reading time on the host clock = seal line time + the reading's (negative) SenML time
    const sensorToOwner: number[] = []
    const sealToOwner: number[] = []
    // steady state only: leave out what queued up before the owner's claim opened the first session
    const firstArrival = device.arrivals[0]
    device.verified.forEach((m, i) => {
        const sealed = device.sealedAt.get(m.counter)
        if (m.kind !== "readings" || sealed === undefined || sealed < firstArrival) return
        sealToOwner.push(device.arrivals[i] - sealed)
        for (const r of m.readings) if (r.unit !== undefined) sensorToOwner.push(device.arrivals[i] - (sealed + r.time * 1000))
    })
    sensorToOwner.sort((a, b) => a - b)
    sealToOwner.sort((a, b) => a - b)
    console.log(
        `latency sensor -> consumer (incl. 5 s batching): median ${percentile(sensorToOwner, 50).toFixed(0)} ms, ` +
            `p99 ${percentile(sensorToOwner, 99).toFixed(0)} ms (${sensorToOwner.length} readings)`
    )
    console.log(
        `latency seal -> consumer (sealing, queue, TLS, broker, cose-js): median ${percentile(sealToOwner, 50).toFixed(0)} ms, ` +
            `p99 ${percentile(sealToOwner, 99).toFixed(0)} ms (${sealToOwner.length} messages)`
    )
    rmSync(dir, { recursive: true, force: true })
}
