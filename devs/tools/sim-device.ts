/**
 * A simulated device with persistent flash, for tests and benchmarks that
 * reboot it: `devs run IMAGE` deploys an image into the flash first, `devs vm`
 * boots whatever the flash holds, and killing the process is a power cut
 * (between two flash operations: `powerCutEnv`). Both
 * need a devtools server (`startDevtools`). The simulator runs in its own
 * folder, so its flash file never touches the project's. Plays the owner too:
 * claims the device from its console and sends it commands.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { copyFileSync, mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { claimDevice } from "../owner/claim.ts"
import { sealCommand, type Command } from "../owner/commands.ts"
import { ConsoleClaimer } from "../owner/console-claimer.ts"
import { Keystore } from "../owner/keystore.ts"
import { subscribeAsOwner, type OwnerSubscriber } from "../owner/subscriber.ts"
import { httpsTransport } from "../registry/client.ts"
import type { LocalStack } from "../stack/local.ts"
import { waitForPort } from "../net/ports.ts"
import { DEVTOOLS_PORT, PROJECT_ROOT } from "../project.ts"
import { devsBin, forEachLine, powerCutEnv, runDevs } from "./devs-cli.ts"
import { until } from "./firmware.ts"

/** Compiles a firmware entry point and copies the image to `out`. */
export async function buildImage(entry: string, out: string): Promise<Buffer> {
    const r = await runDevs(["build", entry], { timeoutMs: 120_000 })
    if (r.code !== 0) throw new Error(`devs build ${entry} failed:\n${r.output}`)
    copyFileSync(join(PROJECT_ROOT, ".devicescript", "bin", "bytecode.devs"), out)
    return readFileSync(out)
}

/** Starts a devtools server (the simulator outside test mode connects to it). */
export async function startDevtools(cwd: string): Promise<ChildProcess> {
    const child = spawn(devsBin(), ["devtools"], { cwd, stdio: "ignore" })
    await waitForPort(DEVTOOLS_PORT, 30_000)
    return child
}

/** Options of a simulated device. */
export interface SimulatedDeviceOptions {
    stack: LocalStack
    /** Folder for the simulator's flash (`vm/`) and the owner's keystore. */
    dir: string
    /** Receives every line of the simulator and the claim, with host times. */
    transcript: string[]
}

/** The simulated device across power cuts; `lines` keeps everything it printed, in order. */
export class SimulatedDevice {
    lines: string[] = []
    readonly keystore: Keystore
    private child: ChildProcess | undefined
    private owner: OwnerSubscriber | undefined
    private readonly vmDir: string
    private readonly claimer: ConsoleClaimer

    constructor(private readonly options: SimulatedDeviceOptions) {
        this.vmDir = join(options.dir, "vm")
        mkdirSync(this.vmDir, { recursive: true })
        this.keystore = Keystore.open(join(options.dir, "owner.json"), "sim-owner")
        this.claimer = new ConsoleClaimer(async (id, code) => {
            const { stack } = this.options
            const ca = readFileSync(stack.pki.caCert)
            await claimDevice(httpsTransport(`https://localhost:${stack.registryPort}`, ca), this.keystore, id, code)
            this.owner = await subscribeAsOwner({ url: `mqtts://localhost:${stack.broker.port}`, ca, keystore: this.keystore, onVerified: () => {}, onRejected: () => {} })
        })
    }

    /** `["run", IMAGE]` deploys IMAGE into the flash first; `["vm"]` boots what the flash holds. */
    start(args: string[]) {
        const { stack, transcript } = this.options
        this.child = spawn(devsBin(), args, { cwd: this.vmDir, env: powerCutEnv({ ...process.env, NODE_EXTRA_CA_CERTS: stack.pki.caCert, NO_COLOR: "1" }), stdio: ["ignore", "pipe", "pipe"] })
        const onLine = (line: string) => {
            transcript.push(`${Date.now()} device: ${line}`)
            if (!line.startsWith("WASM> ")) return
            const text = line.slice(6)
            this.lines.push(text)
            this.claimer.onLine(text)?.catch(e => transcript.push(`claim failed: ${e}`))
        }
        forEachLine(this.child.stdout!, onLine)
        forEachLine(this.child.stderr!, onLine)
    }

    /** Kills the simulator process: a power cut. */
    async powerCut() {
        const child = this.child
        if (!child) return
        this.child = undefined
        const exited = new Promise(r => child.once("exit", r))
        child.kill("SIGKILL")
        await exited
    }

    /** Waits for a line matching `re` printed at or after line `from`; returns its index. */
    async waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<number> {
        let found = -1
        // the lines as they are when it times out, not when it starts waiting
        await until(() => `${re} (last lines:\n${this.lines.slice(-15).join("\n")})`, () => (found = this.lines.findIndex((l, i) => i >= from && re.test(l))) >= 0, timeoutMs)
        return found
    }

    /** Security events the device recorded at or after line `from`: "kind: detail". */
    events(from = 0): string[] {
        return this.lines.slice(from).map(l => /^security event #\d+ (.*)$/.exec(l)?.[1]).filter((e): e is string => e !== undefined)
    }

    /** Program starts (the runtime's `start:` line) at or after line `from`. */
    starts(from = 0): number {
        return this.lines.slice(from).filter(l => /^start: /.test(l)).length
    }

    /** The device id it printed at first boot. */
    get id(): string {
        return this.claimer.deviceId
    }

    /** The owner sends a sealed command. */
    async command(command: Command) {
        const { topic, payload } = await sealCommand(this.keystore, this.id, command)
        await this.owner!.client.publishAsync(topic, payload, { qos: 1 })
        this.options.transcript.push(`${Date.now()} owner: ${command.cmd} sent to ${topic}`)
    }

    /** The owner asks for an update check. */
    async askForUpdateCheck() {
        await this.command({ cmd: "update-check" })
    }

    /** Cuts the power and closes the owner's connection. */
    async stop() {
        await this.powerCut()
        await this.owner?.close()
    }
}
