/**
 * The I2C bus as the part drivers see it: one transfer (write some bytes,
 * then read some), and the CRC-8 that Sensirion and Aosong parts append to
 * every data word. The drivers take the transfer as an argument, so the tests
 * put a simulated part behind it.
 */
import * as ds from "@devicescript/core"

/** Writes `write` to the part at 7-bit `address`, then reads `readLength` bytes (none for 0). Throws on a bus error. */
export type I2CTransfer = (address: number, write: Buffer, readLength: number) => Promise<Buffer>

/** The board's bus, through the runtime's I2C transaction (what @devicescript/i2c wraps). */
export async function i2cTransfer(address: number, write: Buffer, readLength: number): Promise<Buffer> {
    const read = readLength > 0 ? Buffer.alloc(readLength) : undefined
    const status: number = await (ds as any)._i2cTransaction(address, write, read)
    if (status !== 0) throw new Error(`I2C status ${status} at address ${address}`)
    return read
}

/**
 * CRC-8 of `data[start..end)`: polynomial x^8 + x^5 + x^4 + 1 (0x31), initial
 * value 0xFF, no final XOR (Sensirion SHTC3 datasheet §5.10, SHT3x-DIS §4.12,
 * whose example is CRC(0xBEEF) = 0x92; Aosong AHT20 datasheet §5.4 uses the same).
 */
export function crc8(data: Buffer, start: number, end: number): number {
    let crc = 0xff
    for (let i = start; i < end; ++i) {
        crc ^= data[i]
        for (let bit = 0; bit < 8; ++bit) crc = (crc & 0x80) !== 0 ? ((crc << 1) ^ 0x31) & 0xff : (crc << 1) & 0xff
    }
    return crc
}
