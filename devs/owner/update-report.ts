/**
 * How a device tells its owner each step of an update it was named
 * (src/update/report.ts is the device's side): a message on
 * `things/<id>/up/update`, a COSE_Encrypt0 under the device's up key like
 * readings (kid = the device id, the topic as external AAD, a counter that
 * must not repeat: ./verifier.ts checks all of it), whose plaintext is a CBOR
 * map with text keys:
 *
 *   { "digest": bstr (the image's SHA-256, 32 bytes), "sequence": uint (its manifest's),
 *     "step": tstr, ? "reason": tstr (at most 64 characters) }
 *
 * Neither the broker nor the update service holds the up key, so neither can
 * forge a step. The owner names the release with the `update` command (./commands.ts).
 */
import type { CborItem } from "./cbor.ts"

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

const FIELDS = new Set(["digest", "sequence", "step", "reason"])
/** The longest reason a device sends (src/update/report.ts cuts its own there). */
const MAX_REASON = 64

/** Reads the decoded plaintext of an authentic report. Throws `Error` for one not shaped as above. */
export function updateReportOf(v: CborItem): UpdateReport {
    if (!(v instanceof Map)) throw new Error("an update report is a map")
    for (const k of v.keys()) if (typeof k !== "string" || !FIELDS.has(k)) throw new Error("an update report has fields it should not")
    const digest = v.get("digest")
    const sequence = v.get("sequence")
    const step = v.get("step")
    const reason = v.get("reason")
    if (!Buffer.isBuffer(digest) || digest.length !== 32) throw new Error("an update report names a 32-byte digest")
    if (typeof sequence !== "number" || !Number.isSafeInteger(sequence) || sequence < 0)
        throw new Error("an update report names a sequence")
    if (!UPDATE_STEPS.includes(step as UpdateStep)) throw new Error("an update report names a step it should not")
    if (reason !== undefined && (typeof reason !== "string" || reason.length > MAX_REASON))
        throw new Error(`an update report's reason is text of at most ${MAX_REASON} characters`)
    const report: UpdateReport = { digest: digest.toString("hex"), sequence, step: step as UpdateStep }
    // shown on pages and in logs: no control characters
    // eslint-disable-next-line no-control-regex
    if (reason !== undefined) report.reason = reason.replace(/[\x00-\x1f\x7f]/g, "?")
    return report
}
