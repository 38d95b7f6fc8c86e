import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { CborDecodeOptions, CborError, CborMap, CborSpan, CborTag, CborValue, decodeCbor, encodeCbor } from "../../src/codec/cbor"
import { APPENDIX_A } from "../vectors/rfc8949-appendix-a"
import { refusal } from "./support"

/** Decodes `data` and returns the CborError message; fails the test if it decodes or throws anything else. */
function decodeRefusal(data: Buffer, options?: CborDecodeOptions): string {
    return refusal(CborError, () => decodeCbor(data, options))
}

/** Encodes `value` and returns the CborError message; fails the test if it encodes or throws anything else. */
function encodeRefusal(value: CborValue): string {
    return refusal(CborError, () => encodeCbor(value))
}

/** Equal, with NaN equal to itself (the VM has no negative zero to tell apart). */
function sameNumber(a: number, b: number) {
    if (b !== b) return a !== a
    return a === b
}

describe("RFC 8949 Appendix A", () => {
    test("every example decodes, round-trips or is refused as listed", async () => {
        let checked = 0
        for (const v of APPENDIX_A) {
            const bytes = Buffer.from(v.hex, "hex")
            if (v.outcome === "refused") {
                decodeRefusal(bytes)
                decodeRefusal(bytes, { deterministic: false })
            } else if (v.outcome === "lenient") {
                decodeRefusal(bytes)
                const value = decodeCbor(bytes, { deterministic: false }) as number
                if (!sameNumber(value, v.number)) throw new Error(`${v.diag}: got ${value}`)
            } else {
                const value = decodeCbor(bytes)
                if (v.number !== undefined && !sameNumber(value as number, v.number)) throw new Error(`${v.diag}: got ${value}`)
                if (v.text !== undefined && value !== v.text) throw new Error(`${v.diag}: got ${value}`)
                const again = encodeCbor(value).toString("hex")
                if (v.outcome === "roundtrip" && again !== v.hex) throw new Error(`${v.diag}: re-encoded as ${again}`)
                if (v.outcome === "value" && decodeCbor(Buffer.from(again, "hex")) !== value)
                    throw new Error(`${v.diag}: re-encoding changed the value`)
            }
            checked++
            await ds.sleep(0)
        }
        expect(checked).toBe(APPENDIX_A.length)
    })
})

describe("encoder", () => {
    test("integers take the shortest head", () => {
        expect(encodeCbor(23).toString("hex")).toBe("17")
        expect(encodeCbor(255).toString("hex")).toBe("18ff")
        expect(encodeCbor(65536).toString("hex")).toBe("1a00010000")
        expect(encodeCbor(4294967296).toString("hex")).toBe("1b0000000100000000")
        expect(encodeCbor(-25).toString("hex")).toBe("3818")
        expect(encodeCbor(9007199254740991).toString("hex")).toBe("1b001fffffffffffff")
    })
    test("floats take the shortest exact form", () => {
        expect(encodeCbor(21.5).toString("hex")).toBe("f94d60")
        expect(encodeCbor(0.1).toString("hex")).toBe("fb3fb999999999999a")
        expect(encodeCbor(-0.5).toString("hex")).toBe("f9b800")
        expect(encodeCbor(101310.5).toString("hex")).toBe("fa47c5df40")
    })
    test("fractional numbers survive every path: alone, in arrays, in maps and under tags", () => {
        // a fraction computed at run time is falsy on this VM (devs_value_to_bool): nothing may test one for truth
        const fractions = [20.25, -1.5, 0.001].map(v => v + ds.millis() * 0)
        expect(encodeCbor(fractions[0]).toString("hex")).toBe("f94d10")
        expect(encodeCbor(fractions[1]).toString("hex")).toBe("f9be00")
        expect(encodeCbor(fractions[2]).toString("hex")).toBe("fb3f50624dd2f1a9fc")
        for (const v of fractions) expect(decodeCbor(encodeCbor(v))).toBe(v)
        // the shapes of an event record, a state report and a SenML record
        const decoded = decodeCbor(
            encodeCbor([fractions, new CborMap().set("uptime", fractions[0]).set(2, fractions[1]), new CborTag(1, fractions[2])])
        ) as CborValue[]
        const list = decoded[0] as number[]
        const map = decoded[1] as CborMap
        expect(list.join(" ")).toBe("20.25 -1.5 0.001")
        expect(map.get("uptime")).toBe(20.25)
        expect(map.get(2)).toBe(-1.5)
        expect((decoded[2] as CborTag).value).toBe(0.001)
    })
    test("map keys are sorted by their encoding", () => {
        const m = new CborMap().set("b", 1).set(10, 2).set(-1, 3).set("a", 4)
        expect(encodeCbor(m).toString("hex")).toBe("a40a0220036161046162" + "01")
    })
    test("duplicate keys are refused", () => {
        const m = new CborMap()
        m.keys.push(1, 1)
        m.values.push(1, 2)
        encodeRefusal(m)
    })
    test("values without a CBOR form are refused", () => {
        encodeRefusal({ a: 1 } as any)
        encodeRefusal(new CborTag(-1, 0))
    })
})

