/**
 * Bosch BME680 over I2C at 0x76 or 0x77 (0x77 by default on our boards),
 * after the datasheet (BST-BME680-DS001): temperature, pressure, humidity and
 * gas resistance in one forced-mode measurement.
 *
 * - §3.2.1 (quick start): humidity oversampling 1x, temperature 2x,
 *   pressure 16x, one heater set-point (res_heat_0, gas_wait_0 = 0x59:
 *   100 ms), gas on, forced mode; the register writes go as (register, value)
 *   pairs in one I2C write (§6.2.1).
 * - §3.3.5: the heater resistance for a target temperature, from par_g1..3,
 *   res_heat_range and res_heat_val.
 * - §3.3.1-3.3.3: temperature, pressure and humidity compensation (the
 *   floating-point variants), from the calibration words of tables 12-14.
 * - §3.4.1: gas resistance from the gas ADC, its range and the range
 *   switching error, with the constants of table 16. A gas value is given
 *   only when the part says it is valid and the heater was stable.
 *
 * The stock @devicescript/drivers driver reports gas through a register that
 * saturates at 65535 Ω; this one reports the resistance as computed.
 */
import * as ds from "@devicescript/core"
import { I2CTransfer } from "./i2c"
import { Sample, SensorPort } from "./types"

/** The calibration words of one part (datasheet tables 12-14, §3.3.5, §3.4.1). */
export interface Bme680Calibration {
    t: number[]
    p: number[]
    h: number[]
    g: number[]
    heatRange: number
    heatValue: number
    switchingError: number
}

const CHIP_ID = 0x61
/** The heater's target, as in the datasheet's quick start. */
const HEATER_TARGET_C = 300
/** Table 16, floating-point form: range -> const_array1, const_array2. */
const GAS_K1 = [1, 1, 1, 1, 1, 0.99, 1, 0.992, 1, 1, 0.998, 0.995, 1, 0.99, 1, 1]
const GAS_K2 = [
    8000000, 4000000, 2000000, 1000000, 499500.4995, 248262.1648, 125000, 63004.03226, 31281.28128, 15625, 7812.5, 3906.25, 1953.125,
    976.5625, 488.28125, 244.140625,
]

/**
 * The calibration from the registers 0x8A..0xA0 (`a`, 23 bytes), 0xE1..0xEE (`b`, 14 bytes) and 0x00..0x04
 * (`c`, 5 bytes). Words are little-endian; par_h1 and par_h2 share the nibbles of 0xE2.
 */
export function bme680Calibration(a: Buffer, b: Buffer, c: Buffer): Bme680Calibration {
    return {
        // par_t1, par_t2, par_t3
        t: [b.getAt(8, "u16"), a.getAt(0, "i16"), a.getAt(2, "i8")],
        // par_p1 .. par_p10
        p: [
            a.getAt(4, "u16"),
            a.getAt(6, "i16"),
            a.getAt(8, "i8"),
            a.getAt(10, "i16"),
            a.getAt(12, "i16"),
            a.getAt(15, "i8"),
            a.getAt(14, "i8"),
            a.getAt(18, "i16"),
            a.getAt(20, "i16"),
            a[22],
        ],
        // par_h1 .. par_h7
        h: [
            (b[2] << 4) | (b[1] & 0x0f),
            (b[0] << 4) | (b[1] >> 4),
            b.getAt(3, "i8"),
            b.getAt(4, "i8"),
            b.getAt(5, "i8"),
            b[6],
            b.getAt(7, "i8"),
        ],
        // par_g1 .. par_g3
        g: [b.getAt(12, "i8"), b.getAt(10, "i16"), b.getAt(13, "i8")],
        heatRange: (c[2] >> 4) & 0x03,
        heatValue: c.getAt(0, "i8"),
        // a signed 4-bit value in the high nibble of 0x04
        switchingError: c.getAt(4, "i8") >> 4,
    }
}

