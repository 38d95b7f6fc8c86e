/**
 * Real simulated devices sharing one owner, for the end-to-end rollout test
 * and the rollout benchmark: each device is the firmware in the DeviceScript
 * simulator with a flash and a devtools server of its own (./simulated-device.ts),
 * enrolled with the stack's registry on its first boot and claimed by one
 * owner service with the code it prints once. The owner service is a real
 * one (devs/owner/service.ts) with its rollout driver: what it sends each
 * device is the sealed `update` command, what counts is each device's sealed
 * report.
 *
 * The registry takes 20 new devices an hour from one address
 * (devs/registry/rate-limit.ts): a fleet on one stack stays below that.
 */
import { randomBytes } from "node:crypto"
import { mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { OwnerService } from "../owner/service.ts"
import { OwnerStore } from "../owner/store.ts"
import { httpsTransport } from "../registry/client.ts"
import type { StackCore } from "../stack/local.ts"
import { startDevtools, type Devtools } from "./devs-cli.ts"
import { SimulatedDevice } from "./simulated-device.ts"
import { until } from "./until.ts"

/** Options of a fleet of simulators. */
export interface SimulatorFleetOptions {
    stack: StackCore
    /** Folder for the owner's store and each device's flash (`<dir>/sim-<n>`). */
    dir: string
    /** Receives every line of the simulators and of the owner, with host times. */
    transcript: string[]
    /** A device is online when heard from within this time (default: the owner service's). */
    onlineMs?: number
}

/** One owner service and the simulators it claimed. */
export class SimulatorFleet {
    readonly devices: SimulatedDevice[] = []
    private readonly devtools: Devtools[] = []
    /** The simulator being booted: the next one waits for it. */
    private starting: Promise<unknown> = Promise.resolve()

    private constructor(
        private readonly options: SimulatorFleetOptions,
        /** The owner: claims every device, drives the rollouts. */
        readonly owner: OwnerService
    ) {}

    /** Starts the owner service (a new owner account on the stack's registry). */
    static async start(options: SimulatorFleetOptions): Promise<SimulatorFleet> {
        const { stack, dir, transcript } = options
        mkdirSync(dir, { recursive: true })
        const name = `fleet-owner-${randomBytes(4).toString("hex")}`
        const registryUrl = `https://localhost:${stack.registryPort}`
        const ca = readFileSync(stack.pki.caCert)
        const owner = new OwnerService({
            store: new OwnerStore(join(dir, `${name}.db`)),
            registry: httpsTransport(registryUrl, ca),
            registryUrl,
            name,
            brokerCa: ca,
            brokerNodes: stack.mqtt.endpoints,
            onlineMs: options.onlineMs,
            log: line => transcript.push(`${Date.now()} owner: ${line}`),
        })
        // each device follows what the service hears (three listeners a device): a fleet has more than Node's warning level
        owner.setMaxListeners(0)
        await owner.start()
        return new SimulatorFleet(options, owner)
    }

    /** Boots a new simulator running `image` (`devs run`, persistent flash); resolves once it is claimed and on MQTT. */
    async add(image: string, timeoutMs = 180_000): Promise<SimulatedDevice> {
        // one devtools server starts at a time: two that started together could pick the same free ports, and
        // both look up when one of them listens, so two simulators would share one server (and one identity)
        const booting = this.starting.then(() => this.boot(image))
        this.starting = booting.catch(() => {})
        const device = await booting
        await device.waitFor(/^uplink: connected to/, timeoutMs)
        await until(`${device.folder} claimed`, () => device.id !== "" && this.owner.follows(device.id), 30_000)
        return device
    }

    private async boot(image: string): Promise<SimulatedDevice> {
        const index = this.devices.length + 1
        const dir = join(this.options.dir, `sim-${index}`)
        mkdirSync(dir, { recursive: true })
        const devtools = await startDevtools(dir)
        this.devtools.push(devtools)
        const { stack, transcript } = this.options
        const device = new SimulatedDevice({ stack, dir, devtools, transcript, owner: this.owner, name: `sim-${index}` })
        this.devices.push(device)
        device.start(["run", image])
        return device
    }

    /** Whether the owner sees `device` online (heard from within its online time). */
    online(device: SimulatedDevice): boolean {
        return this.owner.deviceList().find(d => d.id === device.id)?.online === true
    }

    /** Stops every simulator, their devtools servers and the owner service. */
    async stop() {
        for (const d of this.devices) await d.stop()
        for (const t of this.devtools) t.stop()
        await this.owner.stop()
        this.owner.store.close()
    }
}
