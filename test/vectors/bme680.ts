/**
 * BME680 test vectors: one part's calibration registers and three
 * measurements (data field 0), with what the datasheet's integer formulas
 * give for them (BST-BME680-DS001 §3.3.1-3.3.3, §3.3.5, §3.4.1). Plain data
 * shared by the device suite, which reads them through the firmware's
 * floating-point driver, and the host suite, which recomputes every expected
 * value with the integer formulas (test/host/support/bme680-integer.ts).
 * The calibration words are of the size and sign a real part has.
 */

/** The calibration words by their datasheet names, and the registers that hold them. */
export const BME680_CALIBRATION = {
    params: {
        t1: 26062,
        t2: 26255,
        t3: 3,
        p1: 36367,
        p2: -10380,
        p3: 88,
        p4: 6949,
        p5: -55,
        p6: 30,
        p7: 27,
        p8: -1492,
        p9: -2472,
        p10: 30,
        h1: 812,
        h2: 1001,
        h3: 0,
        h4: 45,
        h5: 20,
        h6: 120,
        h7: -100,
        g1: -3,
        g2: -12345,
        g3: 18,
        resHeatRange: 1,
        resHeatVal: 44,
        rangeSwErr: -1,
    },
    /** 0x8A..0xA0 */
    a: "8f6603000f8e74d75800251bc9ff1b1e00002cfa58f61e",
    /** 0xE1..0xEE */
    b: "3e9c32002d14789cce65c7cffd12",
    /** 0x00..0x04 */
    c: "2c001000f0",
}

/** The heater's target and the ambient temperature of the first measurement, in °C. */
export const BME680_HEATER = { targetC: 300, ambientC: 25 }

/** A measurement: its ADC values, data field 0 holding them, and the integer formulas' results (°C×100, Pa, %RH×1000, Ω, res_heat). */
export interface Bme680Vector {
    adc: { t: number; p: number; h: number; gas: number; gasRange: number }
    gasValid: boolean
    data: string
    expected: { t100: number; pa: number; h1000: number; ohm: number; resHeat: number }
}

export const BME680_VECTORS: Bme680Vector[] = [
    {
        adc: { t: 500000, p: 400000, h: 20000, gas: 400, gasRange: 5 },
        gasValid: true,
        data: "800061a8007a12004e200000006435",
        expected: { t100: 2598, pa: 92510, h1000: 34130, ohm: 271248, resHeat: 116 },
    },
    {
        adc: { t: 450000, p: 350000, h: 24000, gas: 800, gasRange: 9 },
        gasValid: true,
        data: "80005573006ddd005dc0000000c839",
        expected: { t100: 1033, pa: 98675, h1000: 56112, ohm: 12852, resHeat: 116 },
    },
    {
        adc: { t: 520000, p: 420000, h: 26000, gas: 100, gasRange: 2 },
        gasValid: false,
        data: "8000668a007ef40065900000001902",
        expected: { t100: 3225, pa: 89934, h1000: 72583, ohm: 2892741, resHeat: 116 },
    },
]
