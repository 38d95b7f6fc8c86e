/**
 * Owner-side commands for a device, as it understands them
 * (src/uplink/downlink.ts): a deterministic CBOR map with text keys, sealed
 * by the owner service for `things/<id>/down/cmd`.
 */
import { encode } from "cbor2"

/**
 * What a device understands. `update` names a published release: its image's
 * SHA-256 (hex here, a 32-byte string on the wire) and its manifest's sequence.
 */
export type Command =
    | { cmd: "interval"; sensor: string; ms: number }
    | { cmd: "update"; digest: string; sequence: number }
    | { cmd: "events" }
    | { cmd: "state" }
    | { cmd: "update-check" }

/** An image's SHA-256 as the owner names it: 64 lower-case hex digits. */
export const DIGEST_HEX = /^[0-9a-f]{64}$/

/** The command topic of a device. */
export function commandTopic(deviceId: string): string {
    return `things/${deviceId}/down/cmd`
}

/** Encodes a command as the device expects it: a deterministic CBOR map with text keys (RFC 8949 §4.2.1). */
export function encodeCommand(command: Command): Buffer {
    const fields: Record<string, unknown> = { ...command }
    // a plain Uint8Array: cbor2 encodes a Node Buffer as an object, not as a byte string
    if (command.cmd === "update") fields.digest = new Uint8Array(Buffer.from(command.digest, "hex"))
    return Buffer.from(encode(new Map(Object.entries(fields)), { cde: true }))
}

/** The sampling intervals a device accepts (src/sensors/config.ts): 100 ms to 24 h. */
const INTERVAL_MS = { min: 100, max: 86_400_000 }
/** A manifest's sequence is a CBOR uint the device compares with its floor; 0 names no release. */
const SEQUENCE = { min: 1, max: 0xffff_ffff }

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
        if (typeof c.digest !== "string" || !DIGEST_HEX.test(c.digest)) return "update needs the image's digest, 64 hex digits"
        if (!Number.isInteger(c.sequence) || (c.sequence as number) < SEQUENCE.min || (c.sequence as number) > SEQUENCE.max)
            return `update needs the release's sequence, a whole number ${SEQUENCE.min}..${SEQUENCE.max}`
        return { cmd: "update", digest: c.digest, sequence: c.sequence as number }
    }
    if (c.cmd === "events" || c.cmd === "state" || c.cmd === "update-check") return { cmd: c.cmd }
    return "cmd must be one of interval, update, events, state, update-check"
}
