/**
 * The real firmware in the DeviceScript simulator against a local stack,
 * with its owner played on the host by an owner service of its own
 * (devs/owner/service.ts, a store in the device's folder, a new owner
 * account): the owner claims the device with the code it prints once,
 * follows what it publishes and sends it commands. Everything is recorded
 * with host times, for the end-to-end tests and the benchmarks.
 *
 * Two ways to run it:
 * - `run(ENTRY)`: test mode (`devs run ENTRY --test`), flash in memory, no
 *   devtools server; the device lives as long as this one process.
 * - `start(["run", IMAGE])`, then `start(["vm"])` after each `powerCut()`:
 *   persistent flash in `<dir>/vm` (`devs run IMAGE` deploys the image into
 *   it, `devs vm` boots what it holds); both need a devtools server
 *   (`startDevtools`). Killing the process is a power cut, which falls
 *   between two flash operations (`powerCutEnv`).
 *
 * A fleet shares one owner (`owner`): a service the caller made, started and
 * stops, which claims every device; each device then keeps only what the
 * service heard from it.
 *
 * The firmware expects the registry on the well-known port; the simulator is
 * given the stack's registry port and the devtools server's ports instead
 * (`RunDevsOptions.ports`), so any number of these can run on one machine.
 */
import { randomBytes } from "node:crypto"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Command } from "../owner/commands.ts"
import { ConsoleClaimer } from "../owner/console-claimer.ts"
import { OwnerService } from "../owner/service.ts"
import { OwnerStore } from "../owner/store.ts"
import type { UpdateReport } from "../owner/update-report.ts"
import type { Rejected, Verified } from "../owner/verifier.ts"
import { httpsTransport } from "../registry/client.ts"
import { REGISTRY_PORT } from "../project.ts"
import type { StackCore } from "../stack/local.ts"
import { deviceLine, powerCutEnv, runDevs, runInSimulator, type Devtools, type DevsResult, type PortMap } from "./devs-cli.ts"
import { until } from "./until.ts"

/** Options of a simulated device. */
export interface SimulatedDeviceOptions {
    /** The registry and broker it enrolls with and publishes to; its owner uses them too. */
    stack: StackCore
    /** Folder for the simulator's persistent flash (`vm/`) and the owner's store. */
    dir: string
    /** The devtools server a simulator outside test mode (`start`) connects to. */
    devtools?: Devtools
    /** Receives every line of the simulator and of the owner, with host times; `FIRMWARE_LOG=<file>` keeps it. */
    transcript: string[]
    /** An owner service shared by a fleet, started by the caller (who stops it); default: a new owner of this device alone. */
    owner?: OwnerService
    /** Names the device in its owner's list when claimed. */
    name?: string
}

/** How the device prints that it sealed a message, with its counter. */
const SEALED = /^uplink: sealed \w+ #(\d+)/
/** How the device prints a security event it recorded. */
const SECURITY_EVENT = /^security event #\d+ (.*)$/

/** The simulated device and its owner, across power cuts. */
export class SimulatedDevice {
    /** What the device printed, without the simulator's prefix, in order, across power cuts. */
    readonly lines: string[] = []
    /** Messages the owner verified, in arrival order. */
    readonly verified: Verified[] = []
    /** Host time (ms) at which each verified message arrived, parallel to `verified`. */
    readonly arrivals: number[] = []
    /** The update steps the device reported (`things/<id>/up/update`), as the owner verified them, in arrival order. */
    readonly updates: UpdateReport[] = []
    /** Messages the owner rejected, and why. */
    readonly rejected: { topic: string; rejection: Rejected }[] = []
    /** Host time (ms) at which the device printed that it sealed each counter. */
    readonly sealedAt = new Map<number, number>()
    /** The owner's store: a new owner per device, unless a fleet shares one. */
    readonly store: OwnerStore
    private readonly service: OwnerService
    /** Whether the owner service is this device's own (started at the claim and stopped with it). */
    private readonly ownService: boolean
    private started = false
    private simulator: { abort: AbortController; ended: Promise<DevsResult> } | undefined
    private readonly vmDir: string
    private readonly claimer: ConsoleClaimer

    constructor(private readonly options: SimulatedDeviceOptions) {
        this.vmDir = join(options.dir, "vm")
        mkdirSync(this.vmDir, { recursive: true })
        const shared = options.owner
        this.ownService = shared === undefined
        this.service = shared ?? this.newOwner()
        this.store = this.service.store
        this.started = !this.ownService
        const mine = (deviceId: string | undefined) => this.ownService || (deviceId !== undefined && deviceId === this.id)
        this.service.on("verified", m => {
            if (!mine(m.deviceId)) return
            this.verified.push(m)
            this.arrivals.push(Date.now())
        })
        this.service.on("rejected", r => mine(r.rejection.deviceId) && this.rejected.push(r))
        this.service.on("update", u => {
            if (!mine(u.deviceId)) return
            this.updates.push(u.report)
            options.transcript.push(`${Date.now()} owner: update report ${u.deviceId.slice(0, 8)} ${JSON.stringify(u.report)}`)
        })
        this.claimer = new ConsoleClaimer((id, code) => this.claim(id, code))
    }

    /** A new owner of this device alone, with its store in the device's folder. */
    private newOwner(): OwnerService {
        const owner = `sim-owner-${randomBytes(4).toString("hex")}`
        const { stack, dir, transcript } = this.options
        const registryUrl = `https://localhost:${stack.registryPort}`
        const ca = readFileSync(stack.pki.caCert)
        return new OwnerService({
            store: new OwnerStore(join(dir, `${owner}.db`)),
            registry: httpsTransport(registryUrl, ca),
            registryUrl,
            name: owner,
            brokerCa: ca,
            brokerNodes: stack.mqtt.endpoints,
            log: line => transcript.push(`${Date.now()} owner: ${line}`),
        })
    }

