/**
 * The BME680 datasheet's integer compensation (BST-BME680-DS001 §3.3.1-3.3.3,
 * §3.3.5 and §3.4.1 with table 16's integer constants), in BigInt so every
 * shift and division is the datasheet's 32- and 64-bit integer arithmetic
 * (division truncates, `>>` is arithmetic). The firmware computes the
 * floating-point variants (src/sensors/bme680.ts); this independent form is
 * what test/vectors/bme680.ts is checked against.
 */

/** Calibration words by their datasheet names. */
export interface Bme680Params {
    t1: number
    t2: number
    t3: number
    p1: number
    p2: number
    p3: number
    p4: number
    p5: number
    p6: number
    p7: number
    p8: number
    p9: number
    p10: number
    h1: number
    h2: number
    h3: number
    h4: number
    h5: number
    h6: number
    h7: number
    g1: number
    g2: number
    g3: number
    resHeatRange: number
    resHeatVal: number
    rangeSwErr: number
}

/** The registers 0x8A..0xA0, 0xE1..0xEE and 0x00..0x04 that hold `c` (tables 12-14). */
export function calibrationRegisters(c: Bme680Params): { a: Buffer; b: Buffer; c: Buffer } {
    const a = Buffer.alloc(23)
    a.writeInt16LE(c.t2, 0)
    a.writeInt8(c.t3, 2)
    a.writeUInt16LE(c.p1, 4)
    a.writeInt16LE(c.p2, 6)
    a.writeInt8(c.p3, 8)
    a.writeInt16LE(c.p4, 10)
    a.writeInt16LE(c.p5, 12)
    a.writeInt8(c.p7, 14)
    a.writeInt8(c.p6, 15)
    a.writeInt16LE(c.p8, 18)
    a.writeInt16LE(c.p9, 20)
    a.writeUInt8(c.p10, 22)
    const b = Buffer.alloc(14)
    b[0] = c.h2 >> 4 // 0xE1: par_h2<11:4>
    b[1] = ((c.h2 & 0x0f) << 4) | (c.h1 & 0x0f) // 0xE2: par_h2<3:0>, par_h1<3:0>
    b[2] = c.h1 >> 4 // 0xE3: par_h1<11:4>
    b.writeInt8(c.h3, 3)
    b.writeInt8(c.h4, 4)
    b.writeInt8(c.h5, 5)
    b.writeUInt8(c.h6, 6)
    b.writeInt8(c.h7, 7)
    b.writeUInt16LE(c.t1, 8)
    b.writeInt16LE(c.g2, 10)
    b.writeInt8(c.g1, 12)
    b.writeInt8(c.g3, 13)
    const r = Buffer.alloc(5)
    r.writeInt8(c.resHeatVal, 0)
    r[2] = (c.resHeatRange & 0x03) << 4
    r[4] = (c.rangeSwErr & 0x0f) << 4
    return { a, b, c: r }
}

const K1 = [2147483647n, 2147483647n, 2147483647n, 2147483647n, 2147483647n, 2126008810n, 2147483647n, 2130303777n].concat([
    2147483647n,
    2147483647n,
    2143188679n,
    2136746228n,
    2147483647n,
    2126008810n,
    2147483647n,
    2147483647n,
])
const K2 = [4096000000n, 2048000000n, 1024000000n, 512000000n, 255744255n, 127110228n, 64000000n, 32258064n].concat([
    16016016n,
    8000000n,
    4000000n,
    2000000n,
    1000000n,
    500000n,
    250000n,
    125000n,
])

