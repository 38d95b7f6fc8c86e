/**
 * A new rollout as a client asks for it (the API's JSON, which the CLI and
 * the console send), checked once at the boundary, and a rollout as clients
 * see it (the record, each stage's counts, each device's step).
 *
 *   { "digest": "<64 hex>", "sequence": 7,
 *     "cohort": "all" | { "tag": "attic" } | { "devices": ["<32 hex>", …] },
 *     "stages": [ { "devices": 1 } | { "percent": 10, "successPercent"?: 100, "timeLimitS"?: 3600,
 *                   "maxFailures"?: 3, "maxFailurePercent"?: 5 }, … ],            (optional)
 *     "deployTimeoutS"?: 600, "trialTimeoutS"?: 900, "reofferS"?: 60 }
 */
import { DIGEST_HEX } from "../commands.ts"
import { DEFAULT_TIMEOUTS, defaultStages, type Cohort, type DeviceTimeouts, type Rollout, type StagePlan } from "./engine.ts"
import type { NewRollout } from "./driver.ts"

const DEVICE_ID = /^[0-9a-f]{32}$/
/** Tags: what a person types, nothing a page or a log line could mistake for markup. */
export const TAG = /^[a-z0-9][a-z0-9_.-]{0,31}$/
const MAX_STAGES = 10
const MAX_LISTED = 10_000
/** Seconds a limit may be: 1 s to 30 days. */
const SECONDS = { min: 1, max: 30 * 86_400 }

const wholeIn = (v: unknown, min: number, max: number): v is number =>
    Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max

/** The rollout a request asks for, or a sentence saying what is wrong with it. */
export function parseNewRollout(v: unknown): NewRollout | string {
    if (!v || typeof v !== "object" || Array.isArray(v)) return "a rollout is an object with digest, sequence and cohort"
    const b = v as Record<string, unknown>
    if (typeof b.digest !== "string" || !DIGEST_HEX.test(b.digest)) return "digest must be the image's SHA-256 (64 lower-case hex digits)"
    if (!wholeIn(b.sequence, 1, 2 ** 32 - 1)) return "sequence must be the release's sequence number, a whole number from 1"
    const cohort = parseCohort(b.cohort)
    if (typeof cohort === "string") return cohort
    let stages: StagePlan[] = defaultStages()
    if (b.stages !== undefined) {
        if (!Array.isArray(b.stages) || b.stages.length < 1 || b.stages.length > MAX_STAGES)
            return `stages is a list of 1 to ${MAX_STAGES} stages`
        const parsed = b.stages.map(parseStage)
        const wrong = parsed.find(s => typeof s === "string")
        if (wrong !== undefined) return wrong as string
        stages = parsed as StagePlan[]
    }
    const timeouts: DeviceTimeouts = { ...DEFAULT_TIMEOUTS }
    for (const [field, key] of [
        ["deployTimeoutS", "deployMs"],
        ["trialTimeoutS", "trialMs"],
        ["reofferS", "reofferMs"],
    ] as const) {
        if (b[field] === undefined) continue
        if (!wholeIn(b[field], SECONDS.min, SECONDS.max)) return `${field} must be ${SECONDS.min}..${SECONDS.max} seconds`
        timeouts[key] = (b[field] as number) * 1000
    }
    return { release: { digest: b.digest, sequence: b.sequence }, cohort, stages, timeouts }
}

function parseCohort(v: unknown): Cohort | string {
    if (v === "all") return { all: true }
    const c = (v ?? {}) as Record<string, unknown>
    if (typeof c.tag === "string")
        return TAG.test(c.tag) ? { tag: c.tag } : "a tag is 1..32 of a-z 0-9 _ . - (starting with a letter or digit)"
    if (Array.isArray(c.devices)) {
        if (c.devices.length < 1 || c.devices.length > MAX_LISTED) return `a list cohort names 1..${MAX_LISTED} devices`
        if (!c.devices.every(id => typeof id === "string" && DEVICE_ID.test(id))) return "a list cohort names device ids (32 hex digits)"
        return { devices: c.devices as string[] }
    }
    return 'cohort must be "all", {"tag": …} or {"devices": […]}'
}

function parseStage(v: unknown, i: number): StagePlan | string {
    const s = (v ?? {}) as Record<string, unknown>
    const base = defaultStages()[Math.min(i, 3)]
    const name = `stage ${i + 1}`
    let upTo: StagePlan["upTo"]
    if (s.devices !== undefined && s.percent === undefined) {
        if (!wholeIn(s.devices, 1, MAX_LISTED)) return `${name}: devices must be 1..${MAX_LISTED}`
        upTo = { devices: s.devices }
    } else if (s.percent !== undefined && s.devices === undefined) {
        if (!wholeIn(s.percent, 1, 100)) return `${name}: percent must be 1..100`
        upTo = { percent: s.percent }
    } else return `${name}: give either devices (a count) or percent (of the cohort), cumulative`
    const plan: StagePlan = { ...base, upTo }
    if (s.successPercent !== undefined) {
        if (!wholeIn(s.successPercent, 1, 100)) return `${name}: successPercent must be 1..100`
        plan.successPercent = s.successPercent
    }
    if (s.timeLimitS !== undefined) {
        if (!wholeIn(s.timeLimitS, SECONDS.min, SECONDS.max)) return `${name}: timeLimitS must be ${SECONDS.min}..${SECONDS.max}`
        plan.timeLimitMs = s.timeLimitS * 1000
    }
    if (s.maxFailures !== undefined) {
        if (!wholeIn(s.maxFailures, 1, MAX_LISTED)) return `${name}: maxFailures must be 1..${MAX_LISTED}`
        plan.maxFailures = s.maxFailures
    }
    if (s.maxFailurePercent !== undefined) {
        if (!wholeIn(s.maxFailurePercent, 1, 100)) return `${name}: maxFailurePercent must be 1..100`
        plan.maxFailurePercent = s.maxFailurePercent
    }
    return plan
}

/** A rollout as clients see it; with `devices`, each device's step (named as the owner named it). */
export function rolloutView(r: Rollout, names?: Map<string, string>) {
    const stages = r.summary()
    const total = (step: string) => stages.reduce((n, s) => n + ((s.steps as Record<string, number>)[step] ?? 0), 0)
    return {
        ...r.record,
        size: r.devices.size,
        confirmed: total("confirmed"),
        failed: total("failed") + total("rolled-back"),
        stages,
        ...(names
            ? {
                  devices: [...r.devices.values()].map(d => ({
                      id: d.id,
                      name: names.get(d.id) ?? null,
                      stage: d.stage,
                      step: d.step,
                      at: d.at,
                      reason: d.reason,
                      offers: d.offers,
                  })),
              }
            : {}),
    }
}
