import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { CborError, encodeCbor } from "../../src/codec/cbor"
import { encodeReadingBatch, encodeReadingPacks, readingTime } from "../../src/codec/readings"
import { decodeSenml, encodeSenml, isValidSenmlName, ResolvedSenmlRecord, resolveSenml, SenmlError } from "../../src/codec/senml"
import { refusal } from "./support"

/** Decodes and resolves a pack that is valid CBOR; returns the message of the SenmlError it must throw. */
function senmlRefusal(data: Buffer): string {
    return refusal(SenmlError, () => resolveSenml(decodeSenml(data)))
}

describe("SenML in CBOR (RFC 8428)", () => {
    test("labels of RFC 8428 Table 4, keys in deterministic order", async () => {
        // [{-2: "urn:dev:ow:10e2073a01080063", 0: "temp", 1: "Cel", 2: 23.5, 6: -1}]
        const pack = await encodeSenml([{ bn: "urn:dev:ow:10e2073a01080063", n: "temp", u: "Cel", v: 23.5, t: -1 }])
        expect(pack.toString("hex")).toBe(
            "81a5" +
                "0064" +
                "74656d70" +
                "0163" +
                "43656c" +
                "02f94de0" +
                "0620" +
                "21781b" +
                Buffer.from("urn:dev:ow:10e2073a01080063").toString("hex")
        )
    })
    test("RFC 8428 §5.1.2 multiple datapoints resolve with base name and time", async () => {
        const pack = await encodeSenml([
            { bn: "urn:dev:ow:10e2073a01080063:", bt: 1320067464, bu: "%RH", n: "humidity", v: 20 },
            { n: "humidity", t: 60, v: 20.3 },
            { n: "temperature", u: "Cel", t: 60, v: 23.1 },
        ])
        const recs = resolveSenml(decodeSenml(pack))
        expect(recs.length).toBe(3)
        expect(recs[0].name).toBe("urn:dev:ow:10e2073a01080063:humidity")
        expect(recs[0].unit).toBe("%RH")
        expect(recs[0].time).toBe(1320067464)
        expect(recs[1].time).toBe(1320067524)
        expect(recs[1].value).toBe(20.3)
        expect(recs[2].unit).toBe("Cel")
        expect(recs[2].name).toBe("urn:dev:ow:10e2073a01080063:temperature")
    })
    test("fractional values, times and base values survive encoding, decoding and resolution", async () => {
        // computed at run time: such a fraction is falsy on this VM, so any truth test on it would lose it
        const f = (v: number) => v + ds.millis() * 0
        const pack = await encodeSenml([
            { bn: "d:", bt: f(-0.25), bv: f(0.5), n: "a", v: f(20.25), t: f(-1.5) },
            { n: "b", v: f(-1.5), t: f(0.001) },
            { n: "c", v: f(0.001), t: f(-4.123) },
        ])
        const recs = resolveSenml(decodeSenml(pack))
        expect(recs[0].value).toBe(20.75)
        expect(recs[1].value).toBe(-1)
        expect(recs[2].value).toBe(0.5 + 0.001)
        expect(recs[0].time).toBe(-1.75)
        expect(recs[1].time).toBe(-0.25 + 0.001)
        expect(recs[2].time).toBe(-0.25 - 4.123)
    })
    test("string, boolean and data values round-trip", async () => {
        const pack = await encodeSenml([
            { bn: "d:", n: "s", vs: "on" },
            { n: "b", vb: true },
            { n: "x", vd: hex`0102` },
        ])
        const recs = resolveSenml(decodeSenml(pack))
        expect(recs[0].stringValue).toBe("on")
        expect(recs[1].booleanValue).toBe(true)
        expect(recs[2].dataValue.toString("hex")).toBe("0102")
    })
    test("names follow RFC 8428 §4.5.1", () => {
        expect(isValidSenmlName("urn:dev:ow:10e2073a01080063:temp")).toBe(true)
        expect(isValidSenmlName("shtc3/temperature")).toBe(true)
        expect(isValidSenmlName("-temp")).toBe(false)
        expect(isValidSenmlName("te mp")).toBe(false)
        expect(isValidSenmlName("")).toBe(false)
    })
    test("invalid packs are refused with a clear error", () => {
        expect(senmlRefusal(hex`a0`).indexOf("array") >= 0).toBe(true) // a map, not a pack
        expect(senmlRefusal(hex`81 01`).indexOf("not a map") >= 0).toBe(true)
        expect(senmlRefusal(hex`81 a2 00 61 78 02 61 79`).indexOf("v must be a number") >= 0).toBe(true)
        expect(senmlRefusal(hex`81 a1 00 61 78`).indexOf("exactly one value") >= 0).toBe(true) // no value
        expect(senmlRefusal(hex`81 a3 00 61 78 02 01 04 f5`).indexOf("exactly one value") >= 0).toBe(true)
        expect(senmlRefusal(hex`81 a2 00 62 20 78 02 01`).indexOf("invalid name") >= 0).toBe(true)
        // not CBOR at all: the CBOR decoder refuses it first
        expect(refusal(CborError, () => decodeSenml(hex`81 a2 00 61`)).indexOf("truncated") >= 0).toBe(true)
    })
})

