/**
 * `npm start`: the firmware in the DeviceScript simulator.
 *
 * Starts the DeviceScript devtools server (which the simulator needs outside
 * test mode), then runs src/main.ts in the simulator and prints what the
 * device prints. Ctrl-C stops everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { createConnection } from "node:net"
import { PROJECT_ROOT, devsBin } from "../tools/devs-cli.ts"

/** The devtools server's WebSocket port; fixed by the DeviceScript CLI. */
const DEVTOOLS_PORT = 8081

const children: ChildProcess[] = []

function portOpen(port: number): Promise<boolean> {
    return new Promise(resolve => {
        const socket = createConnection({ host: "127.0.0.1", port })
        socket.once("connect", () => {
            socket.destroy()
            resolve(true)
        })
        socket.once("error", () => resolve(false))
    })
}

async function waitForPort(port: number, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
        if (await portOpen(port)) return
        await new Promise(r => setTimeout(r, 200))
    }
    throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`)
}

function start(name: string, args: string[], onLine: (line: string) => void): ChildProcess {
    const child = spawn(devsBin(), args, { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] })
    children.push(child)
    let partial = ""
    const onData = (chunk: Buffer) => {
        partial += chunk.toString("utf8")
        const lines = partial.split("\n")
        partial = lines.pop() ?? ""
        for (const line of lines) onLine(line)
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.on("exit", code => {
        if (!stopping) {
            console.error(`${name} exited (${code}); stopping`)
            stop(1)
        }
    })
    return child
}

let stopping = false
function stop(code: number) {
    stopping = true
    for (const c of children) c.kill("SIGTERM")
    process.exitCode = code
}

async function main() {
    if (await portOpen(DEVTOOLS_PORT)) throw new Error(`port ${DEVTOOLS_PORT} is taken: is another devtools server running?`)
    process.on("SIGINT", () => stop(0))
    process.on("SIGTERM", () => stop(0))
    console.log("starting the DeviceScript devtools server…")
    start("devtools", ["devtools"], () => {})
    await waitForPort(DEVTOOLS_PORT, 30000)
    console.log("running src/main.ts in the simulator (Ctrl-C to stop)")
    start("simulator", ["run", "src/main.ts"], line => {
        if (line.startsWith("WASM> ")) console.log(line.slice(6))
        else if (/error/i.test(line)) console.error(line)
    })
}

main().catch(e => {
    console.error(e instanceof Error ? e.message : e)
    stop(1)
})
