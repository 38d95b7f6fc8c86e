/**
 * What `npm start` does: the firmware in the DeviceScript simulator against
 * the local stack, with the owner service and its console.
 *
 * In order, each stage with a progress line (the time of day, and the
 * seconds since `npm start`):
 * - the firmware is built (in the background from the start: the longest
 *   stage; a build whose sources did not change since the last one is reused);
 * - the local stack (private CA, Mosquitto with TLS and dynamic security, or
 *   with `--broker rabbitmq` a RabbitMQ cluster (devs/stack/cluster.ts), the
 *   registry over HTTPS, the update service; state in the git-ignored
 *   `var/stack`) and the DeviceScript devtools server the simulator needs;
 *   the update service is handed the owner's root and key list (var/keys,
 *   made on a fresh clone);
 * - the owner service (store var/owner/owner.db, owner "local") with its API
 *   and console on 127.0.0.1:8080: how to log in is printed (on the first run,
 *   the file holding the one-time setup link). A keystore of the CLIs before the service
 *   (var/owner/local.json) is moved into the store on the first run;
 * - the build is published to the update service (signed with the current
 *   release key, one sequence above the newest, so the device runs a release it can be
 *   rolled back to) and runs in the simulator (flash in var/sim), trusting the
 *   local CA; what the device prints is shown as `device>`;
 * - playing the owner at the device's console, the service claims the device
 *   with the code it shows once, and prints what it verified (`owner>`); the
 *   first verified reading is a stage of its own.
 * Ctrl-C or SIGTERM stops everything it started; so does the end of the
 * devtools server. The console can factory-reset the simulated device.
 */
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { portInUse } from "../net/ports.ts"
import { ConsoleClaimer } from "../owner/console-claimer.ts"
import { describeEvent } from "../owner/describe.ts"
import type { SimulatorControl } from "../owner/http.ts"
import { migrateKeystore } from "../owner/keystore-migration.ts"
import { runOwnerService, type RunningOwner } from "../owner/run.ts"
import { OwnerStore } from "../owner/store.ts"
import { OWNER_FILES, ownerKeystorePath, PROJECT_ROOT, REGISTRY_PORT, SIMULATOR_FILES, stackFiles } from "../project.ts"
import { startClusterStack } from "../stack/cluster.ts"
import { startLocalStack, type StackCore } from "../stack/local.ts"
import type { SigningKey } from "../updates/cose-sign1.ts"
import { ensureKeyring, publishDocuments } from "../updates/keyring.ts"
import { CLASS_ID, manifestFor, signManifest } from "../updates/manifest.ts"
import { buildImage, deviceLine, powerCutEnv, runDevs, startDevtools, type Devtools, type PortMap } from "./devs-cli.ts"

/** The owner `npm start` plays. */
const OWNER = "local"
/** What the firmware build reads: a build is reused while none of these changed. */
const BUILD_SOURCES = ["src", "boards", "devsconfig.json", "package-lock.json"]
/** The runtime's own lines about its one socket, which say nothing the device's lines do not (`… open undefined`). */
const SOCKET_NOISE = /^socket \S+ (open|close) undefined$/

/** The ports `npm start` serves on (the well-known ones of devs/project.ts unless told otherwise). */
export interface StartPorts {
    registry: number
    broker: number
    updates: number
    /** The devtools dashboard; its bus and debugger ports are free ones. */
    devtools: number
    /** The owner service's API and console, on loopback. */
    owner: number
}

/** Which broker the stack runs: Mosquitto (the embedded default) or a RabbitMQ cluster of `nodes` nodes on free ports. */
export type BrokerChoice = { kind: "mosquitto" } | { kind: "rabbitmq"; nodes: number }

/** Options of `npm start`. */
export interface StartOptions {
    ports: StartPorts
    /** Default: Mosquitto on `ports.broker`. */
    broker?: BrokerChoice
    /** A file holding a new console password (for an owner who lost theirs). */
    passwordFile?: string
}

