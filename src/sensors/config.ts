/**
 * Which sensors a device has and how often each is read.
 *
 * On a board, the list comes from the board definition (`boards/*.board.json`,
 * key `sensors`), compiled into the device configuration when the runtime is
 * flashed, so adding a sensor to a board is a data change, not a code change.
 * The simulator has no board: it gets `SIMULATOR_SENSORS`.
 *
 * Grammar: `model[:address][@intervalMs]`, comma-separated, e.g.
 * `shtc3@5000,bme680:0x77@10000`.
 */
import * as ds from "@devicescript/core"
import { isSensorModel } from "./datasheet"
import { SensorConfig } from "./types"

/** Interval used when an entry does not give one. */
export const DEFAULT_INTERVAL_MS = 10000
/** Reads more often than this gain nothing on these parts and starve the uplink. */
export const MIN_INTERVAL_MS = 100
/** A day: anything longer is a typo. */
export const MAX_INTERVAL_MS = 86400000

/** One simulated part of each kind, at staggered intervals. */
export const SIMULATOR_SENSORS = "shtc3@2000,sht30@3000,aht20@4000,bme680@5000"

/** Raised for a sensor list that does not parse. */
export class SensorConfigError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "SensorConfigError"
    }
}

/** Parses a sensor list. Throws `SensorConfigError` naming the bad entry. */
export function parseSensorList(spec: string): SensorConfig[] {
    const out: SensorConfig[] = []
    if (typeof spec !== "string" || spec.trim().length === 0) throw new SensorConfigError("empty sensor list")
    for (const raw of spec.split(",")) {
        const entry = raw.trim()
        let rest = entry
        let intervalMs = DEFAULT_INTERVAL_MS
        const at = rest.indexOf("@")
        if (at >= 0) {
            intervalMs = parseDecimal(rest.slice(at + 1), entry)
            rest = rest.slice(0, at)
        }
        let address: number = undefined
        const colon = rest.indexOf(":")
        if (colon >= 0) {
            address = parseAddress(rest.slice(colon + 1), entry)
            rest = rest.slice(0, colon)
        }
        if (!isSensorModel(rest)) throw new SensorConfigError(`unknown sensor "${rest}" in "${entry}"`)
        if (intervalMs < MIN_INTERVAL_MS || intervalMs > MAX_INTERVAL_MS)
            throw new SensorConfigError(`interval ${intervalMs} ms in "${entry}" outside ${MIN_INTERVAL_MS}..${MAX_INTERVAL_MS}`)
        const name = address === undefined ? rest : `${rest}_${hexByte(address)}`
        for (const c of out) if (c.name === name) throw new SensorConfigError(`sensor "${name}" listed twice`)
        out.push({ model: rest, name, address, intervalMs })
    }
    return out
}

/** The sensor list of the board this program runs on, or of the simulator. */
export function boardSensorList(): string {
    if (ds.isSimulator()) return SIMULATOR_SENSORS
    // `sensors` is our own key in the board's device configuration
    const spec = ds._dcfgString("sensors" as any)
    if (!spec) throw new SensorConfigError("board definition has no `sensors` entry")
    return spec
}

function hexByte(v: number): string {
    const digits = "0123456789abcdef"
    return digits[(v >> 4) & 0xf] + digits[v & 0xf]
}

function parseDecimal(s: string, entry: string): number {
    if (s.length === 0 || s.length > 9) throw new SensorConfigError(`bad interval in "${entry}"`)
    let v = 0
    for (let i = 0; i < s.length; ++i) {
        const d = s.charCodeAt(i) - 0x30
        if (d < 0 || d > 9) throw new SensorConfigError(`bad interval in "${entry}"`)
        v = v * 10 + d
    }
    return v
}

function parseAddress(s: string, entry: string): number {
    const hexDigits = "0123456789abcdef"
    const lower = s.toLowerCase()
    if (lower.length < 3 || lower.length > 4 || lower.slice(0, 2) !== "0x")
        throw new SensorConfigError(`bad I2C address in "${entry}" (want 0x08..0x77)`)
    let v = 0
    for (let i = 2; i < lower.length; ++i) {
        const d = hexDigits.indexOf(lower[i])
        if (d < 0) throw new SensorConfigError(`bad I2C address in "${entry}"`)
        v = v * 16 + d
    }
    // 7-bit addresses outside 0x08..0x77 are reserved by the I2C specification
    if (v < 0x08 || v > 0x77) throw new SensorConfigError(`I2C address ${s} in "${entry}" is reserved`)
    return v
}
