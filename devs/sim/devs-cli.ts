/**
 * Running the pinned DeviceScript CLI (`devs`) from host code: builds, the
 * devtools server, and the simulator, whose output the test runner, the
 * benchmarks, the host tests and `npm start` read line by line.
 *
 * Two runs share a machine: the ports the CLI and the firmware fix are moved
 * per process (`RunDevsOptions.ports`, devs/sim/port-map.cjs), and every
 * compilation happens in a build folder of its own (`inBuildFolder`), because
 * the compiler writes its output to `.devicescript/bin` under the current
 * folder, where a concurrent build would overwrite the image being read.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort, waitForPort } from "../net/ports.ts"
import { DEVTOOLS_PORTS, PROJECT_ROOT } from "../project.ts"

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

/** Preload that moves the ports fixed in the CLI and the firmware (see the file). */
const PORT_MAP_PRELOAD = fileURLToPath(new URL("./port-map.cjs", import.meta.url))

/** Fixed port -> the port it is moved to, for one `devs` process and its children. */
export type PortMap = Record<number, number>

/** The environment that makes a `devs` process use `ports` (devs/sim/port-map.cjs). */
function portMapEnv(ports: PortMap, nodeOptions: string | undefined): Record<string, string> {
    const pairs = Object.entries(ports).map(([fixed, actual]) => `${fixed}:${actual}`)
    if (!pairs.length) return {}
    return {
        NODE_OPTIONS: `${nodeOptions ?? ""} --require "${PORT_MAP_PRELOAD}"`.trim(),
        SENTINEL_PORT_MAP: pairs.join(","),
    }
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
    /** Fixed ports moved elsewhere: the registry the firmware expects, the devtools server's ports. */
    ports?: PortMap
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
        const env = { ...process.env, ...options.env }
        const child = spawn(devsBin(), args, {
            cwd: options.cwd ?? PROJECT_ROOT,
            env: { ...env, ...portMapEnv(options.ports ?? {}, env.NODE_OPTIONS), NO_COLOR: "1", FORCE_COLOR: "0" },
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

/**
 * Runs `job` with a new folder that looks like the project to the DeviceScript
 * compiler (a symbolic link to each of its entries but the build output, the
 * git folder and var/) and removes the folder afterwards. The compiler writes
 * `.devicescript/` there, so builds and test runs can go on side by side.
 */
export async function inBuildFolder<T>(job: (folder: string) => Promise<T>): Promise<T> {
    const folder = mkdtempSync(join(tmpdir(), "devs-build-"))
    try {
        for (const entry of readdirSync(PROJECT_ROOT))
            if (![".devicescript", ".git", "var"].includes(entry)) symlinkSync(join(PROJECT_ROOT, entry), join(folder, entry))
        return await job(folder)
    } finally {
        rmSync(folder, { recursive: true, force: true })
    }
}

/**
 * Runs a device program (a path from the project root) in the simulator in test mode, compiled in a
 * build folder of its own; it ends when its tests end or it calls `ds.restart()`.
 */
export function runInSimulator(file: string, options: Omit<RunDevsOptions, "cwd"> & { timeoutMs: number }): Promise<DevsResult> {
    return inBuildFolder(folder =>
        runDevs(["run", file, "--test", "--test-self-exit", "--test-timeout", String(options.timeoutMs)], {
            ...options,
            cwd: folder,
            timeoutMs: options.timeoutMs + 30000, // compile time on top of the run
        })
    )
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

/** Compiles a firmware entry point (a path from the project root), in a build folder of its own, into `out`. */
export function buildImage(entry: string, out: string, signal?: AbortSignal): Promise<Buffer> {
    return inBuildFolder(async folder => {
        const r = await runDevs(["build", entry], { cwd: folder, timeoutMs: 120_000, signal })
        if (signal?.aborted) throw new Error(`devs build ${entry} stopped`)
        if (r.code !== 0)
            throw new Error(`devs build ${entry} failed:
${r.output}`)
        copyFileSync(join(folder, ".devicescript", "bin", "bytecode.devs"), out)
        return readFileSync(out)
    })
}

/** A running devtools server on ports of its own. */
export interface Devtools {
    process: ChildProcess
    /** Its fixed ports and where they are: give them to the simulators that connect to it. */
    ports: PortMap
    /** Kills it. */
    stop(): void
}

/**
 * Starts a devtools server in `cwd` (a simulator outside test mode connects to it); resolves once it
 * listens. Its ports are `web` (default: a free one) and, for the bus over TCP and the debugger, free ones;
 * when one of them is taken meanwhile the server exits at once and is started again on others (a `web`
 * port given is not changed: the error says it is taken).
 */
export async function startDevtools(cwd: string, web?: number): Promise<Devtools> {
    for (let attempt = 1; ; attempt++) {
        const ports: PortMap = {
            [DEVTOOLS_PORTS.web]: web ?? (await freePort()),
            [DEVTOOLS_PORTS.tcp]: await freePort(),
            [DEVTOOLS_PORTS.debug]: await freePort(),
        }
        const env = { ...process.env, ...portMapEnv(ports, process.env.NODE_OPTIONS) }
        const child = spawn(devsBin(), ["devtools"], { cwd, stdio: "ignore", env })
        const exited = new Promise<number | null>(resolve => child.once("exit", code => resolve(code)))
        // it binds its three ports together and exits at once if one is taken: listening, then still alive
        const gone = new AbortController()
        const listening = waitForPort(ports[DEVTOOLS_PORTS.web], 30_000, gone.signal)
            .then(() => new Promise(r => setTimeout(r, 300)))
            .then(
                () => "listening" as const,
                () => "not listening" as const
            )
        const first = await Promise.race([listening, exited])
        if (first === "listening" && child.exitCode === null) return { process: child, ports, stop: () => void child.kill("SIGKILL") }
        gone.abort()
        child.kill("SIGKILL")
        // a port taken between freePort and the server's listen: exit code 100, or 1 for the debugger's port
        if (attempt === 5 || web !== undefined)
            throw new Error(`devs devtools exited (${first}): are its ports ${Object.values(ports)} taken?`)
    }
}
