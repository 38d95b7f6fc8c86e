import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { CborError } from "../../src/codec/cbor"
import { decodeSenml, encodeSenml, isValidSenmlName, resolveSenml, SenmlError } from "../../src/codec/senml"
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
