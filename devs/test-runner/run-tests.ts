/**
 * The test runner behind `npm test`: runs the static checks (typecheck, lint,
 * formatting, the firmware build), then every device suite in the DeviceScript simulator and every host suite with Node's
 * test runner, never stopping at a failure, and ends with `N passed, N failed`.
 */
import { spawn } from "node:child_process"
import { readdirSync } from "node:fs"
import { join, relative } from "node:path"
import { PROJECT_ROOT } from "../project.ts"
import { runInSimulator } from "../sim/devs-cli.ts"
import { ensureKeyring } from "../updates/keyring.ts"

/** What to run. */
export interface TestSelection {
    /** Only files whose path contains one of these (all when empty); the static checks run only without filters. */
    filters: string[]
    deviceOnly: boolean
    hostOnly: boolean
}

/** Per-file time limit of a device suite, in milliseconds. */
const DEVICE_SUITE_TIMEOUT_MS = 300000

/** Tests that passed and failed. */
export interface Tally {
    passed: number
    failed: number
}

function listTests(dir: string, filters: string[]): string[] {
    const root = join(PROJECT_ROOT, dir)
    const files = readdirSync(root, { recursive: true, encoding: "utf8" })
        .filter(f => f.endsWith(".test.ts"))
        .map(f => relative(PROJECT_ROOT, join(root, f)))
        .sort()
    return filters.length ? files.filter(f => filters.some(p => f.includes(p))) : files
}

/** `tests: 15, pass: 15, error: 0`, as printed by @devicescript/test. */
const DEVICE_SUMMARY = /tests: (\d+), pass: (\d+), error: (\d+)/

async function runDeviceSuite(file: string): Promise<Tally> {
    const started = Date.now()
    const { code, output } = await runInSimulator(file, { timeoutMs: DEVICE_SUITE_TIMEOUT_MS })
    const m = DEVICE_SUMMARY.exec(output)
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    if (m && code === 0 && m[3] === "0") {
        console.log(`ok   ${file}: ${m[2]}/${m[1]} (${seconds} s)`)
        return { passed: +m[2], failed: 0 }
    }
    // a suite that did not compile, crashed or hung counts as at least one failure
    const failed = m ? Math.max(1, +m[3]) : 1
    console.log(`FAIL ${file}: exit ${code}, ${m ? m[0] : "no test summary"} (${seconds} s)`)
    console.log(indent(output))
    return { passed: m ? +m[2] : 0, failed }
}

function indent(text: string): string {
    return text
        .split("\n")
        .filter(l => !l.includes("Unknown user config"))
        .map(l => "    | " + l)
        .join("\n")
}

/** A static check: one command whose exit code says pass or fail. */
interface StaticCheck {
    name: string
    /** The command, run with node from the project root. */
    args: string[]
}

/**
 * What runs before the suites: the host code typechecked by tsc (devs/, test/host); lint and formatting
 * (ESLint with devs/lint/eslint.config.js, prettier); every firmware image typechecked and compiled by
 * the DeviceScript compiler, which is what checks src/ (its own tsconfig, with the runtime's types),
 * and held to its bytecode budget.
 */
const STATIC_CHECKS: StaticCheck[] = [
    { name: "typecheck (tsc --noEmit)", args: ["node_modules/typescript/bin/tsc", "--noEmit"] },
    {
        name: "lint (eslint)",
        args: ["node_modules/eslint/bin/eslint.js", "-c", "devs/lint/eslint.config.js", "devs", "test/host", "src", "test/device"],
    },
    {
        name: "format (prettier --check)",
        args: [
            "node_modules/prettier/bin/prettier.cjs",
            "--check",
            "--log-level",
            "warn",
            "src/**/*.ts",
            "devs/**/*.{ts,js,cjs}",
            "test/**/*.ts",
        ],
    },
    {
        name: "firmware build (devs build src/main.ts)",
        args: ["node_modules/@devicescript/cli/built/devicescript-cli.cjs", "build", "src/main.ts"],
    },
]

function runCheck(check: StaticCheck): Promise<Tally> {
    return new Promise((resolveTally, reject) => {
        const child = spawn(process.execPath, check.args, { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] })
        let output = ""
        child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")))
        child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")))
        child.on("error", reject)
        child.on("close", code => {
            if (code === 0) {
                console.log(`ok   ${check.name}`)
                return resolveTally({ passed: 1, failed: 0 })
            }
            console.log(`FAIL ${check.name}: exit ${code}`)
            console.log(indent(output))
            resolveTally({ passed: 0, failed: 1 })
        })
    })
}

/** Host suites run in one `node --test` process with the TAP reporter, whose totals we read. */
function runHostSuites(files: string[]): Promise<Tally> {
    return new Promise((resolveTally, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", "--test", "--test-reporter=tap", "--test-concurrency=1", ...files], {
            cwd: PROJECT_ROOT,
            stdio: ["ignore", "pipe", "inherit"],
        })
        let out = ""
        child.stdout.on("data", (chunk: Buffer) => {
            const text = chunk.toString("utf8")
            out += text
            process.stdout.write(text)
        })
        child.on("error", reject)
        child.on("close", code => {
            const pass = /^# pass (\d+)/m.exec(out)
            const fail = /^# fail (\d+)/m.exec(out)
            const cancelled = /^# cancelled (\d+)/m.exec(out)
            const tally = {
                passed: pass ? +pass[1] : 0,
                failed: (fail ? +fail[1] : 0) + (cancelled ? +cancelled[1] : 0),
            }
            if (code !== 0 && tally.failed === 0) tally.failed = 1
            resolveTally(tally)
        })
    })
}

/** Runs the selected suites, printing as it goes and the totals at the end. */
export async function runTests({ filters, deviceOnly, hostOnly }: TestSelection): Promise<Tally> {
    // the firmware trusts the owner's root: a fresh clone makes one (var/keys) and its trust anchor
    ensureKeyring()
    const total: Tally = { passed: 0, failed: 0 }
    const add = (t: Tally) => {
        total.passed += t.passed
        total.failed += t.failed
    }

    if (!filters.length && !deviceOnly) for (const check of STATIC_CHECKS) add(await runCheck(check))
    if (!hostOnly) {
        const files = listTests("test/device", filters)
        console.log(`device suites (DeviceScript simulator): ${files.length} files`)
        for (const f of files) add(await runDeviceSuite(f))
    }
    if (!deviceOnly) {
        const files = listTests("test/host", filters)
        console.log(`host suites (node --test): ${files.length} files`)
        if (files.length) add(await runHostSuites(files))
    }
    console.log(`${total.passed} passed, ${total.failed} failed`)
    return total
}
