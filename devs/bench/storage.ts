/**
 * Benchmark of the device's settings store: a read, and a write that resolves
 * only once the value is in flash (set, then read back).
 */
import { deviceLines, runInSimulator } from "../sim/devs-cli.ts"

/** Read and confirmed-write cost of a 64-byte value on the VM, and their ratio. */
export async function settingsCost() {
    const run = await runInSimulator("test/device/fixtures/bench-settings.ts", { timeoutMs: 120_000 })
    if (run.code !== 0) throw new Error(run.output)
    const figures = new Map<string, number>()
    for (const l of deviceLines(run.output)) {
        const m = /^bench (\S+) ([\d.]+)/.exec(l)
        if (m) figures.set(m[1], +m[2])
    }
    const read = figures.get("settings-read")
    const write = figures.get("settings-write-confirmed")
    if (read === undefined || write === undefined) throw new Error(`settings bench printed no figures:\n${run.output}`)
    console.log(
        `settings (64 B value): read ${read.toFixed(1)} ms, confirmed write ${write.toFixed(1)} ms, ` +
            `write/read ${(write / Math.max(read, 0.1)).toFixed(2)}`
    )
}
