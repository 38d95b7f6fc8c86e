/**
 * Checks the shared BME680 vectors (test/vectors/bme680.ts) against the
 * datasheet's integer formulas, so the device suite's expectations for the
 * firmware's floating-point driver rest on an independent computation.
 */
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { BME680_CALIBRATION, BME680_HEATER, BME680_VECTORS } from "../vectors/bme680.ts"
import { calibrationRegisters, compensateInteger, dataField } from "./support/bme680-integer.ts"

describe("BME680 vectors", () => {
    test("the registers hold the calibration words (datasheet tables 12-14)", () => {
        const r = calibrationRegisters(BME680_CALIBRATION.params)
        assert.equal(r.a.toString("hex"), BME680_CALIBRATION.a)
        assert.equal(r.b.toString("hex"), BME680_CALIBRATION.b)
        assert.equal(r.c.toString("hex"), BME680_CALIBRATION.c)
    })

    test("each data field holds its ADC values", () => {
        for (const v of BME680_VECTORS) assert.equal(dataField(v.adc, v.gasValid).toString("hex"), v.data)
    })

    test("the expected values are the integer formulas' results, and physically plausible", () => {
        for (const v of BME680_VECTORS) {
            const got = compensateInteger(BME680_CALIBRATION.params, v.adc, BME680_HEATER.targetC, BME680_HEATER.ambientC)
            assert.deepEqual(got, v.expected)
            assert.ok(got.t100 > 0 && got.t100 < 4000 && got.pa > 80000 && got.pa < 105000 && got.h1000 < 100000, JSON.stringify(got))
        }
    })
})
