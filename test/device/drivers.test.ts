/**
 * The I2C part drivers (src/sensors/sht.ts, aht20.ts, bme680.ts) against
 * simulated parts on a simulated bus: the commands each sends, in order, and
 * what it makes of the answers; the BME680 against the shared vectors, whose
 * expected values the host suite recomputes with the datasheet's integer
 * formulas (test/host/bme680-vectors.test.ts).
 */
import { describe, expect, test } from "@devicescript/test"
import { aht20 } from "../../src/sensors/aht20"
import { bme680 } from "../../src/sensors/bme680"
import { driverPorts } from "../../src/sensors/drivers"
import { crc8, I2CTransfer } from "../../src/sensors/i2c"
import { sht30, shtc3 } from "../../src/sensors/sht"
import { BME680_CALIBRATION, BME680_HEATER, BME680_VECTORS } from "../vectors/bme680"

/** A simulated part: every transfer is logged as "address write-hex read-length"; reads are answered by `answer`. */
function simulatedBus(answer: (write: string, readLength: number) => Buffer): { bus: I2CTransfer; log: string[] } {
    const log: string[] = []
    const bus: I2CTransfer = async (address, write, readLength) => {
        log.push(`${address} ${write.toString("hex")} ${readLength}`)
        return answer(write.toString("hex"), readLength)
    }
    return { bus, log }
}

/** A 16-bit word followed by its CRC, as Sensirion parts send it. */
function word(v: number): Buffer {
    const b = Buffer.from([v >> 8, v & 0xff, 0])
    b[2] = crc8(b, 0, 2)
    return b
}

/** What a read through `port` threw (fails when it did not throw). */
async function readError(port: { read: () => Promise<any> }): Promise<string> {
    try {
        await port.read()
    } catch (e: any) {
        return e.message
    }
    throw new Error("the read did not throw")
}

function near(got: number, want: number, tolerance: number) {
    if (!(Math.abs(got - want) <= tolerance)) throw new Error(`${got} is not within ${tolerance} of ${want}`)
}

describe("Sensirion and Aosong CRC-8", () => {
    test("is the datasheets' example: CRC(0xBEEF) = 0x92", () => {
        expect(crc8(hex`beef`, 0, 2)).toBe(0x92)
        expect(crc8(hex`00beef00`, 1, 3)).toBe(0x92)
    })
})

describe("SHTC3 and SHT30", () => {
    test("SHTC3 wakes, measures, reads and sleeps; converts over 2^16", async () => {
        const part = simulatedBus(() => word(0x8000).concat(word(0x4000)))
        const sample = await shtc3(part.bus).read()
        expect(part.log.join(",")).toBe("112 3517 0,112 7866 0,112  6,112 b098 0")
        expect(sample.temperature).toBe(42.5)
        expect(sample.humidity).toBe(25)
    })
    test("SHT30 at the board's address converts over 2^16 - 1", async () => {
        const full = simulatedBus(() => word(0xffff).concat(word(0xffff)))
        const open = driverPorts({ sht30: sht30 }, full.bus)
        const sample = await (await open({ model: "sht30", name: "sht30_45", address: 0x45, intervalMs: 1000 })).read()
        expect(full.log.join(",")).toBe("69 2400 0,69  6")
        expect(sample.temperature).toBe(130)
        expect(sample.humidity).toBe(100)
        const zero = simulatedBus(() => word(0).concat(word(0)))
        const low = await (await driverPorts({ sht30: sht30 }, zero.bus)({ model: "sht30", name: "sht30", intervalMs: 1000 })).read()
        expect(zero.log[0]).toBe("68 2400 0")
        expect(low.temperature).toBe(-45)
        expect(low.humidity).toBe(0)
    })
    test("a word whose CRC does not match is refused", async () => {
        const bad = word(0x6666).concat(word(0x6666))
        bad[5] ^= 1
        expect((await readError(shtc3(simulatedBus(() => bad).bus))).indexOf("CRC") >= 0).toBe(true)
    })
    test("a part the image has no driver for is a refusal", async () => {
        const open = driverPorts({ sht30: sht30 }, simulatedBus(() => hex``).bus)
        let message = ""
        try {
            await open({ model: "aht20", name: "aht20", intervalMs: 1000 })
        } catch (e: any) {
            message = e.message
        }
        expect(message).toBe("no aht20 driver in this image")
    })
})