/** Log lines with the time of day; stage lines with the seconds since `npm start` too. */
class Progress {
    private readonly startedAt = Number(process.env.SENTINEL_STARTED_AT) || Date.now()

    line(text: string) {
        console.log(`${new Date().toTimeString().slice(0, 8)} ${text}`)
    }

    error(text: string) {
        console.error(`${new Date().toTimeString().slice(0, 8)} ${text}`)
    }

    /** A stage reached: `[+12.3 s] text`. */
    stage(text: string) {
        this.line(`[+${this.seconds()} s] ${text}`)
    }

    seconds(): string {
        return ((Date.now() - this.startedAt) / 1000).toFixed(1)
    }
}

/** Runs until Ctrl-C or SIGTERM, or until the devtools server ends; sets the exit code. */
export async function startLocal(options: StartOptions): Promise<void> {
    const { ports } = options
    const progress = new Progress()
    let stack: StackCore | undefined
    let owner: RunningOwner | undefined
    let devtools: Devtools | undefined
    /** Ends the build and the simulator, whichever runs. */
    const children = new AbortController()
    let stopping = false
    let simulation: Simulation | undefined
    const stop = (code: number) => {
        if (stopping) return
        stopping = true
        process.exitCode = code
        devtools?.process.kill("SIGTERM")
        children.abort()
        void (owner ? owner.stop() : Promise.resolve()).finally(() => stack?.stop())
    }
    // the broker must not outlive us, however we end
    process.on("exit", () => stack?.killBroker())
    process.on("SIGINT", () => stop(0))
    process.on("SIGTERM", () => stop(0))
    try {
        if (await portInUse(ports.devtools))
            throw new Error(`port ${ports.devtools} is taken: is another devtools server (or npm start) running?`)
        const keyring = ensureKeyring()
        const files = stackFiles()
        const building = buildLocal(files.localBuild, children.signal, progress)
        building.catch(() => {}) // awaited below; a failure before then must not go unhandled
        // the registry's security events, and what goes wrong in the broker (not its connection notices)
        const stackLog = (service: string, line: string) => (service === "registry" || /error/i.test(line)) && progress.line(line)
        const services = { dir: files.dir, registryPort: ports.registry, updatesPort: ports.updates, onLog: stackLog }
        const broker = options.broker ?? { kind: "mosquitto" }
        if (broker.kind === "rabbitmq") {
            progress.line(`starting the local stack (CA, a ${broker.nodes}-node RabbitMQ cluster, registry, update service)…`)
            stack = await startClusterStack({ ...services, nodes: broker.nodes })
        } else {
            progress.line("starting the local stack (CA, Mosquitto, registry, update service)…")
            stack = await startLocalStack({ ...services, brokerPort: ports.broker })
        }
        const brokers = stack.mqtt.endpoints.map(e => `mqtts://${e.host}:${e.port}`).join(" ")
        progress.stage(`local stack up: registry https://localhost:${stack.registryPort}, broker ${brokers}`)
        for (const d of await publishDocuments(stack.updates, keyring.documents()))
            progress.line(`published ${d.kind === "root" ? "root" : "key list"} ${d.version} of var/keys to the update service`)
        devtools = await startDevtools(PROJECT_ROOT, ports.devtools)
        devtools.process.on("exit", code => {
            if (!stopping) progress.error(`the devtools server exited (${code}); stopping`)
            stop(1)
        })
        progress.stage(`DeviceScript devtools server up: dashboard http://localhost:${ports.devtools}/`)
        const simulator: SimulatorControl = {
            deviceId: () => simulation?.deviceId(),
            factoryReset: () => simulation!.factoryReset(),
        }
        owner = await startOwner(stack, progress, { ...options, simulator })
        const image = await building
        await publishLocalBuild(stack, keyring.releaseKey(), image, progress)
        // the firmware expects the registry on the well-known port
        const portMap: PortMap = { ...devtools.ports, [REGISTRY_PORT]: stack.registryPort }
        simulation = new Simulation(owner, stack, progress, image, portMap)
        progress.stage("the firmware runs in the simulator (Ctrl-C stops everything)")
        await simulation.run(children.signal)
        if (!stopping) progress.error("the simulator exited; stopping")
        stop(1)
    } catch (e) {
        // what a stop by Ctrl-C or SIGTERM interrupted is no error
        const interrupted = stopping
        stop(1)
        if (!interrupted) throw e
    }
}

