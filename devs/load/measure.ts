/**
 * One step of the load test: N emulated devices (devs/sim/fleet-emulator.ts)
 * against a running setup (./setups.ts), in phases, each with a deadline:
 *
 * 1. enroll: the devices not yet enrolled make their credentials, enroll over
 *    HTTPS (each from a loopback address of its own, as the registry counts
 *    enrollments per source) and are claimed by the owner service. Identities
 *    enrolled by an earlier, smaller step are reused: enrollment costs the
 *    device's PBKDF2 work and the claim the owner's, and neither is what a
 *    running fleet does all day, while logging in and publishing are;
 * 2. login: all N log in with SCRAM-SHA-256 over HTTPS (RFC 7804): logins per second;
 * 3. connect: all N connect over MQTT 3.1.1 with TLS with the broker login
 *    they got, subscribe to their commands and send a sealed state report:
 *    devices connected, and the broker's resident memory grown per connection;
 * 4. publish: each sends a sealed reading (COSE_Encrypt0) every `everyMs`, spread
 *    evenly, for `durationMs`; the owner service verifies and stores them;
 * 5. drain: until every message sealed has been verified at the owner, or the deadline.
 *
 * Seal to owner: each message's seal time is kept by (device, counter), and
 * the owner service's `verified` event (after its group commit) closes it:
 * so a copy the broker delivers twice is seen, as is one never delivered.
 */
import { Agent } from "node:https"
import { performance } from "node:perf_hooks"
import { enroll, httpsTransport } from "../registry/client.ts"
import { Behaviour, deviceAddress, EmulatedDevice, type BrokerGrant } from "../sim/fleet-emulator.ts"
import { makeHostDevice } from "../sim/host-device.ts"
import type { RunningSetup } from "./setups.ts"

/** What one step measured. */
export interface StepResult {
    devices: number
    /** Devices enrolled and claimed in this step (the rest were reused). */
    enrolled: number
    enrollPerS: number
    loginsPerS: number
    /** Logins that got no broker login (the broker did not grant it in time) and were tried again. */
    loginRetries: number
    connected: number
    /** Verified at the owner per second while the devices published. */
    verifiedPerS: number
    p50Ms: number
    p99Ms: number
    /** The broker's resident memory grown per connection (every node together), in bytes. */
    brokerBytesPerConnection: number
    /** This process's resident memory grown per connection (the emulated devices' side), in bytes. */
    emulatorBytesPerConnection: number
    /** Messages sealed, verified once, verified more than once, and never verified. */
    sealed: number
    verifiedOnce: number
    duplicates: number
    missing: number
}

/** Options of a step. */
export interface StepOptions {
    devices: number
    /** How long the devices publish. */
    durationMs: number
    /** Each device sends a reading this often. */
    everyMs: number
    /** Devices set up at once. */
    concurrency: number
    /** Longest time any one phase may take. */
    phaseMs: number
    log: (line: string) => void
    signal: AbortSignal
}

/** Logins a device tries before the step fails. */
const LOGIN_ATTEMPTS = 10

/** A phase that ran past its deadline, or was interrupted: the step stops there. */
export class PhaseFailed extends Error {}

/** One emulated device the load test keeps across steps. */
interface Member {
    device: EmulatedDevice
    agent: Agent
    grant?: BrokerGrant
}

/** The devices of one setup, kept across its steps (identities are reused). */
export class LoadFleet {
    private readonly members: Member[] = []
    /** Seal time (performance.now()) and kind by `${device}:${counter}`, until verified. */
    private readonly inFlight = new Map<string, { at: number; kind: string }>()
    private readonly latencies: number[] = []
    private verifiedOnce = 0
    private duplicates = 0
    private sealed = 0
    /** Keys verified, so a second copy is a duplicate (the owner drops copies itself; this would show one that passed). */
    private readonly done = new Set<string>()

    constructor(private readonly setup: RunningSetup) {
        setup.owner.service.on("verified", m => {
            const key = `${m.deviceId}:${m.counter}`
            const sealed = this.inFlight.get(key)
            if (sealed !== undefined) {
                this.inFlight.delete(key)
                this.done.add(key)
                this.verifiedOnce++
                // the latency is the readings': a state report is sent while its device connects, not at the set rate
                if (sealed.kind === "readings") this.latencies.push(performance.now() - sealed.at)
            } else if (this.done.has(key)) this.duplicates++
        })
    }

