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
import mqtt from "mqtt"
import { readHeaders } from "../owner/cose.ts"
import { channelKeys } from "../owner/keys.ts"
import { ReplayWindow, UplinkVerifier } from "../owner/verifier.ts"
import { startLocalStack } from "../stack/local.ts"
import { freePort } from "../net/ports.ts"
import { SimulatedDevice } from "../sim/simulated-device.ts"
import { until } from "../sim/until.ts"
import { plainSenmlJson } from "./senml-json.ts"

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
    const transcript: string[] = []
    const device = new SimulatedDevice({ stack, dir, transcript })
    device.run()
    let root: Buffer
    try {
        await until("20 reading messages", () => device.verified.filter(m => m.kind === "readings").length >= 20, 240_000)
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
    const baseName = `urn:dev:sentinel:${device.id}:`
    let coseWire = 0
    let jsonWire = 0
    let bareJsonWire = 0
    let kidBytes = 0
    let readings = 0
    let messages = 0
    for (const m of wire) {
        const v = verifier.verify(m.topic, m.payload)
        if (v.kind !== "readings") continue
        messages++
        coseWire += publishBytes(m.topic, m.payload.length)
        jsonWire += publishBytes(m.topic, Buffer.byteLength(plainSenmlJson(v.readings, baseName)))
        bareJsonWire += publishBytes(m.topic, Buffer.byteLength(plainSenmlJson(v.readings)))
        // label, byte string head and the 16-byte device id (RFC 9052 §3.1, label 4)
        kidBytes += 2 + readHeaders(m.payload).kid.length
        readings += v.readings.filter(r => r.unit !== undefined).length
    }
    const perReading = (bytes: number) => `${(bytes / readings).toFixed(1)} B`
    console.log(
        `uplink bytes on the wire per reading: COSE+SenML-CBOR over MQTT ${perReading(coseWire)}, ` +
            `plain SenML-JSON over MQTT ${perReading(jsonWire)}, ratio ${(coseWire / jsonWire).toFixed(3)} ` +
            `(${readings} readings in ${messages} messages, ${(readings / messages).toFixed(1)} a message)`
    )
    console.log(
        `  against SenML-JSON without the device's base name ${perReading(bareJsonWire)}: ratio ${(coseWire / bareJsonWire).toFixed(3)}; ` +
            `without the COSE kid (the topic names the device) ${perReading(coseWire - kidBytes)}, ` +
            `ratio ${((coseWire - kidBytes) / jsonWire).toFixed(3)}`
    )
    // the owner claims as soon as the device prints its claim code; the device polls the registry while unclaimed
    const claimCodeAt = Number(transcript.find(l => l.includes("claim code"))?.split(" ")[0])
    console.log(
        `claim -> first verified reading at the owner: ${device.arrivals[0] - claimCodeAt} ms ` +
            `(from the device printing its claim code; the unclaimed device asks the registry again after 2 s, doubling)`
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