/** The simulated device: its runs, the owner playing at its console, and its factory reset. */
class Simulation {
    private claimer: ConsoleClaimer
    private current: AbortController | undefined
    private reset: { done: () => void } | undefined

    constructor(
        private readonly owner: RunningOwner,
        private readonly stack: StackCore,
        private readonly progress: Progress,
        private readonly image: string,
        private readonly ports: PortMap
    ) {
        this.claimer = this.newClaimer()
        const service = owner.service
        service.once("reading", () => progress.stage("first verified reading stored: it is in the console"))
    }

    deviceId(): string | undefined {
        return this.claimer.deviceId || undefined
    }

    private newClaimer() {
        const service = this.owner.service
        return new ConsoleClaimer(async (id, code) => {
            if (service.follows(id)) return
            await service.claim(id, code)
            this.progress.stage(`the device is claimed by owner "${OWNER}": its readings come once it has logged in`)
        })
    }

    /** Runs the simulator until `signal` aborts or it ends by itself; a factory reset starts it again. */
    async run(signal: AbortSignal) {
        moveFormerFlash(this.progress)
        mkdirSync(SIMULATOR_FILES.dir, { recursive: true })
        while (!signal.aborted) {
            const run = new AbortController()
            this.current = run
            const abort = () => run.abort()
            signal.addEventListener("abort", abort)
            const ended = await runDevs(["run", this.image], {
                cwd: SIMULATOR_FILES.dir,
                // Ctrl-C may fall in the middle of a flash save: keep the flash file whole
                env: { ...powerCutEnv(), NODE_EXTRA_CA_CERTS: this.stack.pki.caCert },
                ports: this.ports,
                signal: run.signal,
                onLine: line => this.onLine(line),
            })
            signal.removeEventListener("abort", abort)
            if (signal.aborted) return
            if (!this.reset) return void this.progress.error(`the simulator ended (exit ${ended.code})`)
            await this.wipe()
        }
    }

    private onLine(line: string) {
        const text = deviceLine(line)
        if (text === undefined) {
            if (/error/i.test(line)) this.progress.error(line)
            return
        }
        if (SOCKET_NOISE.test(text)) return
        this.progress.line(`device> ${text}`)
        this.claimer.onLine(text)?.catch(e => this.progress.error(`owner> claim failed: ${(e as Error).message}`))
    }

    /** Stops the simulator, forgets the device it ran, wipes its flash and boots it as a new device. */
    factoryReset(): Promise<void> {
        if (this.reset || !this.current) return Promise.reject(new Error("the simulator is not running"))
        return new Promise(done => {
            this.reset = { done }
            this.current!.abort()
        })
    }

    private async wipe() {
        const old = this.deviceId()
        if (old && this.owner.service.follows(old)) await this.owner.service.remove(old)
        rmSync(SIMULATOR_FILES.flash, { force: true })
        this.claimer = this.newClaimer()
        this.progress.stage(
            `factory reset: the simulator's flash is wiped${old ? ` (device ${old} forgotten)` : ""}; it boots as a new device`
        )
        const done = this.reset!.done
        this.reset = undefined
        done()
    }
}

/** The simulator's flash moves from the project root (before the console) to var/sim, once. */
function moveFormerFlash(progress: Progress) {
    const { flash, formerFlash } = SIMULATOR_FILES
    if (existsSync(flash) || !existsSync(formerFlash)) return
    mkdirSync(dirname(flash), { recursive: true })
    renameSync(formerFlash, flash)
    progress.line(`moved the simulator's flash from ${relative(PROJECT_ROOT, formerFlash)} to ${relative(PROJECT_ROOT, flash)}`)
}

