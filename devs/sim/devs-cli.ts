/**
 * Running the pinned DeviceScript CLI (`devs`) from host code: builds, the
 * devtools server, and the simulator, whose output the test runner, the
 * benchmarks, the host tests and `npm start` read line by line.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { copyFileSync, existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { waitForPort } from "../net/ports.ts"
import { DEVTOOLS_PORT, PROJECT_ROOT } from "../project.ts"

/** Path of the project's `devs` binary. */
function devsBin(): string {
    const bin = join(PROJECT_ROOT, "node_modules", ".bin", "devs")
    if (!existsSync(bin)) throw new Error("devs CLI missing: run `npm install` first")
    return bin
}

/** Preload that makes the simulator's flash file save atomic (see the file). */
const ATOMIC_FLASH_PRELOAD = fileURLToPath(new URL("./atomic-flash.cjs", import.meta.url))

/**
 * What to add to the environment of a simulator with persistent flash whose
 * process is killed as a power cut: the preload that keeps its flash file a
 * whole image, so the kill models a cut between two flash operations.
 */
export function powerCutEnv(): Record<string, string> {
    return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require "${ATOMIC_FLASH_PRELOAD}"`.trim() }
}

/** What a finished `devs` command left behind. */
export interface DevsResult {
    code: number | null
    /** stdout and stderr lines, interleaved, with colour codes removed. */
    output: string
}

/** Options of `runDevs`. */
export interface RunDevsOptions {
    /** Kill the command after this many milliseconds (default: never). */
    timeoutMs?: number
    /** Where it runs (default: the project root); the simulator keeps its flash under it. */
    cwd?: string
    /** Extra environment variables. */
    env?: Record<string, string>
    /** Called with each output line as it arrives. */
    onLine?: (line: string) => void
    /** Kills the command when aborted (programs that run until stopped; a power cut). */
    signal?: AbortSignal
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g

/** Calls `onLine` with each complete line a stream emits, colour codes removed. */
function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void) {
    let partial = ""
    stream.on("data", (chunk: Buffer) => {
        partial += chunk.toString("utf8").replace(ANSI, "")
        const lines = partial.split("\n")
        partial = lines.pop() ?? ""
        for (const line of lines) onLine(line)
    })
}

/** Runs `devs <args>` and collects its output; resolves when it has ended, however it ended. */
export function runDevs(args: string[], options: RunDevsOptions = {}): Promise<DevsResult> {
    return new Promise((resolveResult, reject) => {
        const child = spawn(devsBin(), args, {
            cwd: options.cwd ?? PROJECT_ROOT,
            env: { ...process.env, ...options.env, NO_COLOR: "1", FORCE_COLOR: "0" },
            stdio: ["ignore", "pipe", "pipe"],
        })
        let output = ""
        const collect = (line: string) => {
            output += line + "\n"
            options.onLine?.(line)
        }
        forEachLine(child.stdout, collect)
        forEachLine(child.stderr, collect)
        const timeoutMs = options.timeoutMs
        const timer =
            timeoutMs === undefined
                ? undefined
                : setTimeout(() => {
                      output += `\n[killed after ${timeoutMs} ms]\n`
                      child.kill("SIGKILL")
                  }, timeoutMs)
        const abort = () => child.kill("SIGKILL")
        if (options.signal?.aborted) abort()
        options.signal?.addEventListener("abort", abort)
        child.on("error", reject)
        child.on("close", code => {
            options.signal?.removeEventListener("abort", abort)
            clearTimeout(timer)
            resolveResult({ code, output })
        })
    })
}

/** Runs a device program in the simulator in test mode; it ends when its tests end or it calls `ds.restart()`. */
export function runInSimulator(file: string, options: RunDevsOptions & { timeoutMs: number }): Promise<DevsResult> {
    return runDevs(["run", file, "--test", "--test-self-exit", "--test-timeout", String(options.timeoutMs)], {
        ...options,
        timeoutMs: options.timeoutMs + 30000, // compile time on top of the run
    })
}

/** The simulator prints what the device prints with this prefix. */
const DEVICE_PREFIX = "WASM> "

/** What the device printed on an output line of the simulator, or undefined for the simulator's own lines. */
export function deviceLine(line: string): string | undefined {
    return line.startsWith(DEVICE_PREFIX) ? line.slice(DEVICE_PREFIX.length) : undefined
}

/** Lines the device printed with `console.log`, without the simulator's prefix. */
export function deviceLines(output: string): string[] {
    return output
        .split("\n")
        .map(deviceLine)
        .filter(l => l !== undefined)
}

/**
 * Reassembles buffers the device printed as `<prefix> <id> <part>/<parts> <hex>`
 * lines (see `printHexLines` in src/pipeline/console-sink.ts), keyed by id, in order of appearance.
 * Throws if a buffer's parts are missing or out of order.
 */
export function collectHexLines(lines: string[], prefix: string): Map<string, Buffer> {
    const parts = new Map<string, string[]>()
    const expected = new Map<string, number>()
    for (const line of lines) {
        const m = /^(\S+) (\S+) (\d+)\/(\d+) ([0-9a-f]*)$/.exec(line.trim())
        if (!m || m[1] !== prefix) continue
        const [, , id, part, total, hexText] = m
        const got = parts.get(id) ?? []
        if (+part !== got.length + 1) throw new Error(`${prefix} ${id}: part ${part} out of order`)
        got.push(hexText)
        parts.set(id, got)
        expected.set(id, +total)
    }
    const out = new Map<string, Buffer>()
    for (const [id, got] of parts) {
        if (got.length !== expected.get(id)) throw new Error(`${prefix} ${id}: ${got.length} of ${expected.get(id)} parts`)
        out.set(id, Buffer.from(got.join(""), "hex"))
    }
    return out
}

/** Compiles a firmware entry point (a path from the project root) and copies the image to `out`. */
export async function buildImage(entry: string, out: string, signal?: AbortSignal): Promise<Buffer> {
    const r = await runDevs(["build", entry], { timeoutMs: 120_000, signal })
    if (signal?.aborted) throw new Error(`devs build ${entry} stopped`)
    if (r.code !== 0) throw new Error(`devs build ${entry} failed:\n${r.output}`)
    copyFileSync(join(PROJECT_ROOT, ".devicescript", "bin", "bytecode.devs"), out)
    return readFileSync(out)
}

/** Starts a devtools server in `cwd` (a simulator outside test mode connects to it); resolves once it listens. */
export async function startDevtools(cwd: string): Promise<ChildProcess> {
    const child = spawn(devsBin(), ["devtools"], { cwd, stdio: "ignore" })
    await waitForPort(DEVTOOLS_PORT, 30_000)
    return child
}