describe("decoding in place", () => {
    test("an item that starts inside the buffer: the bytes before it are not read, its end is the buffer's", () => {
        const item = encodeCbor([1, Buffer.from("abc")])
        const framed = Buffer.from("HTTP head\r\n\r\n").concat(item)
        const at = framed.length - item.length
        const v = decodeCbor(framed, { from: at }) as CborValue[]
        expect(v[0]).toBe(1)
        expect((v[1] as Buffer).toString("utf-8")).toBe("abc")
        // the head is not CBOR, and a start past the end or before the buffer is refused
        decodeRefusal(framed)
        expect(decodeRefusal(framed, { from: framed.length }).indexOf("empty") >= 0).toBe(true)
        decodeRefusal(framed, { from: framed.length + 1 })
        decodeRefusal(framed, { from: -1 })
        // maxBytes counts from the start
        decodeRefusal(framed, { from: at, maxBytes: item.length - 1 })
        expect(Array.isArray(decodeCbor(framed, { from: at, maxBytes: item.length }))).toBe(true)
        // an item that ends before the buffer does is refused
        decodeRefusal(framed.concat(hex`00`), { from: at })
    })
    test("byte strings above spanAbove are spans into the input, shorter ones copies", () => {
        const long = Buffer.alloc(300)
        long.fillAt(0, 300, 7)
        const item = encodeCbor([Buffer.from("hi"), long])
        const framed = hex`ff ff`.concat(item)
        const v = decodeCbor(framed, { from: 2, spanAbove: 256 }) as CborValue[]
        expect((v[0] as Buffer).toString("utf-8")).toBe("hi")
        const span = v[1] as CborSpan
        expect(span instanceof CborSpan).toBe(true)
        expect(span.length).toBe(300)
        expect(span.at + span.length).toBe(framed.length)
        expect(framed[span.at - 1]).toBe(0x2c) // the low byte of the 2-byte length head 59 01 2c
        // without the option every byte string is a copy, and a span has no encoding of its own
        expect((decodeCbor(item) as CborValue[])[1] instanceof Buffer).toBe(true)
        encodeRefusal(span)
    })
})

describe("decoder refuses malformed input", () => {
    test("empty, truncated and trailing", () => {
        expect(decodeRefusal(hex``).indexOf("empty") >= 0).toBe(true)
        expect(decodeRefusal(hex`19 01`).indexOf("truncated") >= 0).toBe(true)
        expect(decodeRefusal(hex`83 01 02`).indexOf("truncated") >= 0).toBe(true)
        expect(decodeRefusal(hex`01 02`).indexOf("trailing") >= 0).toBe(true)
    })
    test("lengths far beyond the input", () => {
        decodeRefusal(hex`5b 00 00 00 01 00 00 00 00`)
        decodeRefusal(hex`7a ff ff ff ff 61`)
        decodeRefusal(hex`9b 00 1f ff ff ff ff ff ff 01`)
        decodeRefusal(hex`bb 00 00 00 00 ff ff ff ff 01 02`)
    })
    test("nesting deeper than the limit", () => {
        const deep = Buffer.alloc(40)
        deep.fillAt(0, 39, 0x81)
        deep[39] = 0x01
        const msg = decodeRefusal(deep)
        expect(msg.indexOf("nesting") >= 0).toBe(true)
        // within the limit it decodes
        const ok = Buffer.alloc(10)
        ok.fillAt(0, 9, 0x81)
        ok[9] = 0x01
        expect(Array.isArray(decodeCbor(ok))).toBe(true)
    })
    test("too many items and too many bytes", () => {
        const many = Buffer.alloc(3 + 2000)
        many[0] = 0x99
        many[1] = 0x07
        many[2] = 0xd0
        decodeRefusal(many, { maxItems: 100, maxBytes: 4096 })
        decodeRefusal(Buffer.alloc(5000))
    })
    test("non-deterministic encodings", () => {
        expect(decodeRefusal(hex`18 17`).indexOf("non-shortest") >= 0).toBe(true)
        expect(decodeRefusal(hex`a2 02 00 01 00`).indexOf("sorted") >= 0).toBe(true)
        expect(decodeRefusal(hex`a2 01 00 01 00`).indexOf("duplicate") >= 0).toBe(true)
        decodeRefusal(hex`a2 01 00 01 00`, { deterministic: false })
        decodeRefusal(hex`fa 3f c0 00 00`)
        expect(decodeCbor(hex`fa 3f c0 00 00`, { deterministic: false })).toBe(1.5)
        expect(decodeCbor(hex`18 17`, { deterministic: false })).toBe(23)
    })
    test("reserved and invalid heads", () => {
        decodeRefusal(hex`1c`)
        decodeRefusal(hex`ff`)
        decodeRefusal(hex`f8 10`)
        decodeRefusal(hex`5f ff`)
    })
    test("invalid UTF-8 in text strings", () => {
        decodeRefusal(hex`62 c3 28`)
        decodeRefusal(hex`62 c0 80`) // overlong
        decodeRefusal(hex`63 ed a0 80`) // surrogate
        decodeRefusal(hex`61 e6`) // cut sequence
    })
    test("random bytes never crash or hang the decoder", async () => {
        let refused = 0
        let decoded = 0
        for (let i = 0; i < 300; ++i) {
            const len = 1 + (i % 40)
            const b = Buffer.alloc(len)
            ;(b as any).fillRandom()
            try {
                decodeCbor(b)
                decoded++
            } catch (e: any) {
                if (!(e instanceof CborError)) throw e
                refused++
            }
            if (i % 20 === 0) await ds.sleep(0)
        }
        expect(refused + decoded).toBe(300)
        expect(refused > 0).toBe(true)
    })
    test("every truncation of a valid item is refused", async () => {
        const whole = encodeCbor([1, "two", Buffer.from("three"), new CborMap().set(-2, "bn").set(2, 21.5), 1.1])
        for (let n = 1; n < whole.length; ++n) decodeRefusal(whole.slice(0, n))
        expect((decodeCbor(whole) as CborValue[]).length).toBe(5)
    })
})