/** What the integer formulas give: °C × 100, Pa, %RH × 1000, Ω, and res_heat for `targetC` at `ambientC`. */
export function compensateInteger(
    c: Bme680Params,
    adc: { t: number; p: number; h: number; gas: number; gasRange: number },
    targetC: number,
    ambientC: number
): { t100: number; pa: number; h1000: number; ohm: number; resHeat: number } {
    const B = BigInt
    // §3.3.1
    let var1 = (B(adc.t) >> 3n) - (B(c.t1) << 1n)
    let var2 = (var1 * B(c.t2)) >> 11n
    let var3 = ((((var1 >> 1n) * (var1 >> 1n)) >> 12n) * (B(c.t3) << 4n)) >> 14n
    const tFine = var2 + var3
    const t100 = (tFine * 5n + 128n) >> 8n
    // §3.3.2
    var1 = (tFine >> 1n) - 64000n
    var2 = ((((var1 >> 2n) * (var1 >> 2n)) >> 11n) * B(c.p6)) >> 2n
    var2 = var2 + ((var1 * B(c.p5)) << 1n)
    var2 = (var2 >> 2n) + (B(c.p4) << 16n)
    var1 = (((((var1 >> 2n) * (var1 >> 2n)) >> 13n) * (B(c.p3) << 5n)) >> 3n) + ((B(c.p2) * var1) >> 1n)
    var1 = var1 >> 18n
    var1 = ((32768n + var1) * B(c.p1)) >> 15n
    let pa = 1048576n - B(adc.p)
    pa = (pa - (var2 >> 12n)) * 3125n
    pa = pa >= 1n << 30n ? (pa / var1) << 1n : (pa << 1n) / var1
    var1 = (B(c.p9) * (((pa >> 3n) * (pa >> 3n)) >> 13n)) >> 12n
    var2 = ((pa >> 2n) * B(c.p8)) >> 13n
    var3 = ((pa >> 8n) * (pa >> 8n) * (pa >> 8n) * B(c.p10)) >> 17n
    pa = pa + ((var1 + var2 + var3 + (B(c.p7) << 7n)) >> 4n)
    // §3.3.3
    const ts = t100
    var1 = B(adc.h) - B(c.h1) * 16n - (((ts * B(c.h3)) / 100n) >> 1n)
    var2 = (B(c.h2) * ((ts * B(c.h4)) / 100n + ((ts * ((ts * B(c.h5)) / 100n)) >> 6n) / 100n + (1n << 14n))) >> 10n
    var3 = var1 * var2
    let var4 = (B(c.h6) << 7n) + (ts * B(c.h7)) / 100n
    var4 = var4 >> 4n
    const var5 = ((var3 >> 14n) * (var3 >> 14n)) >> 10n
    const var6 = (var4 * var5) >> 1n
    let h1000 = (((var3 + var6) >> 10n) * 1000n) >> 12n
    h1000 = h1000 > 100000n ? 100000n : h1000 < 0n ? 0n : h1000
    // §3.4.1
    const g1 = ((1340n + 5n * B(c.rangeSwErr)) * K1[adc.gasRange]) >> 16n
    const g2 = (B(adc.gas) << 15n) - 16777216n + g1
    const g3 = (K2[adc.gasRange] * g1) >> 9n
    const ohm = (g3 + (g2 >> 1n)) / g2
    // §3.3.5
    const h1 = ((B(ambientC) * B(c.g3)) / 1000n) * 256n
    const h2 = (B(c.g1) + 784n) * ((((B(c.g2) + 154009n) * B(targetC) * 5n) / 100n + 3276800n) / 10n)
    const h4 = (h1 + h2 / 2n) / (B(c.resHeatRange) + 4n)
    const h5 = 131n * B(c.resHeatVal) + 65536n
    const resHeat = ((h4 / h5 - 250n) * 34n + 50n) / 100n
    return { t100: Number(t100), pa: Number(pa), h1000: Number(h1000), ohm: Number(ohm), resHeat: Number(resHeat) }
}

/** Data field 0 (0x1D..0x2B) holding these ADC values, new_data set, gas valid and the heater stable when `gasValid`. */
export function dataField(adc: { t: number; p: number; h: number; gas: number; gasRange: number }, gasValid: boolean): Buffer {
    const d = Buffer.alloc(15)
    d[0] = 0x80
    d[2] = adc.p >> 12
    d[3] = (adc.p >> 4) & 0xff
    d[4] = (adc.p & 0x0f) << 4
    d[5] = adc.t >> 12
    d[6] = (adc.t >> 4) & 0xff
    d[7] = (adc.t & 0x0f) << 4
    d[8] = adc.h >> 8
    d[9] = adc.h & 0xff
    d[13] = adc.gas >> 2
    d[14] = ((adc.gas & 0x03) << 6) | (gasValid ? 0x30 : 0) | adc.gasRange
    return d
}
