/**
 * Running the pinned DeviceScript CLI (`devs`) from host code: the device test
 * runner, the benchmark and the host tests that read what the simulated device prints.
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { PROJECT_ROOT } from "../project.ts"

export { PROJECT_ROOT }

/** Path of the project's `devs` binary. */
export function devsBin(): string {
    const bin = join(PROJECT_ROOT, "node_modules", ".bin", "devs")
    if (!existsSync(bin)) throw new Error("devs CLI missing: run `npm install` first")
    return bin
}

/** Preload that makes the simulator's flash file save atomic (see the file). */
const ATOMIC_FLASH_PRELOAD = join(PROJECT_ROOT, "devs", "tools", "atomic-flash.cjs")

/**
 * The environment for a simulator with persistent flash whose process is
 * killed as a power cut: `env` plus the preload that keeps its flash file a
 * whole image, so the kill models a cut between two flash operations.
 */
export function powerCutEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    return { ...env, NODE_OPTIONS: `${env.NODE_OPTIONS ?? ""} --require "${ATOMIC_FLASH_PRELOAD}"`.trim() }
}

/** What a finished `devs` command left behind. */
export interface DevsResult {
    code: number | null
    /** stdout and stderr lines, interleaved, with colour codes removed. */
    output: string
}

/** Options of `runDevs`. */
export interface RunDevsOptions {
    /** Kill the command after this many milliseconds. */
    timeoutMs: number
    /** Extra environment variables. */
    env?: Record<string, string>
    /** Called with each output line as it arrives. */
    onLine?: (line: string) => void
    /** Kills the command when aborted (for programs that run until stopped). */
    signal?: AbortSignal
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g

/** Calls `onLine` with each complete line a stream emits, colour codes removed. */
export function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void) {
    let partial = ""
    stream.on("data", (chunk: Buffer) => {
        partial += chunk.toString("utf8").replace(ANSI, "")
        const lines = partial.split("\n")
        partial = lines.pop() ?? ""
        for (const line of lines) onLine(line)
    })
}

/** Runs `devs <args>` in the project root and collects its output. */
export function runDevs(args: string[], options: RunDevsOptions): Promise<DevsResult> {
    return new Promise((resolveResult, reject) => {
        const child = spawn(devsBin(), args, {
            cwd: PROJECT_ROOT,
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
        const timer = setTimeout(() => {
            output += `\n[killed after ${options.timeoutMs} ms]\n`
            child.kill("SIGKILL")
        }, options.timeoutMs)
        const abort = () => child.kill("SIGKILL")
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
export function runInSimulator(file: string, options: RunDevsOptions): Promise<DevsResult> {
    return runDevs(["run", file, "--test", "--test-self-exit", "--test-timeout", String(options.timeoutMs)], {
        ...options,
        timeoutMs: options.timeoutMs + 30000, // compile time on top of the run
    })
}

/** Lines the device printed with `console.log`, without the simulator's `WASM> ` prefix. */
export function deviceLines(output: string): string[] {
    return output
        .split("\n")
        .filter(l => l.startsWith("WASM> "))
        .map(l => l.slice("WASM> ".length))
}

/**
 * Reassembles buffers the device printed as `<prefix> <id> <part>/<parts> <hex>`
 * lines (see `printHexLines` in src/uplink/console-sink.ts), keyed by id, in order of appearance.
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
