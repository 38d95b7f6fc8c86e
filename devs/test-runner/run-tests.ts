/**
 * The test runner behind `npm test`: the static checks (typecheck, lint,
 * formatting, the firmware build), every device suite in the DeviceScript
 * simulator and every host file with Node's test runner, a few at a time,
 * never stopping at a failure.
 *
 * Each file runs in a process of its own with a time limit: a host file as
 * its own `node --test` in its own process group, killed with everything it
 * started when it ends or overruns (./process-group.ts); a device suite as
 * one `devs run --test`, compiled in a build folder of its own. Nothing is
 * shared between two files but the machine: the services a file starts
 * listen on free ports, so files, and two checkouts, run side by side.
 *
 * It prints one line per file, `ok   file  N/N  (12.3 s)` or `FAIL …`, the
 * output of failed files only, the counts of every fuzz campaign (lines
 * `fuzz <parser>: N inputs, …`) and what a test measured (lines
 * `measured <what>: …`), and ends with `N passed, N failed`. Files
 * start longest first, by how long each took last time (var/test-times.json).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { PROJECT_ROOT, TEST_TIMES_PATH } from "../project.ts"
import { runInSimulator } from "../sim/devs-cli.ts"
import { ensureKeyring } from "../updates/keyring.ts"
import { killAllGroups, runInGroup } from "./process-group.ts"
import { listTests } from "./select.ts"

/** What to run. */
export interface TestSelection {
    /** Only files a filter names (./select.ts; all when empty); the static checks run only without filters. */
    filters: string[]
    deviceOnly: boolean
    hostOnly: boolean
    /** Files run at once. */
    jobs: number
}

/** Files run at once by default: the machine has 2 cores, and the end-to-end files mostly wait. */
export const DEFAULT_JOBS = 2

/** Time limit of a device suite, in milliseconds (compile time comes on top). */
const DEVICE_SUITE_TIMEOUT_MS = 300_000
/** Time limit of a host file, its whole process group included. */
const HOST_FILE_TIMEOUT_MS = 900_000
/** Time limit of a static check. */
const CHECK_TIMEOUT_MS = 300_000

/** Tests that passed and failed. */
export interface Tally {
    passed: number
    failed: number
}

/** What one file (or static check) came to. */
interface Outcome extends Tally {
    /** Says what went wrong when the file's own counts cannot: exit code, timeout. */
    note?: string
    output: string
}

/** One unit of work: a static check, a device suite or a host file. */
interface Job {
    name: string
    /** A static check counts as one test and prints no count. */
    check?: boolean
    run(): Promise<Outcome>
}

/** `tests: 15, pass: 15, error: 0`, as printed by @devicescript/test. */
const DEVICE_SUMMARY = /tests: (\d+), pass: (\d+), error: (\d+)/

/** The line a fuzz campaign prints, on the device or the host. */
const FUZZ_LINE = /fuzz \S+: \d+ inputs, \d+ crashes, \d+ invalid accepted.*$/
/** The line a test prints of what it measured (losses and duplicates of a fail-over, say). */
const MEASURED_LINE = /measured \S+: .*$/

function deviceSuite(file: string): Job {
    return {
        name: file,
        run: async () => {
            const { code, output } = await runInSimulator(file, { timeoutMs: DEVICE_SUITE_TIMEOUT_MS })
            const m = DEVICE_SUMMARY.exec(output)
            const passed = m ? +m[2] : 0
            // a suite that did not compile, crashed or hung counts as at least one failure
            const failed = m && code === 0 ? +m[3] : Math.max(1, m ? +m[3] : 0)
            return { passed, failed, output, note: failed && code !== 0 ? `exit ${code}${m ? "" : ", no test summary"}` : undefined }
        },
    }
}

