import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { settings } from "@devicescript/settings"
import {
    deleteKey,
    MAX_KEY_LENGTH,
    MAX_VALUE_BYTES,
    readBytes,
    SettingKey,
    SettingPrefix,
    StorageError,
    writeBytes,
} from "../../src/storage/settings"
import { asyncRefusal } from "./support"

/** Every settings key: the type makes the compiler refuse this table if a key is missing or holds another key's value. */
const EVERY_KEY: { [name in keyof typeof SettingKey]: (typeof SettingKey)[name] } = {
    Boots: SettingKey.Boots,
    Identity: SettingKey.Identity,
    ResetRequest: SettingKey.ResetRequest,
    Enrolled: SettingKey.Enrolled,
    OwnerEnvelope: SettingKey.OwnerEnvelope,
    MessageCounter: SettingKey.MessageCounter,
    DownlinkCounter: SettingKey.DownlinkCounter,
    SlotA: SettingKey.SlotA,
    SlotB: SettingKey.SlotB,
    UpdateState: SettingKey.UpdateState,
    TrustRoot: SettingKey.TrustRoot,
    KeyList: SettingKey.KeyList,
    UpdateService: SettingKey.UpdateService,
    WsskKeyHeldFor: SettingKey.WsskKeyHeldFor,
    SensorIntervals: SettingKey.SensorIntervals,
}

/** Every ring prefix, checked by the compiler in the same way. */
const EVERY_PREFIX: { [name in keyof typeof SettingPrefix]: (typeof SettingPrefix)[name] } = {
    EventLog: SettingPrefix.EventLog,
    OutboundQueue: SettingPrefix.OutboundQueue,
}

function values(table: any): string[] {
    return Object.keys(table).map(name => table[name] as string)
}

describe("settings store", () => {
    test("every key fits the store and no two concerns share one", () => {
        const keys = values(EVERY_KEY)
        expect(keys.length).toBe(15)
        for (const key of keys) {
            expect(key.length >= 1 && key.length <= MAX_KEY_LENGTH).toBe(true)
            expect(keys.indexOf(key) === keys.lastIndexOf(key)).toBe(true)
        }
        const prefixes = values(EVERY_PREFIX)
        for (const prefix of prefixes) {
            // a ring's longest key: prefix, two slot digits, one chunk digit
            expect(prefix.length + 3 <= MAX_KEY_LENGTH).toBe(true)
            for (const key of keys) expect(key.indexOf(prefix) === 0).toBe(false)
            for (const other of prefixes) if (other !== prefix) expect(other.indexOf(prefix) === 0).toBe(false)
        }
    })

    test("refuses oversized values and keys before writing", async () => {
        const big = await asyncRefusal(StorageError, async () => await writeBytes("sn_big", Buffer.alloc(MAX_VALUE_BYTES + 1)))
        expect(big).toBe(`setting "sn_big": ${MAX_VALUE_BYTES + 1} bytes exceeds ${MAX_VALUE_BYTES}`)
        const long = await asyncRefusal(StorageError, async () => await writeBytes("a_key_too_long_", hex`01`))
        expect(long).toBe(`setting key "a_key_too_long_" must be 1..${MAX_KEY_LENGTH} characters`)
        expect(await readBytes("sn_big")).toBe(undefined)
    })

    test("a write is confirmed past a stale answer: the late answer to an earlier read of the same key", async () => {
        await writeBytes("sn_stale", hex`01`)
        // a read whose answer nobody waits for any more, as after a read that gave up on a busy service
        await settings.get("sn_stale")
        // before the fix its answer (01) was taken for the confirmation of 02: "write not taken"
        await writeBytes("sn_stale", hex`02`)
        expect((await readBytes("sn_stale")).toString("hex")).toBe("02")
        await settings.get("sn_stale")
        await deleteKey("sn_stale")
        expect(await readBytes("sn_stale")).toBe(undefined)
    })
    test("fibers reading one key at once all get its value: an answer that comes before a fiber waits is kept", async () => {
        await writeBytes("sn_shared", hex`0102`)
        let done = 0
        const answers: string[] = []
        const reader = async () => {
            for (let i = 0; i < 10; ++i) answers.push((await readBytes("sn_shared")).toString("hex"))
            done++
        }
        // before the fix, the first answer resumed a fiber that was still sending its own request: a RangeError, a panic
        for (let f = 0; f < 3; ++f) reader.start()
        while (done < 3) await ds.sleep(10)
        expect(answers.length).toBe(30)
        expect(answers.every(a => a === "0102")).toBe(true)
    })
})
