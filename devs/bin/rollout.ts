/**
 * `npm run rollout`: staged rollouts through the owner service's API.
 *
 *   npm run rollout -- create --digest <sha256> --sequence <n> [--cohort all|tag:<tag>|<id>,<id>…] [--stages 1,10%,50%,100%]
 *   npm run rollout -- status [<rollout>] [--devices]
 *   npm run rollout -- pause|resume|abort|retry-failed <rollout>
 */
import { runCommand, UsageError } from "../cli/args.ts"
import { CA, ownerApi, SERVICE, TOKEN_FILE } from "../cli/options.ts"
import { ApiError } from "../owner/api-client.ts"
import { DIGEST_HEX } from "../owner/commands.ts"

const ACTIONS = ["pause", "resume", "abort", "retry-failed"]

const spec = {
    name: "rollout",
    summary: "Rolls a published release out in stages that halt by themselves on failures; shows, pauses, resumes, aborts and retries.",
    positionals: { usage: "(create | status [<rollout>] | pause|resume|abort|retry-failed <rollout>)", min: 1, max: 2 },
    options: {
        digest: { type: "string", value: "sha256", help: "create: the release's image SHA-256 (npm run publish-firmware prints it)" },
        sequence: { type: "string", value: "n", help: "create: the release's sequence number" },
        cohort: {
            type: "string",
            value: "devices",
            default: "all",
            help: "create: all, tag:<tag>, or device ids separated by commas",
        },
        stages: {
            type: "string",
            value: "list",
            default: "1,10%,50%,100%",
            help: "create: where each stage ends, cumulative: a count of devices or a percentage of the cohort",
        },
        "time-limit": { type: "string", value: "s", help: "create: seconds each stage has to reach its threshold (default 3600)" },
        "success-percent": {
            type: "string",
            value: "p",
            help: "create: confirmed devices a stage needs, % of those offered (default 100)",
        },
        "max-failures": {
            type: "string",
            value: "n",
            help: "create: failures that halt the rollout in a stage (default 1 canary, 3, then 5)",
        },
        "max-failure-percent": { type: "string", value: "p", help: "create: … or this % of the stage's devices (default 5)" },
        "deploy-timeout": { type: "string", value: "s", help: "create: seconds from the offer to the trial (default 600)" },
        "trial-timeout": { type: "string", value: "s", help: "create: seconds from the trial to the confirmation (default 900)" },
        reoffer: {
            type: "string",
            value: "s",
            help: "create: seconds after which an offer with no report is sent again, a few times (default 60)",
        },
        devices: { type: "boolean", help: "status: list every device's step" },
        service: SERVICE,
        "token-file": TOKEN_FILE,
        ca: CA,
    },
    notes: [
        "A device's step counts as confirmed only when the device's own sealed report says so.",
        "example: npm run rollout -- create --digest 3f5a…e1 --sequence 4 --cohort tag:attic --stages 1,25%,100%",
    ],
} as const

/** A whole number from an option, or a one-line mistake. */
function whole(option: string, text: string | undefined, min: number, max: number): number | undefined {
    if (text === undefined) return undefined
    if (!/^\d{1,10}$/.test(text) || Number(text) < min || Number(text) > max)
        throw new UsageError(`--${option} must be a whole number ${min}..${max}, not ${JSON.stringify(text)}`)
    return Number(text)
}

function cohortOf(text: string): unknown {
    if (text === "all") return "all"
    if (text.startsWith("tag:")) return { tag: text.slice(4) }
    const ids = text.split(",").filter(Boolean)
    const wrong = ids.find(id => !/^[0-9a-f]{32}$/.test(id))
    if (wrong !== undefined || ids.length === 0)
        throw new UsageError(`--cohort is all, tag:<tag>, or device ids (32 hex digits) separated by commas`)
    return { devices: ids }
}

function stagesOf(text: string, extra: Record<string, number | undefined>): unknown[] {
    return text.split(",").map(s => {
        const m = /^(\d{1,5})(%?)$/.exec(s.trim())
        if (!m) throw new UsageError(`--stages is a list such as 1,10%,50%,100%, not ${JSON.stringify(text)}`)
        const upTo = m[2] ? { percent: Number(m[1]) } : { devices: Number(m[1]) }
        return { ...upTo, ...Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)) }
    })
}

interface View {
    id: number
    status: string
    reason: string | null
    release: { digest: string; sequence: number }
    stage: number
    size: number
    confirmed: number
    failed: number
    stages: { name: string; size: number; started: boolean; met: boolean; steps: Record<string, number> }[]
    devices?: { id: string; name: string | null; stage: number; step: string; at: number; reason: string | null }[]
}

/** A device as GET /api/devices lists it (what status reads). */
interface Listed {
    id: string
    name: string | null
    unknownImage: { image: string; since: number } | null
}