/** Starts the owner service on var/owner (moving an older keystore into its store first); prints how to log in and what it stores. */
async function startOwner(
    stack: StackCore,
    progress: Progress,
    options: StartOptions & { simulator: SimulatorControl }
): Promise<RunningOwner> {
    const keystore = ownerKeystorePath(OWNER)
    if (existsSync(keystore)) {
        const store = new OwnerStore(OWNER_FILES.store)
        try {
            if (!store.account() && store.devices().length === 0) {
                const { devices } = migrateKeystore(keystore, store)
                progress.line(`moved ${devices.length} device(s) from ${keystore} into ${OWNER_FILES.store}`)
            }
        } finally {
            store.close()
        }
    }
    const owner = await runOwnerService({
        storePath: OWNER_FILES.store,
        tokenPath: OWNER_FILES.apiToken,
        name: OWNER,
        registryUrl: `https://localhost:${stack.registryPort}`,
        ca: readFileSync(stack.pki.caCert),
        brokerNodes: stack.mqtt.endpoints,
        port: options.ports.owner,
        passwordFile: options.passwordFile,
        simulator: options.simulator,
        log: line => progress.line(`owner> ${line}`),
    })
    for (const kind of ["reading", "state", "event", "update", "command", "rejection"] as const)
        owner.service.on(kind, (data: unknown) => {
            const line = describeEvent({ event: kind, data })
            if (line) progress.line(`owner> ${line}`)
        })
    progress.stage(`owner service up: the console is at ${owner.url}`)
    if (owner.setupLinkFile)
        progress.line(`  first run: open the link in ${relative(PROJECT_ROOT, owner.setupLinkFile)} to set the console password`)
    else progress.line(`  log in there with the console password you set (lost it? npm start -- --password-file FILE sets a new one)`)
    progress.line("  the CLIs talk to the same service: npm run claim|command|consume|bridge -- --help")
    return owner
}

/** A digest of every file the firmware build reads. */
function sourceDigest(): string {
    const hash = createHash("sha256")
    const add = (path: string) => {
        const full = join(PROJECT_ROOT, path)
        if (!existsSync(full)) return
        if (statSync(full).isDirectory()) for (const name of readdirSync(full).sort()) add(join(path, name))
        else hash.update(`${path}\n`).update(readFileSync(full))
    }
    for (const path of BUILD_SOURCES) add(path)
    return hash.digest("hex")
}

/** Builds the firmware into `path`, unless the last build there was made from the same sources. Returns `path`. */
async function buildLocal(path: string, signal: AbortSignal, progress: Progress): Promise<string> {
    const digestFile = `${path}.sources`
    const digest = sourceDigest()
    if (existsSync(path) && existsSync(digestFile) && readFileSync(digestFile, "utf8") === digest) {
        progress.stage(`firmware unchanged since the last build: ${relative(PROJECT_ROOT, path)}`)
        return path
    }
    progress.line("building the firmware (src/main.ts)…")
    mkdirSync(dirname(path), { recursive: true })
    await buildImage("src/main.ts", path, signal)
    writeFileSync(digestFile, digest)
    progress.stage("firmware built")
    return path
}

/** Publishes the image at `path` signed, one sequence above the newest image of its class (an image already published is left as it is). */
async function publishLocalBuild(stack: StackCore, key: SigningKey, path: string, progress: Progress) {
    const image = readFileSync(path)
    const digest = createHash("sha256").update(image).digest("hex")
    if (!(await stack.registry.store.getFirmwareImage(digest))) {
        const sequence = ((await stack.registry.store.latestFirmwareImage(CLASS_ID.toString("hex")))?.sequence ?? 0) + 1
        await stack.updates.publish(signManifest(manifestFor(image, sequence), key), image)
        progress.line(
            `published this build as sequence ${sequence} (sha256 ${digest.slice(0, 16)}…); ` +
                "change the firmware, then npm run release publishes the next"
        )
    }
}
