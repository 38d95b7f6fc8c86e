/**
 * `npm test`: runs the static checks (typecheck, lint, formatting, the
 * firmware build), every device suite in the DeviceScript simulator and every
 * host suite with Node's test runner
 * (devs/test-runner/run-tests.ts), never stopping at a failure; ends with
 * `N passed, N failed` and exits 1 if anything failed or nothing ran.
 *
 *   npm test -- [--device-only | --host-only] [filter…]
 */
import { runCommand, UsageError } from "../cli/args.ts"
import { runTests } from "../test-runner/run-tests.ts"

const spec = {
    name: "test",
    invocation: "npm test",
    summary: "Runs the static checks (typecheck, lint, format, firmware build), the device suites (simulator) and the host suites.",
    positionals: { usage: "[filter…]", min: 0, max: Infinity },
    options: {
        "device-only": { type: "boolean", help: "only the suites in test/device (DeviceScript simulator)" },
        "host-only": { type: "boolean", help: "only the suites in test/host (node --test)" },
    },
    notes: ["A filter keeps the files whose path contains it (npm test -- cbor); with a filter the typecheck is left out."],
} as const

await runCommand(spec, async ({ values, positionals }) => {
    if (values["device-only"] && values["host-only"]) throw new UsageError("--device-only and --host-only exclude each other")
    const total = await runTests({ filters: positionals, deviceOnly: values["device-only"], hostOnly: values["host-only"] })
    process.exitCode = total.failed || total.passed === 0 ? 1 : 0
})