    /** Runs one step of `options.devices` devices; throws PhaseFailed when a phase does not finish in time. */
    async step(options: StepOptions): Promise<StepResult> {
        const { devices: n, log } = options
        const phase = async (name: string, count: number, work: (i: number) => Promise<void>) => {
            const started = performance.now()
            let next = 0
            let finished = 0
            let failure: Error | undefined
            // a timer of our own: Node 20 may collect an AbortSignal.timeout held only by AbortSignal.any, which then never fires
            const expiry = new AbortController()
            const timer = setTimeout(() => expiry.abort(), options.phaseMs)
            const deadline = AbortSignal.any([options.signal, expiry.signal])
            const workers = Array.from({ length: Math.min(count, options.concurrency) }, async () => {
                while (next < count && !deadline.aborted && !failure) {
                    const i = next++
                    try {
                        await work(i)
                        finished++
                    } catch (e) {
                        failure ??= e as Error
                    }
                }
            })
            await Promise.race([Promise.all(workers), new Promise(r => deadline.addEventListener("abort", r, { once: true }))])
            clearTimeout(timer)
            const s = (performance.now() - started) / 1000
            if (failure) throw new PhaseFailed(`${name}: ${failure.message} (${finished} of ${count} done)`)
            if (finished < count)
                throw new PhaseFailed(
                    options.signal.aborted
                        ? `${name}: interrupted (${finished} of ${count} done)`
                        : `${name}: ${finished} of ${count} in ${options.phaseMs / 1000} s (deadline)`
                )
            log(`  ${this.setup.name} ${n}: ${name}: ${count} in ${s.toFixed(1)} s (${(count / Math.max(s, 0.001)).toFixed(0)}/s)`)
            return s
        }

        const known = this.members.length
        const enrollS = await phase("enroll and claim", n - known, async j => {
            const i = known + j
            const agent = new Agent({ keepAlive: true, localAddress: deviceAddress(i), family: 4, maxSockets: 1 })
            const t = httpsTransport(this.setup.registryUrls[i % this.setup.registryUrls.length], this.setup.ca, agent)
            const { device, enrollment } = await makeHostDevice()
            const enrolled = await enroll(t, enrollment)
            if (enrolled.status !== 201) throw new Error(`enrollment of device ${i} refused (HTTP ${enrolled.status})`)
            await this.setup.owner.service.claim(device.id, device.claimCode)
            const broker = { url: this.setup.brokerUrls[i % this.setup.brokerUrls.length], ca: this.setup.ca }
            const emulated = new EmulatedDevice(device, i, Behaviour.Silent, 0, t, broker)
            emulated.onSeal = (counter, kind) => {
                this.sealed++
                this.inFlight.set(`${device.id}:${counter}`, { at: performance.now(), kind })
            }
            this.members[i] = { device: emulated, agent }
            agent.destroy()
        })
        const members = this.members.slice(0, n)

        let retries = 0
        const loginS = await phase("SCRAM login", n, async i => {
            // a login the broker could not grant in time is a 200 without a broker login; the device logs in again
            // two seconds later, as the firmware backs off (Mosquitto's dynamic security slows with every client it holds)
            for (let attempt = 1; ; attempt++)
                try {
                    members[i].grant = await members[i].device.logIn()
                    break
                } catch (e) {
                    if (attempt === LOGIN_ATTEMPTS || options.signal.aborted) throw e
                    retries++
                    await new Promise(r => setTimeout(r, 2000))
                }
            // the HTTPS connection is not kept: a device does not hold one to the registry
            members[i].agent.destroy()
        })
        if (retries) log(`  ${this.setup.name} ${n}: ${retries} logins without a broker login, tried again`)

        const brokerBefore = this.setup.brokerRssBytes()
        const selfBefore = process.memoryUsage().rss
        await phase("MQTT connect", n, async i => members[i].device.connectBroker(members[i].grant!))
        const connected = members.filter(m => m.device.online).length
        const brokerGrowth = this.setup.brokerRssBytes() - brokerBefore
        const selfGrowth = process.memoryUsage().rss - selfBefore
        log(
            `  ${this.setup.name} ${n}: ${connected} connected; broker +${mib(brokerGrowth)} MiB, ` +
                `emulator +${mib(selfGrowth)} MiB (${(brokerGrowth / connected / 1024).toFixed(1)} KiB per connection at the broker)`
        )

        // publish: device i sends at offsets i/n of the interval, so the rate is even
        this.latencies.length = 0
        const verifiedBefore = this.verifiedOnce
        const started = performance.now()
        let sent = 0
        let sendErrors = 0
        await new Promise<void>(resolve => {
            const tick = setInterval(() => {
                const elapsed = performance.now() - started
                if (elapsed >= options.durationMs || options.signal.aborted) {
                    clearInterval(tick)
                    return resolve()
                }
                const due = Math.floor((elapsed / options.everyMs) * n)
                for (; sent < due; sent++) {
                    const d = members[sent % n].device
                    // a device the broker dropped is offline: it does not seal what it cannot send
                    if (!d.online) sendErrors++
                    else
                        d.sendReading(20 + (sent % 10) / 4).catch(() => {
                            sendErrors++
                        })
                }
            }, 20)
        })
        const publishS = (performance.now() - started) / 1000
        const verifiedInWindow = this.verifiedOnce - verifiedBefore
        log(`  ${this.setup.name} ${n}: publish: ${sent} readings sent in ${publishS.toFixed(1)} s, ${verifiedInWindow} verified meanwhile`)

        const drainStarted = performance.now()
        while (this.inFlight.size > 0 && performance.now() - drainStarted < options.phaseMs && !options.signal.aborted)
            await new Promise(r => setTimeout(r, 100))
        const drainS = (performance.now() - drainStarted) / 1000
        log(`  ${this.setup.name} ${n}: drain: ${this.inFlight.size} not verified after ${drainS.toFixed(1)} s`)
        // messages/s at the owner: what it verified from the first publish to the last verification
        const verifiedPerS = (this.verifiedOnce - verifiedBefore) / (publishS + drainS)

        for (const m of members) await m.device.disconnect()
        if (sendErrors) log(`  ${this.setup.name} ${n}: ${sendErrors} readings not sent (device offline or publish failed)`)
        const sorted = [...this.latencies].sort((a, b) => a - b)
        const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN)
        return {
            devices: n,
            enrolled: n - known,
            enrollPerS: (n - known) / Math.max(enrollS, 0.001),
            loginsPerS: n / loginS,
            loginRetries: retries,
            connected,
            verifiedPerS,
            p50Ms: at(0.5),
            p99Ms: at(0.99),
            brokerBytesPerConnection: brokerGrowth / Math.max(connected, 1),
            emulatorBytesPerConnection: selfGrowth / Math.max(connected, 1),
            sealed: this.sealed,
            verifiedOnce: this.verifiedOnce,
            duplicates: this.duplicates,
            missing: this.inFlight.size,
        }
    }

    /** Disconnects every device. */
    async close() {
        for (const m of this.members) {
            m.agent.destroy()
            await m.device.disconnect()
        }
    }
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(1)
