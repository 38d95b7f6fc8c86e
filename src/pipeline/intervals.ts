/**
 * Sampling intervals the owner set with the `interval` command, kept in flash
 * so that they outlive a reboot: `SettingKey.SensorIntervals` holds a CBOR map
 * of sensor name to milliseconds, only for sensors the owner changed (the
 * board's own intervals stay the default for the others).
 *
 * Flash is read back like any input: a record that does not decode, or holds
 * anything but short names with whole intervals in range, is dropped and
 * logged as storage-corrupt, and the board's intervals stand. A name the
 * board no longer has is left alone.
 */
import { CborMap, CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { EventLog } from "../events/log"
import { MAX_INTERVAL_MS, MIN_INTERVAL_MS } from "../sensors/config"
import { SensorConfig } from "../sensors/types"
import { deleteKey, readBytes, SettingKey, writeBytes } from "../storage/settings"

/** Longest sensor name kept (the board's names are far shorter). */
const MAX_NAME_LENGTH = 32

/** Whether a decoded record is a map of short names to whole intervals in range. */
function isIntervalMap(v: CborValue): boolean {
    if (!(v instanceof CborMap)) return false
    for (let i = 0; i < v.size(); ++i) {
        const name = v.keys[i]
        const ms = v.values[i]
        if (typeof name !== "string" || name.length > MAX_NAME_LENGTH) return false
        if (typeof ms !== "number" || ms !== Math.floor(ms) || ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS) return false
    }
    return true
}

/** The stored intervals, or undefined when there are none or the record cannot be trusted (then it is deleted and logged). */
async function readIntervals(events: EventLog): Promise<CborMap> {
    const stored = await readBytes(SettingKey.SensorIntervals)
    if (!stored) return undefined
    let v: CborValue
    try {
        v = decodeCbor(stored, { maxBytes: 160, maxDepth: 1, maxItems: 33 })
    } catch (e: any) {
        v = undefined
    }
    if (isIntervalMap(v)) return v as CborMap
    await events.record("storage-corrupt", "stored sensor intervals dropped")
    await deleteKey(SettingKey.SensorIntervals)
    return undefined
}

/** Sets each configured sensor's interval to the one its owner stored, if any. */
export async function applyStoredIntervals(sensors: SensorConfig[], events: EventLog) {
    const stored = await readIntervals(events)
    if (!stored) return
    for (const s of sensors) if (stored.has(s.name)) s.intervalMs = stored.get(s.name) as number
}

/** Keeps `ms` as `sensor`'s interval across reboots. Throws `StorageError` when the record would not fit. */
export async function storeInterval(sensor: string, ms: number, events: EventLog) {
    const stored = (await readIntervals(events)) ?? new CborMap()
    await writeBytes(SettingKey.SensorIntervals, encodeCbor(stored.set(sensor, ms)))
}
