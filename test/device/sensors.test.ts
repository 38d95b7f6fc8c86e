import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { parseSensorList, SensorConfigError, SIMULATOR_SENSORS } from "../../src/sensors/config"
import { quantitiesOf } from "../../src/sensors/datasheet"
import { SensorSampler, validateSample } from "../../src/sensors/sampler"
import { SimulatedSensor, simulatedValue } from "../../src/sensors/simulated"
import { Reading, SensorConfig, SensorFault } from "../../src/sensors/types"
import { refusal } from "./support"

/** The message of the SensorConfigError that parsing `spec` must throw. */
function configRefusal(spec: string): string {
    return refusal(SensorConfigError, () => parseSensorList(spec))
}

const SHTC3: SensorConfig = { model: "shtc3", name: "shtc3", intervalMs: 1000 }
const BME680: SensorConfig = { model: "bme680", name: "bme680", intervalMs: 1000 }

describe("sensor list", () => {
    test("parses models, addresses and intervals", () => {
        const list = parseSensorList("shtc3@5000, bme680:0x77@250,aht20")
        expect(list.length).toBe(3)
        expect(list[0].model).toBe("shtc3")
        expect(list[0].intervalMs).toBe(5000)
        expect(list[1].address).toBe(0x77)
        expect(list[1].name).toBe("bme680_77")
        expect(list[1].intervalMs).toBe(250)
        expect(list[2].intervalMs).toBe(10000)
    })
    test("the simulator list has one of each part", () => {
        const models = parseSensorList(SIMULATOR_SENSORS).map(c => c.model)
        expect(models.join(",")).toBe("shtc3,sht30,aht20,bme680")
    })
    test("bad lists are refused, naming the entry", () => {
        expect(configRefusal("").indexOf("empty") >= 0).toBe(true)
        expect(configRefusal("dht22").indexOf("dht22") >= 0).toBe(true)
        expect(configRefusal("shtc3@50").indexOf("outside") >= 0).toBe(true)
        expect(configRefusal("shtc3@1e4").indexOf("bad interval") >= 0).toBe(true)
        expect(configRefusal("shtc3@999999999999").indexOf("bad interval") >= 0).toBe(true)
        expect(configRefusal("sht30:0x04").indexOf("reserved") >= 0).toBe(true)
        expect(configRefusal("sht30:44").indexOf("address") >= 0).toBe(true)
        expect(configRefusal("shtc3,shtc3").indexOf("twice") >= 0).toBe(true)
    })
})

describe("simulated sensors", () => {
    test("follow the deterministic curve", async () => {
        const s = new SimulatedSensor("bme680")
        for (let n = 0; n < 30; ++n) {
            const sample = await s.read()
            expect(sample.temperature).toBe(simulatedValue("temperature", n))
            expect(sample.gas).toBe(simulatedValue("gas", n))
        }
        expect(simulatedValue("temperature", 0)).toBe(20)
        expect(simulatedValue("temperature", 12)).toBe(23)
        expect(simulatedValue("temperature", 13)).toBe(22.75)
        expect(simulatedValue("humidity", 0)).toBe(43)
        expect(simulatedValue("pressure", 15)).toBe(101450)
    })
    test("measure what their part measures", () => {
        expect(quantitiesOf("shtc3").join(",")).toBe("temperature,humidity")
        expect(quantitiesOf("bme680").join(",")).toBe("temperature,humidity,pressure,gas")
    })
})

describe("validation", () => {
    test("good values become readings", () => {
        const v = validateSample(BME680, { temperature: 21, humidity: 50, pressure: 101325, gas: 60000 }, 5)
        expect(v.readings.length).toBe(4)
        expect(v.faults.length).toBe(0)
        expect(v.readings[2].quantity).toBe("pressure")
        expect(v.readings[2].atMs).toBe(5)
    })
    test("NaN, infinite, missing and out-of-datasheet-range values are faults, not data", () => {
        const v = validateSample(BME680, { temperature: NaN, humidity: 100.5, pressure: Infinity }, 0)
        expect(v.readings.length).toBe(0)
        expect(v.faults.map(f => f.kind).join(",")).toBe("not-a-number,out-of-range,not-a-number,missing")
        // the AHT20 stops at 85 °C, the SHTC3 at 125 °C
        const aht = validateSample({ model: "aht20", name: "aht20", intervalMs: 1000 }, { temperature: 90, humidity: 10 }, 0)
        const shtc = validateSample(SHTC3, { temperature: 90, humidity: 10 }, 0)
        expect(aht.faults.length).toBe(1)
        expect(shtc.faults.length).toBe(0)
        expect(validateSample(SHTC3, { temperature: -40.01, humidity: 0 }, 0).faults.length).toBe(1)
        expect(validateSample(SHTC3, { temperature: -40, humidity: 0 }, 0).faults.length).toBe(0)
    })
})

describe("sampler", () => {
    test("counts bus errors, NaN and out-of-range reads as faults and sends only good data", async () => {
        const readings: Reading[] = []
        const faults: SensorFault[] = []
        const port = new SimulatedSensor("shtc3", {
            faultAt: n => (n === 1 ? "bus" : n === 2 ? "nan" : n === 3 ? "out-of-range" : undefined),
        })
        const sampler = new SensorSampler({ config: SHTC3, port, onReading: r => readings.push(r), onFault: f => faults.push(f) })
        for (let i = 0; i < 5; ++i) await sampler.sampleOnce()
        expect(sampler.samples).toBe(5)
        expect(sampler.faults).toBe(3)
        expect(faults.map(f => f.kind).join(",")).toBe("bus,not-a-number,out-of-range")
        // reads 0 and 4 complete, reads 2 and 3 keep their humidity
        expect(readings.length).toBe(6)
        for (const r of readings) expect(r.value === r.value && r.value < 200).toBe(true)
        expect(readings[0].value).toBe(simulatedValue("temperature", 0))
        expect(readings[5].value).toBe(simulatedValue("humidity", 4))
    })
    test("samples on its configured interval and can be retuned", async () => {
        const readings: Reading[] = []
        const config: SensorConfig = { model: "shtc3", name: "fast", intervalMs: 100 }
        const port = new SimulatedSensor("shtc3")
        const sampler = new SensorSampler({ config, port, onReading: r => readings.push(r), onFault: () => {} })
        sampler.start()
        await ds.sleep(1050)
        sampler.stop()
        const fast = sampler.samples
        // 1 immediate sample + 10 ticks; timer jitter allowed
        expect(fast >= 6 && fast <= 12).toBe(true)
        sampler.setIntervalMs(500)
        sampler.start()
        await ds.sleep(1050)
        sampler.stop()
        const slow = sampler.samples - fast
        expect(slow >= 1 && slow <= 4).toBe(true)
        expect(refusal(RangeError, () => sampler.setIntervalMs(5)).indexOf("interval must be") >= 0).toBe(true)
        expect(config.intervalMs).toBe(500)
    })
})
