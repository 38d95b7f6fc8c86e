/**
 * `npm test`: runs the static checks (typecheck, lint, formatting, the
 * firmware build), every device suite in the DeviceScript simulator and every
 * host file with Node's test runner, two at a time
 * (devs/test-runner/run-tests.ts), never stopping at a failure; prints a line
 * per file, ends with `N passed, N failed` and exits 1 if anything failed or
 * nothing ran.
 *
 *   npm test -- [--device-only | --host-only] [--jobs N] [filter…]
 */
import { runCommand, UsageError } from "../cli/args.ts"
import { DEFAULT_JOBS, runTests } from "../test-runner/run-tests.ts"

const spec = {
    name: "test",
    invocation: "npm test",
    summary: "Runs the static checks (typecheck, lint, format, firmware build), the device suites (simulator) and the host suites.",
    positionals: { usage: "[filter…]", min: 0, max: Infinity },
    options: {
        "device-only": { type: "boolean", help: "only the suites in test/device (DeviceScript simulator)" },
        "host-only": { type: "boolean", help: "only the suites in test/host (node --test)" },
        jobs: { type: "string", value: "n", default: String(DEFAULT_JOBS), help: "files run at once" },
    },
    notes: [
        "A filter keeps the files whose path, or the title of one of whose suites or tests, contains it (npm test -- cbor);",
        "with a filter the static checks are left out. Each file has a time limit; a host file runs in a process group of its own,",
        "killed with all it started when it ends.",
    ],
} as const

await runCommand(spec, async ({ values, positionals }) => {
    if (values["device-only"] && values["host-only"]) throw new UsageError("--device-only and --host-only exclude each other")
    const jobs = /^\d{1,2}$/.test(values.jobs) ? Number(values.jobs) : 0
    if (jobs < 1) throw new UsageError(`--jobs must be a number 1..99, not ${JSON.stringify(values.jobs)}`)
    const total = await runTests({ filters: positionals, deviceOnly: values["device-only"], hostOnly: values["host-only"], jobs })
    process.exitCode = total.failed || total.passed === 0 ? 1 : 0
})
