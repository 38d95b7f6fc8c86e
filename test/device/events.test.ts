import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { countBoot, EventLog, MAX_DETAIL_BYTES } from "../../src/events/log"
import { writeBytes } from "../../src/storage/settings"

describe("security event log", () => {
    test("keeps the newest events, drops the oldest first and counts the drops", async () => {
        const log = await EventLog.open({ capacity: 4, prefix: "ta", boot: 7 })
        await log.clear()
        for (let i = 0; i < 6; ++i) await log.record("auth-failure", `attempt ${i}`)
        const events = await log.list()
        expect(events.length).toBe(4)
        expect(events[0].detail).toBe("attempt 2")
        expect(events[3].detail).toBe("attempt 5")
        expect(events[3].seq).toBe(5)
        expect(events[3].boot).toBe(7)
        expect(log.dropped()).toBe(2)
    })
    test("survives a reopen (as after a reboot) and continues the sequence", async () => {
        const before = await EventLog.open({ capacity: 4, prefix: "ta", boot: 7 })
        const total = before.total()
        const after = await EventLog.open({ capacity: 4, prefix: "ta", boot: 8 })
        expect(after.total()).toBe(total)
        await after.record("factory-reset", "requested")
        const events = await after.list()
        expect(events[events.length - 1].seq).toBe(total)
        expect(events[events.length - 1].boot).toBe(8)
        expect(after.dropped()).toBe(total + 1 - 4)
    })
    test("ignores slots it did not write, and counts them", async () => {
        const log = await EventLog.open({ capacity: 4, prefix: "tb", boot: 0 })
        await log.clear()
        await log.record("downgrade", "server offered PLAIN")
        await writeBytes("tb02", hex`ff ff`)
        await writeBytes("tb03", hex`85 00 00 00 61 78 60`) // seq 0 in slot 3: misplaced
        const reopened = await EventLog.open({ capacity: 4, prefix: "tb", boot: 1 })
        expect(reopened.corruptSlots).toBe(2)
        expect(reopened.total()).toBe(1)
        expect((await reopened.list()).length).toBe(1)
    })
    test("cuts long details to a bounded size", async () => {
        const log = await EventLog.open({ capacity: 2, prefix: "tc", boot: 0 })
        let long = ""
        for (let i = 0; i < 30; ++i) long += "é水x"
        const e = await log.record("rate-limited", long)
        expect(Buffer.from(e.detail).length <= MAX_DETAIL_BYTES).toBe(true)
        expect((await log.list())[0].detail).toBe(e.detail)
    })
    test("fibers recording at once write different slots: every event is kept", async () => {
        const log = await EventLog.open({ capacity: 16, prefix: "td", boot: 0 })
        await log.clear()
        let done = 0
        const recorder = async (from: number) => {
            for (let i = 0; i < 3; ++i) await log.record("command", `fiber ${from} event ${i}`)
            done++
        }
        // before the fix two fibers took one sequence number, wrote one slot, and one of them threw "write not taken"
        for (let f = 0; f < 3; ++f) recorder.start(f)
        while (done < 3) await ds.sleep(10)
        const events = await log.list()
        expect(events.length).toBe(9)
        for (let k = 0; k < 9; ++k) expect(events[k].seq).toBe(k)
        expect(events.filter(e => e.detail.indexOf("fiber 2 ") === 0).length).toBe(3)
        expect(log.lost).toBe(0)
    })
    test("an event the store does not take is lost, counted and printed; the caller goes on", async () => {
        const log = await EventLog.open({ capacity: 4, prefix: "te", boot: 0 })
        await log.clear()
        // a kind too long for a settings value stands for a flash that does not take the write
        let long = ""
        for (let i = 0; i < 170; ++i) long += "k"
        const e = await log.record(long as any, "x")
        expect(e.seq).toBe(0)
        expect(log.lost).toBe(1)
        await log.record("downgrade", "after")
        const events = await log.list()
        expect(events.length).toBe(1)
        expect(events[0].detail).toBe("after")
    })
    test("the boot counter counts", async () => {
        const a = await countBoot()
        const b = await countBoot()
        expect(b).toBe(a + 1)
    })
})
