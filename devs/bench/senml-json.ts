/**
 * The baseline of the wire benchmarks: the same readings as plain SenML-JSON
 * (RFC 8428 §5), the way a device that never thought about bytes sends them:
 * every record with its name, unit, value and time, the base name on the
 * first, times to the millisecond.
 */
import type { SenmlReading } from "../owner/senml.ts"

/** Resolved readings as plain SenML-JSON; `baseName` (e.g. `urn:dev:sentinel:<id>:`) on the first record when given. */
export function plainSenmlJson(readings: SenmlReading[], baseName?: string): string {
    const records = readings.map((r): Record<string, unknown> => {
        // a counter has neither unit nor time
        if (r.unit === undefined) return { n: r.name, v: r.value }
        return { n: r.name, u: r.unit, v: r.value, t: Math.round(r.time * 1000) / 1000 }
    })
    if (baseName !== undefined && records.length > 0) records[0] = { bn: baseName, ...records[0] }
    return JSON.stringify(records)
}
