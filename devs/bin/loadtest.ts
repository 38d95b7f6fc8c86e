/**
 * `npm run loadtest`: emulated devices over the real protocols against the
 * embedded setup (Mosquitto, SQLite, one registry) and the distributed one
 * (a three-node RabbitMQ cluster, PostgreSQL, two registries), on loopback,
 * at each device count in turn; prints a line per phase and one table of
 * both setups with their ratios (devs/load/). Every phase has a deadline;
 * Ctrl-C stops every server it started.
 *
 *   npm run loadtest -- [--devices 1000,5000,10000] [--duration 30] [--every 10] [--setups embedded,cluster]
 *       [--concurrency 32] [--phase-timeout 600] [--json FILE]
 */
import { writeFileSync } from "node:fs"
import { runCommand, UsageError } from "../cli/args.ts"
import { formatTable, killRunning, runLoad } from "../load/run.ts"
import { SetupName } from "../load/setups.ts"

/** Loopback addresses give each device its own source: 127.0.1.1 .. 127.0.250.250. */
const MAX_DEVICES = 62_500

const spec = {
    name: "loadtest",
    summary:
        "Emulated devices against the embedded and the distributed setup, on loopback: logins, connections, messages, latency, memory.",
    options: {
        devices: { type: "string", value: "n,n,…", default: "1000,5000,10000", help: `device counts, ascending (up to ${MAX_DEVICES})` },
        duration: { type: "string", value: "seconds", default: "30", help: "how long the devices publish at each count" },
        every: { type: "string", value: "seconds", default: "10", help: "each device sends a sealed reading this often" },
        setups: {
            type: "string",
            value: "name,…",
            default: "embedded,cluster",
            help: "embedded (Mosquitto + SQLite), cluster (RabbitMQ + PostgreSQL)",
        },
        concurrency: { type: "string", value: "n", default: "32", help: "devices enrolling, logging in or connecting at once" },
        "phase-timeout": { type: "string", value: "seconds", default: "600", help: "longest time one phase may take" },
        json: { type: "string", value: "file", help: "also write every figure as JSON here" },
    },
    notes: [
        "Identities enrolled for a smaller count are reused by the larger (enrollment is the devices' and the owner's PBKDF2 work).",
        "A setup that cannot reach a count stops at the largest it reached and says why; the next setup runs.",
    ],
} as const

/** A positive whole number of an option, or a usage error. */
function whole(option: string, text: string, max: number): number {
    const n = /^\d{1,6}$/.test(text) ? Number(text) : 0
    if (n < 1 || n > max) throw new UsageError(`${option} must be a whole number 1..${max}, not ${JSON.stringify(text)}`)
    return n
}

await runCommand(spec, async ({ values }) => {
    const devices = values.devices.split(",").map(d => whole("--devices", d, MAX_DEVICES))
    if (devices.some((d, i) => i > 0 && d <= devices[i - 1])) throw new UsageError("--devices must be ascending")
    const names = Object.values(SetupName) as string[]
    const setups = values.setups.split(",").map(s => {
        if (!names.includes(s)) throw new UsageError(`--setups: ${JSON.stringify(s)} is not one of ${names.join(", ")}`)
        return s as SetupName
    })
    const abort = new AbortController()
    const interrupt = () => {
        // the first Ctrl-C ends the phase and stops the servers in order; a second kills them at once
        if (abort.signal.aborted) {
            killRunning()
            process.exit(130)
        }
        console.log("interrupted: stopping every server started")
        abort.abort()
    }
    process.on("SIGINT", interrupt)
    process.on("SIGTERM", interrupt)
    process.on("exit", killRunning)
    const say = (line: string) => console.log(`${new Date().toTimeString().slice(0, 8)} ${line}`)
    const reports = await runLoad({
        setups,
        devices,
        durationMs: whole("--duration", values.duration, 3600) * 1000,
        everyMs: whole("--every", values.every, 3600) * 1000,
        concurrency: whole("--concurrency", values.concurrency, 1000),
        phaseMs: whole("--phase-timeout", values["phase-timeout"], 86_400) * 1000,
        log: say,
        signal: abort.signal,
    })
    console.log("")
    for (const line of formatTable(reports)) console.log(line)
    if (values.json) writeFileSync(values.json, JSON.stringify({ at: new Date().toISOString(), reports }, null, 2))
    if (abort.signal.aborted) process.exitCode = 130
})
