/**
 * Aosong AHT20 over I2C at 0x38 (datasheet §5.4): a status byte says whether
 * the part is calibrated (bit 3) and busy (bit 7); a measurement (0xAC 0x33
 * 0x00, 80 ms) reads back as status, 20 bits of humidity, 20 bits of
 * temperature and a CRC-8 of the six, converted as RH = S_RH / 2^20 * 100 %RH
 * and T = S_T / 2^20 * 200 - 50 °C (§6.1, §6.2).
 */
import * as ds from "@devicescript/core"
import { crc8, I2CTransfer } from "./i2c"
import { Sample, SensorPort } from "./types"

const STATUS_BUSY = 0x80
const STATUS_CALIBRATED = 0x08

/** Converts the 7 bytes of a measurement. Throws when the part is still busy or the CRC does not match. */
export function aht20Sample(data: Buffer): Sample {
    if ((data[0] & STATUS_BUSY) !== 0) throw new Error("AHT20 busy")
    if (crc8(data, 0, 6) !== data[6]) throw new Error("AHT20 CRC mismatch")
    const humidity = (data[1] << 12) | (data[2] << 4) | (data[3] >> 4)
    const temperature = ((data[3] & 0x0f) << 16) | (data[4] << 8) | data[5]
    return { humidity: (humidity * 100) / 0x100000, temperature: (temperature * 200) / 0x100000 - 50 }
}

/** AHT20: calibrates the part when its status asks for it (0xBE 0x08 0x00), then measures. */
export function aht20(bus: I2CTransfer): SensorPort {
    return {
        read: async () => {
            if (((await bus(0x38, hex`71`, 1))[0] & STATUS_CALIBRATED) === 0) {
                await bus(0x38, hex`be0800`, 0)
                await ds.sleep(10)
            }
            await bus(0x38, hex`ac3300`, 0)
            await ds.sleep(80)
            return aht20Sample(await bus(0x38, hex``, 7))
        },
    }
}