    /** Runs a firmware entry point (a path from the project root) in test mode: flash in memory, no devtools server. */
    run(entry = "src/main.ts", timeoutMs = 300_000) {
        const env = { NODE_EXTRA_CA_CERTS: this.options.stack.pki.caCert }
        const ports = this.ports()
        this.spawn(signal => runInSimulator(entry, { timeoutMs, env, ports, signal, onLine: line => this.onLine(line) }))
    }

    /** `["run", IMAGE]` deploys IMAGE into the flash first; `["vm"]` boots what the flash holds. Needs `devtools`. */
    start(args: string[]) {
        const { devtools } = this.options
        if (!devtools) throw new Error("a simulator outside test mode needs a devtools server: pass devtools")
        const env = { ...powerCutEnv(), NODE_EXTRA_CA_CERTS: this.options.stack.pki.caCert }
        const ports = { ...this.ports(), ...devtools.ports }
        this.spawn(signal => runDevs(args, { cwd: this.vmDir, env, ports, signal, onLine: line => this.onLine(line) }))
    }

    /** The registry the firmware expects on the well-known port is the stack's. */
    private ports(): PortMap {
        return { [REGISTRY_PORT]: this.options.stack.registryPort }
    }

    private spawn(run: (signal: AbortSignal) => Promise<DevsResult>) {
        if (this.simulator) throw new Error("the simulator is running: cut the power first")
        const abort = new AbortController()
        this.simulator = { abort, ended: run(abort.signal) }
    }

    private onLine(line: string) {
        const { transcript } = this.options
        transcript.push(`${Date.now()} device${this.options.name ? ` ${this.options.name}` : ""}: ${line}`)
        const text = deviceLine(line)
        if (text === undefined) return
        this.lines.push(text)
        const sealed = SEALED.exec(text)
        if (sealed) this.sealedAt.set(Number(sealed[1]), Date.now())
        this.claimer.onLine(text)?.catch(e => transcript.push(`${Date.now()} owner: claim failed: ${e}`))
    }

    /** The owner claims the device with the code it printed, then follows what it publishes. */
    private async claim(id: string, code: string) {
        if (!this.started) {
            await this.service.start()
            this.started = true
        }
        await this.service.claim(id, code, this.options.name)
    }

    /** Kills the simulator process: a power cut. */
    async powerCut() {
        const simulator = this.simulator
        if (!simulator) return
        this.simulator = undefined
        simulator.abort.abort()
        await simulator.ended
    }

    /** Waits for a line matching `re` printed at or after line `from`; returns its index. */
    async waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<number> {
        let found = -1
        // the lines as they are when it times out, not when it starts waiting
        await until(
            () => `${re} (last lines:\n${this.lines.slice(-15).join("\n")})`,
            () => (found = this.lines.findIndex((l, i) => i >= from && re.test(l))) >= 0,
            timeoutMs
        )
        return found
    }

    /** Security events the device recorded at or after line `from`: "kind: detail". */
    events(from = 0): string[] {
        return this.lines
            .slice(from)
            .map(l => SECURITY_EVENT.exec(l)?.[1])
            .filter(e => e !== undefined)
    }

    /** Counters of the messages the device sealed, from its console. */
    sealed(): number[] {
        return this.lines
            .map(l => SEALED.exec(l)?.[1])
            .filter(c => c !== undefined)
            .map(Number)
    }

    /** Program starts (the runtime's `start:` line) at or after line `from`. */
    starts(from = 0): number {
        return this.lines.slice(from).filter(l => /^start: /.test(l)).length
    }

    /** The device's folder (its devtools server runs there). */
    get folder(): string {
        return this.options.dir
    }

    /** Where its simulator runs and keeps its flash. */
    get vmFolder(): string {
        return this.vmDir
    }

    /** The device id it printed at first boot. */
    get id(): string {
        return this.claimer.deviceId
    }

    /** The owner service, once the owner has claimed the device. */
    get owner(): OwnerService {
        if (!this.started || !this.service.follows(this.id)) throw new Error("the owner has not claimed the device yet")
        return this.service
    }

    /** The device's owner root, as the owner holds it (tests look for it where it must not be). */
    get root(): Buffer {
        return this.store.device(this.id)!.root
    }

    /** The owner sends a sealed command. */
    async command(command: Command) {
        await this.owner.command(this.id, command)
    }

    /** The owner names a release for the device to install: the image's SHA-256 (hex) and its manifest's sequence. */
    async requestUpdate(digestHex: string, sequence: number) {
        await this.command({ cmd: "update", digest: digestHex, sequence })
    }

    /** Waits for a report of `step` for the release with this digest (hex), at or after report `from`; returns it. */
    async waitForReport(digestHex: string, step: string, timeoutMs: number, from = 0): Promise<UpdateReport> {
        let found: UpdateReport | undefined
        await until(
            () => `an update report ${step} of ${digestHex.slice(0, 16)} (reports: ${JSON.stringify(this.updates.slice(from))})`,
            () => (found = this.updates.slice(from).find(r => r.digest === digestHex && r.step === step)) !== undefined,
            timeoutMs
        )
        return found!
    }

    /** Cuts the power and stops its own owner service (not a shared one); `FIRMWARE_LOG=<file>` keeps the transcript for debugging. */
    async stop() {
        await this.powerCut()
        if (this.ownService) {
            await this.service.stop()
            this.store.close()
        }
        if (process.env.FIRMWARE_LOG) writeFileSync(process.env.FIRMWARE_LOG, this.options.transcript.join("\n"))
    }
}