/** res_heat_x for a heater target of `targetC` at an ambient `ambientC` (§3.3.5). */
export function bme680HeaterResistance(cal: Bme680Calibration, targetC: number, ambientC: number): number {
    const g = cal.g
    const var4 = (g[0] / 16 + 49) * (1 + ((g[1] / 32768) * 0.0005 + 0.00235) * targetC)
    const var5 = var4 + (g[2] / 1024) * ambientC
    const res = 3.4 * ((var5 * (4 / (4 + cal.heatRange))) / (1 + cal.heatValue * 0.002) - 25)
    return Math.max(0, Math.min(255, Math.floor(res)))
}

/** Compensates the 15 bytes of data field 0 (0x1D..0x2B); pressure in Pa, gas in Ω. */
export function bme680Sample(cal: Bme680Calibration, d: Buffer): Sample {
    const t = cal.t
    const p = cal.p
    const h = cal.h
    const adcP = (d[2] << 12) | (d[3] << 4) | (d[4] >> 4)
    const adcT = (d[5] << 12) | (d[6] << 4) | (d[7] >> 4)
    const adcH = (d[8] << 8) | d[9]
    // §3.3.1
    const dt = adcT / 131072 - t[0] / 8192
    const tFine = (adcT / 16384 - t[0] / 1024) * t[1] + dt * dt * t[2] * 16
    const temperature = tFine / 5120
    // §3.3.2
    let var1 = tFine / 2 - 64000
    let var2 = ((var1 * var1 * p[5]) / 131072 + var1 * p[4] * 2) / 4 + p[3] * 65536
    var1 = (1 + ((p[2] * var1 * var1) / 16384 + p[1] * var1) / 524288 / 32768) * p[0]
    let pressure = ((1048576 - adcP - var2 / 4096) * 6250) / var1
    const p256 = pressure / 256
    pressure +=
        ((p[8] * pressure * pressure) / 2147483648 + (pressure * p[7]) / 32768 + (p256 * p256 * p256 * p[9]) / 131072 + p[6] * 128) / 16
    // §3.3.3
    var1 = adcH - (h[0] * 16 + (h[2] / 2) * temperature)
    var2 = var1 * ((h[1] / 262144) * (1 + (h[3] / 16384) * temperature + (h[4] / 1048576) * temperature * temperature))
    const humidity = Math.max(0, Math.min(100, var2 + (h[5] / 16384 + (h[6] / 2097152) * temperature) * var2 * var2))
    const sample: Sample = { temperature, pressure, humidity }
    // §3.4.1: gas_valid_r (bit 5) and heat_stab_r (bit 4) of 0x2B
    if ((d[14] & 0x30) === 0x30) {
        const range = d[14] & 0x0f
        const v = (1340 + 5 * cal.switchingError) * GAS_K1[range]
        sample.gas = (v * GAS_K2[range]) / (((d[13] << 2) | (d[14] >> 6)) - 512 + v)
    }
    return sample
}

/** BME680 at `address`: reads the calibration on the first read (and after a failed one), then one forced measurement per read. */
export function bme680(bus: I2CTransfer, address = 0x77): SensorPort {
    let cal: Bme680Calibration = undefined
    let ambientC = 25
    return {
        read: async () => {
            if (cal === undefined) {
                await bus(address, hex`e0b6`, 0) // soft reset
                await ds.sleep(10)
                const id = (await bus(address, hex`d0`, 1))[0]
                if (id !== CHIP_ID) throw new Error(`BME680: chip id ${id}`)
                cal = bme680Calibration(await bus(address, hex`8a`, 23), await bus(address, hex`e1`, 14), await bus(address, hex`00`, 5))
            }
            const heat = bme680HeaterResistance(cal, HEATER_TARGET_C, ambientC)
            // ctrl_hum 1x; gas_wait_0 100 ms; res_heat_0; run_gas, set-point 0; ctrl_meas: T 2x, P 16x, forced
            await bus(address, Buffer.from([0x72, 0x01, 0x64, 0x59, 0x5a, heat, 0x71, 0x10, 0x74, 0x55]), 0)
            for (let attempt = 0; attempt < 10; ++attempt) {
                await ds.sleep(attempt === 0 ? 150 : 20)
                const data = await bus(address, hex`1d`, 15)
                // new_data_0
                if ((data[0] & 0x80) !== 0) {
                    const sample = bme680Sample(cal, data)
                    ambientC = sample.temperature
                    return sample
                }
            }
            cal = undefined
            throw new Error("BME680: no data")
        },
    }
}
