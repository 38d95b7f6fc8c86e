/**
 * The load test as a whole: for each setup in turn (./setups.ts), the steps
 * of N devices in increasing order (./measure.ts), on one running setup, so
 * identities enrolled for a smaller N are reused by the larger. A step that
 * does not finish (a phase past its deadline, file descriptors, memory)
 * ends that setup at the largest N that did, says why, and the next setup
 * runs. Then one table: every setup and N side by side, and the ratios
 * cluster / embedded for each N both reached.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { LoadFleet, type StepOptions, type StepResult } from "./measure.ts"
import { startSetup, SetupName, type RunningSetup } from "./setups.ts"

/** Options of a run: each step's, for every device count in turn. */
export interface LoadOptions extends Omit<StepOptions, "devices"> {
    setups: SetupName[]
    /** Device counts, ascending. */
    devices: number[]
}

/** What one setup reached. */
export interface SetupReport {
    setup: SetupName
    steps: StepResult[]
    /** Why it stopped before the largest N, if it did. */
    stoppedBecause?: string
}

/** Everything started and not yet stopped, for an `exit` hook. */
const running = new Set<RunningSetup>()

/** Kills what a run left running, synchronously (Ctrl-C twice, or an exception out of everything). */
export function killRunning() {
    for (const s of running) s.kill()
}

/** Runs every setup's steps; returns what each reached. */
export async function runLoad(options: LoadOptions): Promise<SetupReport[]> {
    const reports: SetupReport[] = []
    for (const name of options.setups) {
        if (options.signal.aborted) break
        const report: SetupReport = { setup: name, steps: [] }
        reports.push(report)
        const dir = mkdtempSync(join(tmpdir(), `loadtest-${name}-`))
        let setup: RunningSetup | undefined
        try {
            options.log(`${name}: starting`)
            const started = performance.now()
            setup = await startSetup(name, dir, options.log)
            running.add(setup)
            options.log(`${name}: up in ${((performance.now() - started) / 1000).toFixed(1)} s`)
            const fleet = new LoadFleet(setup)
            try {
                for (const n of options.devices) {
                    if (options.signal.aborted) throw new Error("interrupted")
                    const short = descriptorShortfall(n)
                    if (short) throw new Error(short)
                    options.log(`${name}: ${n} devices`)
                    report.steps.push(await fleet.step({ ...options, devices: n }))
                }
            } finally {
                await fleet.close()
            }
        } catch (e) {
            report.stoppedBecause = (e as Error).message
            const reached = report.steps.at(-1)?.devices
            options.log(`${name}: stopped${reached ? ` at ${reached} devices` : ""}: ${report.stoppedBecause}`)
        } finally {
            if (setup) {
                options.log(`${name}: stopping`)
                await setup.stop()
                running.delete(setup)
            }
            rmSync(dir, { recursive: true, force: true })
        }
    }
    return reports
}

/**
 * Descriptors this process holds per connected device: its MQTT connection (the HTTPS ones of a login are closed
 * after it, so only those of the devices logging in at once are open). The broker's end of each connection is in
 * the broker's process, Mosquitto's under the same limit, which it inherits.
 */
const DESCRIPTORS_PER_DEVICE = 1
/** Descriptors for everything else: logins in progress, servers, stores, the owner service. */
const DESCRIPTORS_BESIDES = 2000

/** Why `n` devices would run out of file descriptors under this process's limit, or undefined if they fit. */
function descriptorShortfall(n: number): string | undefined {
    const line = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"))
    if (!line || line[1] === "unlimited") return undefined
    const [soft, hard] = [Number(line[1]), line[2] === "unlimited" ? Infinity : Number(line[2])]
    const needed = n * DESCRIPTORS_PER_DEVICE + DESCRIPTORS_BESIDES
    if (needed <= soft) return undefined
    const raise = hard > soft ? `raise it in the shell first: ulimit -n ${Math.min(hard, needed)}` : "the hard limit is lower still"
    return `file descriptors: ${n} devices need about ${needed}, and ulimit -n is ${soft} (${raise})`
}

/** The table's columns: heading, and the figure of a step. */
const COLUMNS: { heading: string; value: (s: StepResult) => number; digits: number }[] = [
    { heading: "logins/s", value: s => s.loginsPerS, digits: 0 },
    { heading: "connected", value: s => s.connected, digits: 0 },
    { heading: "verified msg/s", value: s => s.verifiedPerS, digits: 0 },
    { heading: "p50 ms", value: s => s.p50Ms, digits: 1 },
    { heading: "p99 ms", value: s => s.p99Ms, digits: 1 },
    { heading: "broker KiB/conn", value: s => s.brokerBytesPerConnection / 1024, digits: 1 },
    { heading: "emulator KiB/conn", value: s => s.emulatorBytesPerConnection / 1024, digits: 1 },
]

/** The table: a row per setup and N, then a ratio row (cluster / embedded) per N both reached. */
export function formatTable(reports: SetupReport[]): string[] {
    const rows: string[][] = [["setup", "devices", ...COLUMNS.map(c => c.heading), "sealed", "verified once", "dup", "lost"]]
    for (const r of reports)
        for (const s of r.steps)
            rows.push([
                r.setup,
                String(s.devices),
                ...COLUMNS.map(c => c.value(s).toFixed(c.digits)),
                String(s.sealed),
                String(s.verifiedOnce),
                String(s.duplicates),
                String(s.missing),
            ])
    const embedded = reports.find(r => r.setup === SetupName.Embedded)
    const cluster = reports.find(r => r.setup === SetupName.Cluster)
    for (const c of cluster?.steps ?? []) {
        const e = embedded?.steps.find(s => s.devices === c.devices)
        if (!e) continue
        rows.push(["cluster/embedded", String(c.devices), ...COLUMNS.map(col => ratio(col.value(c), col.value(e))), "", "", "", ""])
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
    const lines = rows.map(r => r.map((cell, i) => (i < 1 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "))
    lines.splice(1, 0, widths.map(w => "-".repeat(w)).join("  "))
    for (const r of reports)
        if (r.stoppedBecause) lines.push(`${r.setup} stopped at ${r.steps.at(-1)?.devices ?? 0} devices: ${r.stoppedBecause}`)
    return lines
}

function ratio(a: number, b: number): string {
    return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}x` : "-"
}
