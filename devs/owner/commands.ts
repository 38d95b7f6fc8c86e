/**
 * Owner-side commands for a device, as it understands them
 * (src/uplink/downlink.ts): a deterministic CBOR map with text keys, sealed
 * by the owner service for `things/<id>/down/cmd`.
 */
import { encode } from "cbor2"

/** What a device understands. `update` names a release: its image's SHA-256 (hex here, 32 bytes on the wire) and its sequence. */
export type Command =
    | { cmd: "interval"; sensor: string; ms: number }
    | { cmd: "events" }
    | { cmd: "state" }
    | { cmd: "update-check" }
    | { cmd: "update"; digest: string; sequence: number }

/** An image's SHA-256 as the owner names it: 64 lower-case hex digits. */
export const DIGEST_HEX = /^[0-9a-f]{64}$/

/** The command topic of a device. */
export function commandTopic(deviceId: string): string {
    return `things/${deviceId}/down/cmd`
}

/** Encodes a command as the device expects it: a deterministic CBOR map with text keys (RFC 8949 §4.2.1). */
export function encodeCommand(command: Command): Buffer {
    const fields: [string, unknown][] = Object.entries(command)
    // the digest goes as a byte string (a plain Uint8Array: cbor2 writes a Node Buffer as an object)
    if (command.cmd === "update") fields.splice(1, 1, ["digest", new Uint8Array(Buffer.from(command.digest, "hex"))])
    return Buffer.from(encode(new Map(fields), { cde: true }))
}

/** The sampling intervals a device accepts (src/sensors/config.ts): 100 ms to 24 h. */
const INTERVAL_MS = { min: 100, max: 86_400_000 }

/**
 * Checks a command from a client (the API's JSON, the CLI's words) at the
 * boundary; returns the command, or a sentence saying what is wrong.
 */
export function parseCommand(v: unknown): Command | string {
    if (!v || typeof v !== "object" || Array.isArray(v)) return "a command is an object with cmd"
    const c = v as Record<string, unknown>
    if (c.cmd === "interval") {
        if (typeof c.sensor !== "string" || !/^[a-z0-9_-]{1,32}$/.test(c.sensor)) return "interval needs a sensor name (e.g. shtc3)"
        if (!Number.isInteger(c.ms) || (c.ms as number) < INTERVAL_MS.min || (c.ms as number) > INTERVAL_MS.max)
            return `interval needs ms, a whole number ${INTERVAL_MS.min}..${INTERVAL_MS.max}`
        return { cmd: "interval", sensor: c.sensor, ms: c.ms as number }
    }
    if (c.cmd === "update") {
        if (typeof c.digest !== "string" || !DIGEST_HEX.test(c.digest)) return "update needs digest, the image's SHA-256 (64 hex digits)"
        if (!Number.isSafeInteger(c.sequence) || (c.sequence as number) < 1) return "update needs sequence, a whole number from 1"
        return { cmd: "update", digest: c.digest, sequence: c.sequence as number }
    }
    if (c.cmd === "events" || c.cmd === "state" || c.cmd === "update-check") return { cmd: c.cmd }
    return "cmd must be one of interval, events, state, update-check, update"
}