function hostFile(file: string): Job {
    return {
        name: file,
        run: async () => {
            const { code, output, timedOut } = await runInGroup(
                process.execPath,
                ["--import", "tsx", "--test", "--test-reporter=tap", file],
                {
                    cwd: PROJECT_ROOT,
                    timeoutMs: HOST_FILE_TIMEOUT_MS,
                }
            )
            const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)`, "m").exec(output)?.[1] ?? 0)
            const passed = count("pass")
            let failed = count("fail") + count("cancelled")
            if ((code !== 0 || timedOut) && failed === 0) failed = 1
            const note = timedOut ? `killed after ${HOST_FILE_TIMEOUT_MS / 1000} s` : code !== 0 ? `exit ${code}` : undefined
            return { passed, failed, output: withoutPassingTests(output), note }
        },
    }
}

/**
 * The TAP of a failed file without what passed: `ok` lines with their YAML
 * blocks, and the `# Subtest:` lines announcing each test. What is left is
 * each `not ok` with its error, what the file printed, and the totals.
 */
function withoutPassingTests(tap: string): string {
    const out: string[] = []
    let skipUntil: string | undefined
    for (const line of tap.split("\n")) {
        if (skipUntil !== undefined) {
            if (line === skipUntil) skipUntil = undefined
            continue
        }
        const ok = /^(\s*)ok \d+ - /.exec(line)
        if (ok) {
            skipUntil = `${ok[1]}  ...`
            continue
        }
        if (/^\s*# Subtest: /.test(line)) continue
        out.push(line)
    }
    // an `ok` without a YAML block would swallow the rest: only skip blocks that are there
    return skipUntil === undefined ? out.join("\n") : tap
}

/** A static check: one command, run with node from the project root, whose exit code says pass or fail. */
function staticCheck(name: string, args: string[]): Job {
    return {
        name,
        check: true,
        run: async () => {
            const { code, output, timedOut } = await runInGroup(process.execPath, args, { cwd: PROJECT_ROOT, timeoutMs: CHECK_TIMEOUT_MS })
            const ok = code === 0 && !timedOut
            return { passed: ok ? 1 : 0, failed: ok ? 0 : 1, output, note: ok ? undefined : timedOut ? "timed out" : `exit ${code}` }
        },
    }
}

/**
 * What runs beside the suites: the host code typechecked by tsc (devs/, test/host); lint and formatting
 * (ESLint with devs/lint/eslint.config.js over the host code and the firmware, prettier); every firmware
 * image typechecked and compiled by the DeviceScript compiler, which is what checks src/ (its own
 * tsconfig, with the runtime's types), and held to its bytecode budget (`npm run build`).
 */
const STATIC_CHECKS: Job[] = [
    staticCheck("typecheck (tsc --noEmit)", ["node_modules/typescript/bin/tsc", "--noEmit"]),
    staticCheck("lint (eslint)", [
        "node_modules/eslint/bin/eslint.js",
        "-c",
        "devs/lint/eslint.config.js",
        "devs",
        "test/host",
        "src",
        "test/device",
    ]),
    staticCheck("format (prettier --check)", [
        "node_modules/prettier/bin/prettier.cjs",
        "--check",
        "--log-level",
        "warn",
        "src/**/*.ts",
        "devs/**/*.{ts,js,cjs}",
        "test/**/*.ts",
    ]),
    staticCheck("firmware images and bytecode budget (npm run build)", ["--import", "tsx", "devs/bin/build.ts"]),
]

function indent(text: string): string {
    return text
        .split("\n")
        .filter(l => !l.includes("Unknown user config"))
        .map(l => "    | " + l)
        .join("\n")
}

/** Seconds each job took last time, by name. */
function lastTimes(): Record<string, number> {
    try {
        return JSON.parse(readFileSync(TEST_TIMES_PATH, "utf8"))
    } catch {
        return {}
    }
}

function saveTimes(times: Record<string, number>) {
    // files removed since are forgotten
    for (const name of Object.keys(times)) if (name.endsWith(".test.ts") && !existsSync(join(PROJECT_ROOT, name))) delete times[name]
    mkdirSync(dirname(TEST_TIMES_PATH), { recursive: true })
    writeFileSync(TEST_TIMES_PATH, JSON.stringify(times, null, 2) + "\n")
}

/** Runs `jobs`, `concurrency` at a time, longest (last time) first; `report` is called as each ends. */
async function runPool(jobs: Job[], concurrency: number, report: (job: Job, outcome: Outcome, seconds: number) => void) {
    const times = lastTimes()
    // unknown durations first: a new file may be long, and it is timed this way for next time
    const queue = [...jobs].sort((a, b) => (times[b.name] ?? Infinity) - (times[a.name] ?? Infinity))
    const worker = async () => {
        for (let job = queue.shift(); job; job = queue.shift()) {
            const started = Date.now()
            let outcome: Outcome
            try {
                outcome = await job.run()
            } catch (e) {
                outcome = { passed: 0, failed: 1, output: String((e as Error).stack ?? e), note: "the runner could not run it" }
            }
            const seconds = (Date.now() - started) / 1000
            times[job.name] = Math.round(seconds * 10) / 10
            report(job, outcome, seconds)
        }
    }
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
    saveTimes(times)
}

/** Runs the selected files, printing a line per file as each ends and the totals at the end. */
export async function runTests({ filters, deviceOnly, hostOnly, jobs }: TestSelection): Promise<Tally> {
    // the firmware trusts the owner's root: a fresh clone makes one (var/keys) and its trust anchor
    ensureKeyring()
    const started = Date.now()
    const work: Job[] = []
    if (!filters.length && !deviceOnly) work.push(...STATIC_CHECKS)
    if (!hostOnly) work.push(...listTests("test/device", filters).map(deviceSuite))
    if (!deviceOnly) work.push(...listTests("test/host", filters).map(hostFile))
    const width = Math.max(0, ...work.map(j => j.name.length))
    console.log(`${work.length} files and checks, ${jobs} at a time`)

    // an interrupted run takes its files' process groups (Mosquitto, simulators, devtools servers) with it
    const interrupted = (signal: NodeJS.Signals) => {
        killAllGroups()
        process.kill(process.pid, signal)
    }
    process.once("SIGINT", interrupted)
    process.once("SIGTERM", interrupted)

    const total: Tally = { passed: 0, failed: 0 }
    await runPool(work, jobs, (job, outcome, seconds) => {
        total.passed += outcome.passed
        total.failed += outcome.failed
        const count = job.check ? "" : `${outcome.passed}/${outcome.passed + outcome.failed}`
        const ok = outcome.failed === 0 && outcome.passed > 0
        const note = outcome.note ? `, ${outcome.note}` : ""
        console.log(`${ok ? "ok  " : "FAIL"} ${job.name.padEnd(width)}  ${count.padStart(7)}  (${seconds.toFixed(1)} s${note})`)
        for (const line of outcome.output.split("\n")) {
            const shown = FUZZ_LINE.exec(line) ?? MEASURED_LINE.exec(line)
            if (shown) console.log(`       ${shown[0]}`)
        }
        if (!ok) console.log(indent(outcome.output))
    })
    process.removeListener("SIGINT", interrupted)
    process.removeListener("SIGTERM", interrupted)
    const wall = ((Date.now() - started) / 1000).toFixed(1)
    console.log(`${total.passed} passed, ${total.failed} failed (${work.length} files and checks in ${wall} s, ${jobs} at a time)`)
    return total
}
