/**
 * The two messages between an owner and a device about an update, on the
 * host (src/update/report.ts and src/uplink/downlink.ts are the device's side):
 *
 *   the owner names a release, sealed for `things/<id>/down/cmd` like every command:
 *     { "cmd": "update", "digest": bstr (the image's SHA-256, 32 bytes), "sequence": uint (its manifest's) }
 *   the device answers each step on `things/<id>/up/update`, a COSE_Encrypt0 under its up key (like readings):
 *     { "digest": bstr (32), "sequence": uint, "step": tstr, ? "reason": tstr (at most 64 characters) }
 *
 * Both are CBOR maps with text keys. A report is opened like any uplink
 * message (devs/owner/consumer.ts: kid = the device id, the topic as external
 * AAD, a counter that must not repeat); neither the broker nor the update
 * service holds the up key, so neither can forge a step.
 */
import { decode } from "cbor2"
import { type Command } from "../owner/commands.ts"

/** The steps a device reports (src/update/report.ts says when each is sent). */
export const UPDATE_STEPS = ["approved", "trial", "confirmed", "rolled-back", "refused", "unhealthy"] as const
export type UpdateStep = (typeof UPDATE_STEPS)[number]

/** One step of an update, as the device reported it. */
export interface UpdateReport {
    /** The image's SHA-256, hex. */
    digest: string
    sequence: number
    step: UpdateStep
    reason?: string
}

/** The topic a device reports its update steps on. */
export function updateReportTopic(deviceId: string): string {
    return `things/${deviceId}/up/update`
}

/**
 * The `update` command naming a release, for the owner's `sealCommand`. The owner's command type
 * (devs/owner/commands.ts) does not list it yet: issue 12's owner service adds it.
 */
export function updateCommand(digestHex: string, sequence: number): Command {
    if (!/^[0-9a-f]{64}$/.test(digestHex)) throw new RangeError("an update names the image's SHA-256 (64 hex digits)")
    if (!Number.isInteger(sequence) || sequence < 1) throw new RangeError("an update names a sequence from 1")
    // a plain Uint8Array: cbor2 encodes a Node Buffer as an object, not as a byte string
    return { cmd: "update", digest: new Uint8Array(Buffer.from(digestHex, "hex")), sequence } as unknown as Command
}

/** Reads the plaintext of an authentic update report. Throws `Error` for one that is not shaped as above. */
export function decodeUpdateReport(plaintext: Uint8Array): UpdateReport {
    const m = decode(plaintext, { preferMap: true })
    if (!(m instanceof Map)) throw new Error("an update report is a map")
    const digest = m.get("digest")
    const sequence = m.get("sequence")
    const step = m.get("step")
    const reason = m.get("reason")
    if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new Error("an update report names a 32-byte digest")
    if (typeof sequence !== "number" || !Number.isInteger(sequence) || sequence < 0) throw new Error("an update report names a sequence")
    if (!UPDATE_STEPS.includes(step)) throw new Error(`unknown update step ${String(step).slice(0, 20)}`)
    if (reason !== undefined && typeof reason !== "string") throw new Error("an update report's reason is text")
    const known = new Set(["digest", "sequence", "step", "reason"])
    if ([...m.keys()].some(k => !known.has(k))) throw new Error("an update report has fields it should not")
    const report: UpdateReport = { digest: Buffer.from(digest).toString("hex"), sequence, step }
    if (reason !== undefined) report.reason = reason
    return report
}
