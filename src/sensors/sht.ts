/**
 * Sensirion SHTC3 and SHT3x (SHT30) over I2C: both send a measurement as two
 * big-endian 16-bit words, temperature then humidity, each followed by its
 * CRC-8, and convert them the same way up to the full scale:
 * T = -45 + 175 * S_T / F °C and RH = 100 * S_RH / F %RH, with F = 2^16 on the
 * SHTC3 (datasheet §5.11) and 2^16 - 1 on the SHT3x (SHT3x-DIS datasheet §4.13).
 */
import * as ds from "@devicescript/core"
import { crc8, I2CTransfer } from "./i2c"
import { Sample, SensorPort } from "./types"

/** The full scale F of each part's conversion. */
export const SHTC3_FULL_SCALE = 0x10000
export const SHT3X_FULL_SCALE = 0xffff

/** Converts the 6 bytes of a measurement (T, CRC, RH, CRC). Throws when a word's CRC does not match. */
export function shtSample(data: Buffer, fullScale: number): Sample {
    if (crc8(data, 0, 2) !== data[2] || crc8(data, 3, 5) !== data[5]) throw new Error("SHT CRC mismatch")
    return {
        temperature: -45 + (175 * ((data[0] << 8) | data[1])) / fullScale,
        humidity: (100 * ((data[3] << 8) | data[4])) / fullScale,
    }
}

/**
 * SHTC3 at its one address, 0x70 (datasheet §5.3): wake up (0x3517, 240 µs), measure in normal mode
 * with temperature first and no clock stretching (0x7866, at most 12.1 ms, table 5), read, sleep (0xB098).
 */
export function shtc3(bus: I2CTransfer): SensorPort {
    return {
        read: async () => {
            await bus(0x70, hex`3517`, 0)
            await ds.sleep(1)
            await bus(0x70, hex`7866`, 0)
            await ds.sleep(15)
            const data = await bus(0x70, hex``, 6)
            await bus(0x70, hex`b098`, 0)
            return shtSample(data, SHTC3_FULL_SCALE)
        },
    }
}

/** SHT30 at 0x44 (default) or 0x45: a single shot, high repeatability, no clock stretching (0x2400, at most 15.5 ms; §4.3, table 4). */
export function sht30(bus: I2CTransfer, address = 0x44): SensorPort {
    return {
        read: async () => {
            await bus(address, hex`2400`, 0)
            await ds.sleep(20)
            return shtSample(await bus(address, hex``, 6), SHT3X_FULL_SCALE)
        },
    }
}
