import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { CborMap, decodeCbor, encodeCbor } from "../../src/codec/cbor"
import { encodeEventRecords, encodeStateReport } from "../../src/control/commands"
import { EventLog } from "../../src/events/log"
import { applyStoredIntervals, storeInterval } from "../../src/pipeline/intervals"
import { SensorConfig } from "../../src/sensors/types"
import { deleteKey, readBytes, SettingKey, writeBytes } from "../../src/storage/settings"

/** The board's sensors, fresh, as after a reboot. */
function board(): SensorConfig[] {
    return [
        { model: "shtc3", name: "shtc3", intervalMs: 2000 },
        { model: "bme680", name: "bme680", intervalMs: 5000 },
    ]
}

/** Intervals after applying what flash holds to fresh configs, and the storage-corrupt events that took. */
async function afterReboot(log: EventLog): Promise<string> {
    const before = log.total()
    const sensors = board()
    await applyStoredIntervals(sensors, log)
    const corrupt = (await log.list()).filter(e => e.seq >= before && e.kind === "storage-corrupt").length
    return `${sensors[0].intervalMs} ${sensors[1].intervalMs} corrupt=${corrupt}`
}

describe("intervals set by command", () => {
    test("survive a reboot, per sensor; a name the board no longer has is left alone", async () => {
        const log = await EventLog.open({ capacity: 8, prefix: "ti", boot: 0 })
        await deleteKey(SettingKey.SensorIntervals)
        expect(await afterReboot(log)).toBe("2000 5000 corrupt=0")
        await storeInterval("shtc3", 7000, log)
        await storeInterval("gone", 9000, log)
        expect(await afterReboot(log)).toBe("7000 5000 corrupt=0")
        await storeInterval("shtc3", 7500, log)
        await storeInterval("bme680", 100, log)
        expect(await afterReboot(log)).toBe("7500 100 corrupt=0")
    })
    test("a record flash cannot be trusted with is dropped and logged; the board's intervals stand", async () => {
        const log = await EventLog.open({ capacity: 8, prefix: "ti", boot: 0 })
        const hostile = [
            hex`ff00`, // not CBOR
            encodeCbor([1, 2]), // not a map
            encodeCbor(new CborMap().set("shtc3", 50)), // below 100 ms
            encodeCbor(new CborMap().set("shtc3", 86400001)), // above a day
            encodeCbor(new CborMap().set("shtc3", 2500.5)), // not whole
            encodeCbor(new CborMap().set("shtc3", "7000")), // not a number
            encodeCbor(new CborMap().set(1, 7000)), // not a name
            encodeCbor(new CborMap().set("shtc3", 7000).set("bme680", -1)), // one bad entry spoils the record
        ]
        for (const record of hostile) {
            await writeBytes(SettingKey.SensorIntervals, record)
            expect(await afterReboot(log)).toBe("2000 5000 corrupt=1")
            expect(await readBytes(SettingKey.SensorIntervals)).toBe(undefined)
            await ds.sleep(0)
        }
    })
})

describe("replies", () => {
    test("the state report names the command it answers and carries what the console shows", () => {
        const uptime = 1234.5 + ds.millis() * 0
        const report = decodeCbor(
            encodeStateReport({
                answers: 42,
                boot: 3,
                uptime,
                image: hex`0102030405060708`,
                seq: 7,
                phase: "trial",
                events: 12,
                queued: 2,
                dropped: 1,
                intervals: [
                    { sensor: "shtc3", ms: 7000 },
                    { sensor: "bme680", ms: 5000 },
                ],
            })
        ) as CborMap
        expect(report.get("answers")).toBe(42)
        expect(report.get("boot")).toBe(3)
        // a fraction computed at run time survives (this VM reads one as false)
        expect(report.get("uptime")).toBe(1234.5)
        expect((report.get("image") as Buffer).toString("hex")).toBe("0102030405060708")
        expect(report.get("seq")).toBe(7)
        expect(report.get("phase")).toBe("trial")
        expect(report.get("events")).toBe(12)
        expect(report.get("queued")).toBe(2)
        expect(report.get("dropped")).toBe(1)
        const intervals = report.get("intervals") as CborMap
        expect(intervals.get("shtc3")).toBe(7000)
        expect(intervals.get("bme680")).toBe(5000)
        expect(report.size()).toBe(10)
    })
    test("event records keep their fields, fractional numbers included", () => {
        const uptimeMs = 20.25 + ds.millis() * 0
        const decoded = decodeCbor(
            encodeEventRecords([{ seq: 4, boot: 2, uptimeMs, kind: "command", detail: "interval shtc3 set to 7000 ms" }])
        ) as any[][]
        expect(decoded.length).toBe(1)
        expect(decoded[0].join("|")).toBe("4|2|20.25|command|interval shtc3 set to 7000 ms")
    })
})