/** A text bar: `#` confirmed, `~` under way, `x` failed, `.` not yet. */
function bar(s: View["stages"][number], width = 30): string {
    const n = (k: string) => s.steps[k] ?? 0
    const cells = (x: number) => (s.size ? Math.round((x * width) / s.size) : 0)
    const ok = cells(n("confirmed"))
    const busy = cells(n("offered") + n("approved") + n("deploying") + n("trial"))
    const bad = cells(n("failed") + n("rolled-back"))
    return `[${"#".repeat(ok)}${"~".repeat(busy)}${"x".repeat(bad)}${".".repeat(Math.max(0, width - ok - busy - bad))}]`
}

function print(v: View, devices: boolean) {
    console.log(
        `rollout ${v.id}: ${v.status}${v.reason ? ` (${v.reason})` : ""}; sequence ${v.release.sequence} ` +
            `(${v.release.digest.slice(0, 16)}…), ${v.confirmed} of ${v.size} confirmed, ${v.failed} failed`
    )
    for (const s of v.stages) {
        const steps = Object.entries(s.steps)
            .map(([k, x]) => `${x} ${k}`)
            .join(", ")
        const state = s.met ? "threshold reached" : s.started ? "running" : "not started"
        console.log(`  ${s.name.padEnd(8)} ${bar(s)} ${String(s.size).padStart(5)} devices, ${state}: ${steps}`)
    }
    for (const d of v.devices ?? [])
        if (devices || d.step === "failed" || d.step === "rolled-back")
            console.log(
                `  ${d.id} ${(d.name ?? "").padEnd(10)} ${v.stages[d.stage].name.padEnd(8)} ${d.step}` +
                    `${d.reason ? `: ${d.reason}` : ""} (${new Date(d.at).toISOString()})`
            )
}

await runCommand(spec, async ({ values, positionals }) => {
    const [verb, target] = positionals
    // the service refusing what was asked (400) is the caller's mistake, as one refused here is
    const api = () => ({
        call: <T>(method: string, path: string, body?: unknown) =>
            ownerApi(values)
                .call<T>(method, path, body)
                .catch(e => {
                    throw e instanceof ApiError && e.status === 400 ? new UsageError(e.message) : e
                }),
    })
    const rolloutId = () => {
        if (target === undefined || !/^\d{1,9}$/.test(target)) throw new UsageError(`${verb} needs the rollout's number`)
        return target
    }
    if (verb === "create") {
        if (target !== undefined) throw new UsageError(`unexpected argument ${target}`)
        if (!values.digest || !DIGEST_HEX.test(values.digest))
            throw new UsageError("create needs --digest, the image's SHA-256 (64 hex digits)")
        const sequence = whole("sequence", values.sequence, 1, 2 ** 32 - 1)
        if (sequence === undefined) throw new UsageError("create needs --sequence, the release's sequence number")
        const extra = {
            timeLimitS: whole("time-limit", values["time-limit"], 1, 30 * 86_400),
            successPercent: whole("success-percent", values["success-percent"], 1, 100),
            maxFailures: whole("max-failures", values["max-failures"], 1, 10_000),
            maxFailurePercent: whole("max-failure-percent", values["max-failure-percent"], 1, 100),
        }
        const body = {
            digest: values.digest,
            sequence,
            cohort: cohortOf(values.cohort),
            stages: stagesOf(values.stages, extra),
            deployTimeoutS: whole("deploy-timeout", values["deploy-timeout"], 1, 30 * 86_400),
            trialTimeoutS: whole("trial-timeout", values["trial-timeout"], 1, 30 * 86_400),
            reofferS: whole("reoffer", values.reoffer, 1, 30 * 86_400),
        }
        const v = await api().call<View>("POST", "/api/rollouts", body)
        print(v, false)
        return
    }
    if (verb === "status") {
        if (target === undefined) {
            const { rollouts } = await api().call<{ rollouts: View[] }>("GET", "/api/rollouts")
            if (rollouts.length === 0) console.log("no rollouts yet: npm run rollout -- create --help")
            for (const v of rollouts) print(v, false)
        } else print(await api().call<View>("GET", `/api/rollouts/${rolloutId()}`), values.devices)
        // what a rollout cannot show: devices whose image no release names, so no sequence orders it
        const { devices } = await api().call<{ devices: Listed[] }>("GET", "/api/devices")
        for (const d of devices.filter(x => x.unknownImage))
            console.log(
                `device ${d.id}${d.name ? ` (${d.name})` : ""} runs an image no release names (${d.unknownImage!.image}): ` +
                    "it was not installed from a signed release"
            )
        return
    }
    if (ACTIONS.includes(verb)) {
        print(await api().call<View>("POST", `/api/rollouts/${rolloutId()}/${verb}`), false)
        return
    }
    throw new UsageError(`unknown action ${verb}: create, status, ${ACTIONS.join(", ")}`)
})