/** Decodes and resolves a pack of up to 64 records, a step at a time for the VM's step budget. */
async function decodeSlowly(pack: Buffer): Promise<ResolvedSenmlRecord[]> {
    await ds.sleep(0)
    const records = decodeSenml(pack)
    await ds.sleep(0)
    const resolved = resolveSenml(records)
    await ds.sleep(0)
    return resolved
}

describe("reading packs", () => {
    test("counters first, then a series per sensor quantity: its name as base name, the unit when it changes, value and time", async () => {
        const at = (sensor: string, quantity: "temperature" | "humidity" | "pressure", value: number, atMs: number) => ({
            sensor,
            quantity,
            value,
            atMs,
        })
        const pack = await encodeReadingBatch({
            readings: [
                at("shtc3", "temperature", 20.25, 1000),
                at("shtc3", "humidity", 44, 1000),
                at("bme680", "pressure", 101310, 1500),
                at("sht30", "temperature", 20.5, 2000),
                at("shtc3", "temperature", 20.5, 3000),
            ],
            faults: [{ sensor: "aht20", count: 3 }],
            dropped: 2,
            closedAtMs: 5000,
        })
        // [{0: "aht20/faults", 2: 3}, {0: "pipeline/dropped", 2: 2},
        //  {2: 20.25, 6: -4, -2: "shtc3/temperature", -4: "Cel"}, {2: 20.5, 6: -2}, {2: 20.5, 6: -3, -2: "sht30/temperature"},
        //  {2: 44, 6: -4, -2: "shtc3/humidity", -4: "%RH"}, {2: 101310, 6: -3.5, -2: "bme680/pressure", -4: "Pa"}] (cbor2)
        expect(pack.toString("hex")).toBe(
            "87a2006c61687432302f6661756c74730203a20070706970656c696e652f64726f707065640202a402f94d100623217173687463332f74656d70" +
                "65726174757265236343656ca202f94d200621a302f94d200622217173687433302f74656d7065726174757265a402182c0623216e73687463" +
                "332f68756d69646974792363255248a4021a00018bbe06f9c300216f626d653638302f707265737375726523625061"
        )
        await ds.sleep(0)
        const recs = resolveSenml(decodeSenml(pack))
        expect(recs[3].name).toBe("shtc3/temperature")
        expect(recs[3].unit).toBe("Cel")
        expect(recs[4].unit).toBe("Cel")
        expect(recs[5].unit).toBe("%RH")
        expect(recs[1].unit).toBe(undefined)
    })
    test("times are ages in seconds at a resolution of 2^-8 s: half floats up to 8 s, exact singles beyond", async () => {
        expect(readingTime(1000, 5000)).toBe(-4)
        expect(readingTime(4996, 5000)).toBe(-1 / 256)
        expect(readingTime(4999, 5000)).toBe(0) // 1 ms: below half a step
        expect(readingTime(4123, 5000)).toBe(-225 / 256) // 0.877 s
        expect(readingTime(5000, 5000)).toBe(0)
        const t = (atMs: number) => encodeCbor(readingTime(atMs, 10000)).toString("hex")
        expect(t(2003)).toBe("f9c7ff") // -7.99609375, 3 bytes
        expect(t(1000)).toBe("28") // -9: an integer
        expect(t(1003)).toBe("fac10ff000") // -8.99609375: more than 11 significant bits, a single
    })
    test("a batch fills as few packs of a bounded size as it can, readings in order, counters in the first", async () => {
        const quantities: ("temperature" | "humidity")[] = ["temperature", "humidity"]
        const readings = []
        for (let i = 0; i < 64; ++i)
            readings.push({ sensor: `s${i % 4}`, quantity: quantities[(i >> 2) % 2], value: i + 0.5, atMs: 100 * i })
        const batch = { readings, faults: [{ sensor: "s9", count: 1 }], dropped: 0, closedAtMs: 6400 }
        const packs = await encodeReadingPacks(batch, 500)
        expect(packs.length).toBe(2)
        let values: number[] = []
        for (let p = 0; p < packs.length; ++p) {
            expect(packs[p].length <= 500).toBe(true)
            const recs = await decodeSlowly(packs[p])
            expect(recs[0].name === "s9/faults").toBe(p === 0)
            // within a pack, readings are grouped per series: order them by value (= sampling order) to compare
            for (const r of recs) if (r.unit !== undefined) values.push(r.value)
        }
        values = values.sort((a, b) => a - b)
        expect(values.length).toBe(64)
        for (let i = 0; i < 64; ++i) expect(values[i]).toBe(i + 0.5)
        // the first pack is full: one more reading would not have fitted
        const first = (await decodeSlowly(packs[0])).length - 1
        expect((await encodeReadingBatch({ ...batch, readings: readings.slice(0, first + 1) })).length > 500).toBe(true)
        // a batch that fits is one pack, and a batch of counters only is one pack too
        expect((await encodeReadingPacks({ ...batch, readings: readings.slice(0, 15) }, 500)).length).toBe(1)
        expect((await encodeReadingPacks({ ...batch, readings: [] }, 500)).length).toBe(1)
    })
})
