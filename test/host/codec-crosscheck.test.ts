/**
 * Cross-checks the firmware's CBOR and SenML encoders with an independent
 * library: the simulated device runs test/device/fixtures/emit-readings.ts,
 * and everything it prints is decoded here with cbor2, and re-encoded with
 * cbor2's core deterministic encoding (RFC 8949 §4.2.1) to the same bytes.
 */
import assert from "node:assert/strict"
import { before, describe, test } from "node:test"
import { decode, encode } from "cbor2"
import { collectHexLines, deviceLines, runInSimulator } from "../../devs/sim/devs-cli.ts"
import { decodeSenmlCbor } from "../../devs/owner/senml.ts"
import { BATCHES, CBOR_VALUES, READ_GAP_MS, READS } from "../device/fixtures/emit-readings-plan.ts"
import { curve } from "./support/simulated-curve.ts"

const cbor = { decode: <T = unknown>(b: Uint8Array): T => decode(new Uint8Array(b), { preferMap: true }) as T }

/** The bytes cbor2 produces for the same value in core deterministic encoding. */
function deterministic(b: Uint8Array): string {
    return Buffer.from(encode(cbor.decode(b), { cde: true })).toString("hex")
}

const UNITS: Record<string, string> = { temperature: "Cel", humidity: "%RH", pressure: "Pa", gas: "Ohm" }
const QUANTITIES = ["temperature", "humidity", "pressure", "gas"]
const SENSORS: [string, string[]][] = [
    ["shtc3", ["temperature", "humidity"]],
    ["sht30", ["temperature", "humidity"]],
    ["aht20", ["temperature", "humidity"]],
    ["bme680_77", ["temperature", "humidity", "pressure", "gas"]],
]

/** What the fixture must have produced, from its description: per series (sensor/quantity, ordered by unit) the curve's values. */
function expectedSeries(batch: number): { name: string; unit: string; values: number[] }[] {
    const out = []
    for (const q of QUANTITIES)
        for (const [sensor, quantities] of SENSORS) {
            if (!quantities.includes(q)) continue
            const values = []
            for (let i = 0; i < READS; ++i) {
                const n = batch * READS + i
                if (sensor === "aht20" && n % 4 === 3) continue // injected bus error
                if (sensor === "sht30" && n % 5 === 4 && q === "temperature") continue // injected NaN
                values.push(curve(q, n))
            }
            out.push({ name: `${sensor}/${q}`, unit: UNITS[q], values })
        }
    return out
}

let lines: string[] = []

before(async () => {
    const run = await runInSimulator("test/device/fixtures/emit-readings.ts", { timeoutMs: 60000 })
    assert.equal(run.code, 0, run.output)
    lines = deviceLines(run.output)
})

describe("SenML-CBOR from the simulated device, decoded with cbor2", () => {
    test("every batch is a SenML pack: fault counters, then a series per sensor quantity on the curve, with true ages", () => {
        const packs = collectHexLines(lines, "senml-cbor")
        assert.equal(packs.size, BATCHES)
        const faults: [string, number][][] = [
            [
                ["aht20/faults", 1],
                ["sht30/faults", 1],
            ],
            [
                ["aht20/faults", 3],
                ["sht30/faults", 2],
            ],
            [
                ["aht20/faults", 4],
                ["sht30/faults", 3],
            ],
        ]
        for (let b = 0; b < BATCHES; ++b) {
            const pack = cbor.decode<Map<number, unknown>[]>(packs.get(String(b))!)
            assert.ok(Array.isArray(pack))
            // counters: name and value only, before any base name or base unit
            const counters = pack.slice(0, 2)
            assert.deepEqual(
                counters.map(c => [...c.keys()]),
                [
                    [0, 2],
                    [0, 2],
                ]
            )
            assert.deepEqual(
                counters.map(c => [c.get(0), c.get(2)]),
                faults[b]
            )
            // series: the first record names it (bn) and gives the unit (bu) when it changes; the rest are {v, t} (RFC 8428 §4.1)
            let at = 2
            let unit: unknown = undefined
            for (const series of expectedSeries(b)) {
                let previous = -Infinity
                series.values.forEach((value, k) => {
                    const r = pack[at++]
                    const where = `${series.name} read ${k} of batch ${b}`
                    const keys = [...r.keys()].sort((x, y) => x - y)
                    if (k === 0) {
                        assert.equal(r.get(-2), series.name, where)
                        assert.deepEqual(keys, series.unit === unit ? [-2, 2, 6] : [-4, -2, 2, 6], where)
                        if (series.unit !== unit) assert.equal(r.get(-4), series.unit, where)
                        unit = series.unit
                    } else assert.deepEqual(keys, [2, 6], where)
                    assert.equal(r.get(2), value, where)
                    // true ages (RFC 8428 §4.5.3: negative = seconds before now) in steps of 2^-8 s: rounds 40 ms apart, oldest first
                    const t = r.get(6) as number
                    assert.ok(t < 0 && t > -10 && t > previous && Number.isInteger(t * 256), `${where}: time ${t} after ${previous}`)
                    const span = ((READS - 1) * READ_GAP_MS) / 1000
                    if (k === 0 && series.values.length === READS)
                        assert.ok(t <= -span, `${where}: ${READS} rounds ${READ_GAP_MS} ms apart, ${t} s`)
                    previous = t
                })
            }
            assert.equal(at, pack.length)
            // the owner's decoder resolves the same names, units and values
            const resolved = decodeSenmlCbor(packs.get(String(b))!)
            assert.deepEqual(
                resolved.slice(2).map(r => `${r.name} ${r.unit} ${r.value}`),
                expectedSeries(b).flatMap(s => s.values.map(v => `${s.name} ${s.unit} ${v}`))
            )
        }
    })

    test("packs are byte for byte cbor2's deterministic encoding (RFC 8949 §4.2.1)", () => {
        const packs = collectHexLines(lines, "senml-cbor")
        for (const bytes of packs.values()) assert.equal(bytes.toString("hex"), deterministic(bytes))
    })
})

