import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { decodeSenml, resolveSenml } from "../../src/codec/senml"
import { encodeReadingBatch, ReadingBatch } from "../../src/codec/readings"
import { ReadingBatcher } from "../../src/pipeline/batcher"
import { startPipeline } from "../../src/pipeline/pipeline"
import { ReadingSink } from "../../src/pipeline/sink"
import { SensorSampler } from "../../src/sensors/sampler"
import { SimulatedSensor } from "../../src/sensors/simulated"
import { SensorConfig } from "../../src/sensors/types"

class MemorySink implements ReadingSink {
    batches: ReadingBatch[] = []
    failNext = false
    async deliver(batch: ReadingBatch) {
        if (this.failNext) {
            this.failNext = false
            throw new Error("link down")
        }
        this.batches.push(batch)
    }
}

function reading(i: number) {
    return { sensor: "s", quantity: "temperature" as const, value: i, atMs: i }
}

describe("batcher", () => {
    test("keeps the newest readings when full and counts the drops", async () => {
        const sink = new MemorySink()
        const b = new ReadingBatcher({ sink, flushIntervalMs: 60000, maxReadings: 4 })
        for (let i = 0; i < 10; ++i) b.add(reading(i))
        expect(b.pending()).toBe(4)
        const batch = await b.flush()
        expect(batch.readings.map(r => r.value).join(",")).toBe("6,7,8,9")
        expect(batch.dropped).toBe(6)
        expect(sink.batches.length).toBe(1)
    })
    test("sends nothing when nothing changed, and counts a refused delivery", async () => {
        const sink = new MemorySink()
        const b = new ReadingBatcher({ sink, flushIntervalMs: 60000, maxReadings: 4 })
        expect(await b.flush()).toBe(undefined)
        b.countFault({ sensor: "x", kind: "bus", detail: "", atMs: 0 })
        b.countFault({ sensor: "x", kind: "bus", detail: "", atMs: 0 })
        sink.failNext = true
        await b.flush()
        expect(b.failedDeliveries).toBe(1)
        expect(await b.flush()).toBe(undefined)
        b.add(reading(1))
        const batch = await b.flush()
        expect(batch.faults[0].count).toBe(2)
    })
})

describe("reading times", () => {
    test("each reading carries its true age at the batch's close, not 0", async () => {
        const sink = new MemorySink()
        const batcher = new ReadingBatcher({ sink, flushIntervalMs: 60000, maxReadings: 16 })
        const config: SensorConfig = { model: "shtc3", name: "shtc3", intervalMs: 1000 }
        const sampler = new SensorSampler({ config, port: new SimulatedSensor("shtc3"), onReading: r => batcher.add(r), onFault: () => {} })
        await sampler.sampleOnce()
        await ds.sleep(150)
        await sampler.sampleOnce()
        await ds.sleep(70)
        const batch = await batcher.flush()
        const recs = resolveSenml(decodeSenml(await encodeReadingBatch(batch)))
        // a series per quantity, each in sampling order: temperature of both samples, then humidity
        expect(recs.map(r => r.name).join(" ")).toBe("shtc3/temperature shtc3/temperature shtc3/humidity shtc3/humidity")
        const sampledAt = [batch.readings[0].atMs, batch.readings[2].atMs, batch.readings[1].atMs, batch.readings[3].atMs]
        for (let i = 0; i < recs.length; ++i) {
            // the age in seconds, to the format's resolution of 2^-8 s
            const age = (batch.closedAtMs - sampledAt[i]) / 1000
            expect(recs[i].time).toBe(-Math.round(age * 256) / 256)
            expect(Math.abs(recs[i].time + age) <= 1 / 512).toBe(true)
        }
        // the first sample is at least 220 ms old, the second at least 70 ms (less half a step of rounding)
        expect(recs[0].time <= -0.22 + 1 / 512).toBe(true)
        expect(recs[1].time <= -0.07 + 1 / 512 && recs[1].time > recs[0].time).toBe(true)
    })
})

describe("pipeline", () => {
    test("samples every sensor, skips one that cannot be opened, and delivers SenML", async () => {
        const sink = new MemorySink()
        const sensors: SensorConfig[] = [
            { model: "shtc3", name: "shtc3", intervalMs: 200 },
            { model: "aht20", name: "gone", intervalMs: 200 },
            { model: "bme680", name: "bme680", intervalMs: 400 },
        ]
        const p = await startPipeline({
            sensors,
            sink,
            openPort: async c => {
                if (c.name === "gone") throw new Error("I2C device not found")
                return new SimulatedSensor(c.model)
            },
            flushIntervalMs: 500,
            maxReadings: 64,
        })
        await ds.sleep(1200)
        p.stop()
        expect(p.samplers.length).toBe(2)
        expect(sink.batches.length >= 2).toBe(true)
        const batch = sink.batches[0]
        expect(batch.faults[0].sensor).toBe("gone")
        const pack = await encodeReadingBatch(batch)
        // each step is heavy for the VM's step budget: yield between them
        await ds.sleep(0)
        const records = decodeSenml(pack)
        await ds.sleep(0)
        const recs = resolveSenml(records)
        // counters first, then the series
        expect(recs[0].name).toBe("gone/faults")
        expect(recs[0].value).toBe(1)
        expect(recs[1].name).toBe("shtc3/temperature")
        expect(recs[1].value).toBe(20)
        let bme = 0
        for (const r of recs) if (r.name.indexOf("bme680/") === 0) bme++
        expect(bme >= 4).toBe(true)
    })
})