/** An AHT20 measurement: status, 20 bits of humidity, 20 bits of temperature, CRC. */
function ahtMeasurement(status: number, humidity: number, temperature: number): Buffer {
    const b = Buffer.from([status, humidity >> 12, (humidity >> 4) & 0xff, ((humidity & 0x0f) << 4) | (temperature >> 16)])
    const d = b.concat(Buffer.from([(temperature >> 8) & 0xff, temperature & 0xff, 0]))
    d[6] = crc8(d, 0, 6)
    return d
}

describe("AHT20", () => {
    test("a calibrated part is measured and converted over 2^20", async () => {
        const part = simulatedBus((write, n) => (write === "71" ? hex`18` : ahtMeasurement(0x18, 0x80000, 0x40000)))
        const sample = await aht20(part.bus).read()
        expect(part.log.join(",")).toBe("56 71 1,56 ac3300 0,56  7")
        expect(sample.humidity).toBe(50)
        expect(sample.temperature).toBe(0)
    })
    test("an uncalibrated part is calibrated first", async () => {
        const part = simulatedBus((write, n) => (write === "71" ? hex`10` : ahtMeasurement(0x18, 0xfffff, 0)))
        const sample = await aht20(part.bus).read()
        expect(part.log.join(",")).toBe("56 71 1,56 be0800 0,56 ac3300 0,56  7")
        expect(sample.temperature).toBe(-50)
    })
    test("a busy part or a bad CRC is refused", async () => {
        const busy = simulatedBus((write, n) => (write === "71" ? hex`18` : ahtMeasurement(0x98, 1, 1)))
        expect(await readError(aht20(busy.bus))).toBe("AHT20 busy")
        const corrupt = ahtMeasurement(0x18, 1, 1)
        corrupt[6] ^= 0x40
        expect(await readError(aht20(simulatedBus((write, n) => (write === "71" ? hex`18` : corrupt)).bus))).toBe("AHT20 CRC mismatch")
    })
})

/** A BME680 with the shared calibration whose data field 0 is `data`. */
function bme680Part(chipId: number, data: Buffer) {
    return simulatedBus(write => {
        if (write === "d0") return Buffer.from([chipId])
        if (write === "8a") return Buffer.from(BME680_CALIBRATION.a, "hex")
        if (write === "e1") return Buffer.from(BME680_CALIBRATION.b, "hex")
        if (write === "00") return Buffer.from(BME680_CALIBRATION.c, "hex")
        if (write === "1d") return data
        return hex``
    })
}

describe("BME680", () => {
    test("agrees with the datasheet's integer formulas on the shared vectors", async () => {
        for (const v of BME680_VECTORS) {
            const part = bme680Part(0x61, Buffer.from(v.data, "hex"))
            const sample = await bme680(part.bus).read()
            // soft reset, chip id, the three calibration blocks, the settings, data field 0
            expect(part.log.slice(0, 5).join(",")).toBe("119 e0b6 0,119 d0 1,119 8a 23,119 e1 14,119 00 5")
            const settings = part.log[5].split(" ")[1]
            expect(settings.slice(0, 10)).toBe("720164595a")
            expect(settings.slice(12)).toBe("71107455")
            near(Buffer.from(settings.slice(10, 12), "hex")[0], v.expected.resHeat, 1)
            expect(part.log[6]).toBe("119 1d 15")
            near(sample.temperature, v.expected.t100 / 100, 0.01)
            near(sample.pressure, v.expected.pa, 2)
            near(sample.humidity, v.expected.h1000 / 1000, 0.05)
            if (v.gasValid) near(sample.gas, v.expected.ohm, v.expected.ohm * 0.002)
            else expect(sample.gas).toBe(undefined)
        }
        expect(BME680_HEATER.ambientC).toBe(25)
    })
    test("a part with another chip id is refused, and asked again on the next read", async () => {
        const part = bme680Part(0x60, Buffer.from(BME680_VECTORS[0].data, "hex"))
        const port = bme680(part.bus, 0x76)
        expect(await readError(port)).toBe("BME680: chip id 96")
        expect(await readError(port)).toBe("BME680: chip id 96")
        expect(part.log.join(",")).toBe("118 e0b6 0,118 d0 1,118 e0b6 0,118 d0 1")
    })
    test("a measurement that never completes is refused", async () => {
        const stale = Buffer.from(BME680_VECTORS[0].data, "hex")
        stale[0] = 0
        expect(await readError(bme680(bme680Part(0x61, stale).bus))).toBe("BME680: no data")
    })
})