describe("encodings of single values, decoded with cbor2", () => {
    test("each value decodes to what the device encoded", () => {
        const values = collectHexLines(lines, "cbor-value")
        assert.equal(values.size, CBOR_VALUES.length + 3)
        CBOR_VALUES.forEach((v, i) => assert.equal(cbor.decode(values.get(String(i))!), v, `value ${i}`))
        const n = CBOR_VALUES.length
        assert.deepEqual([...cbor.decode<Uint8Array>(values.get(String(n))!)], [0x00, 0x01, 0xfe, 0xff])
        const nested = cbor.decode(values.get(String(n + 1))!)
        assert.deepEqual(nested, [
            1,
            [2, 3],
            new Map<unknown, unknown>([
                [-3, 1.5],
                ["b", [true, false, null]],
            ]),
        ])
        assert.deepEqual(cbor.decode(values.get(String(n + 2))!), new Date(1363896240 * 1000))
    })

    test("each encoding is byte for byte cbor2's deterministic encoding", () => {
        const values = collectHexLines(lines, "cbor-value")
        for (const [id, bytes] of values) {
            // cbor2 turns tag 1 into a Date and re-encodes it as a float: compare the rest
            if (bytes[0] === 0xc1) continue
            assert.equal(bytes.toString("hex"), deterministic(bytes), `value ${id}`)
        }
    })

    test("floats use the shortest exact width (RFC 8949 §4.2.2)", () => {
        const values = collectHexLines(lines, "cbor-value")
        const head = (v: number) => values.get(String(CBOR_VALUES.indexOf(v)))![0]
        assert.equal(head(0.5), 0xf9) // half
        assert.equal(head(21.25), 0xf9) // half
        assert.equal(head(1.1), 0xfb) // double
        assert.equal(head(100000.5), 0xfa) // single
        assert.equal(head(5.960464477539063e-8), 0xf9) // 2^-24: half subnormal
    })
})

describe("replies to the owner's commands, decoded with cbor2", () => {
    test("the state report: the command it answers, the running image, the update phase, the queue and the intervals", () => {
        const bytes = collectHexLines(lines, "state-report").get("0")!
        assert.deepEqual(
            cbor.decode(bytes),
            new Map<unknown, unknown>([
                ["answers", 42],
                ["boot", 3],
                ["seq", 7],
                ["image", new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])],
                ["phase", "idle"],
                ["events", 12],
                ["queued", 2],
                ["uptime", 1234.25],
                ["dropped", 1],
                [
                    "intervals",
                    new Map<unknown, unknown>([
                        ["shtc3", 7000],
                        ["bme680_77", 5000],
                    ]),
                ],
            ])
        )
        assert.equal(bytes.toString("hex"), deterministic(bytes))
    })
    test("event records: [seq, boot, uptime ms, kind, detail]", () => {
        const bytes = collectHexLines(lines, "event-records").get("0")!
        assert.deepEqual(cbor.decode(bytes), [[4, 2, 20.25, "command", "update check requested"]])
        assert.equal(bytes.toString("hex"), deterministic(bytes))
    })
})
