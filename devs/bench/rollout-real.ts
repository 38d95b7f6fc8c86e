/**
 * Rollouts through real simulated devices (printed, never asserted): the
 * firmware in the DeviceScript simulator, each device with its own flash and
 * devtools server, claimed by one owner service whose rollout driver sends the
 * sealed `update` command (devs/sim/simulator-fleet.ts), against a local stack.
 *
 * - one release through N devices in three stages (a canary, 50 %, 100 %):
 *   each stage's time from its first offer to its last sealed confirmation,
 *   as a ratio to the canary's (one device updating alone, the baseline of
 *   the same run), and the whole rollout;
 * - the memory of one device: the resident set of its simulator process and
 *   of its devtools server;
 * - with `--largest-fleet`: simulators started one by one until one of them
 *   no longer sends a reading within its interval, memory runs short, or a
 *   device cannot boot and be claimed in time; the largest N that held.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs"
import { totalmem } from "node:os"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RolloutStatus, type StagePlan } from "../owner/rollout/engine.ts"
import { OTA_ANCHOR_PATH } from "../project.ts"
import { ENROLLMENT_POLICY } from "../registry/rate-limit.ts"
import { buildImage } from "../sim/devs-cli.ts"
import type { SimulatedDevice } from "../sim/simulated-device.ts"
import { SimulatorFleet } from "../sim/simulator-fleet.ts"
import { until } from "../sim/until.ts"
import { startLocalStack, type LocalStack } from "../stack/local.ts"
import { ensureKeyring, publishDocuments, writeTrustAnchor } from "../updates/keyring.ts"
import { manifestFor, signManifest } from "../updates/manifest.ts"

/**
 * How often the firmware sends the readings it holds (src/firmware.ts); in the simulator every sensor samples
 * faster (src/sensors/config.ts).
 */
const FLUSH_MS = 5000
/** A device keeps up while its owner verifies a reading at least this often: one send late, never two. */
const READING_DEADLINE_MS = 2 * FLUSH_MS
/** How long each fleet size is watched before the next device starts. */
const WATCH_MS = 30_000
/** Memory left below this share of the machine's ends the search. */
const MIN_FREE_SHARE = 0.1

const seconds = (ms: number) => (ms / 1000).toFixed(1)

/** Resident memory (kB) of the processes whose working folder is `dir`. */
function rssOfProcessesIn(dir: string): number {
    let kb = 0
    for (const pid of readdirSync("/proc").filter(p => /^\d+$/.test(p))) {
        try {
            if (readlinkSync(`/proc/${pid}/cwd`) !== dir) continue
            kb += Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0)
        } catch {
            // the process ended meanwhile
        }
    }
    return kb
}

/** The machine's CPU time so far: busy and total jiffies over all cores. */
function cpuTimes(): { busy: number; total: number } {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number)
    const total = fields.reduce((a, b) => a + b, 0)
    return { busy: total - fields[3] - (fields[4] ?? 0), total }
}

const memAvailableKb = () => Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0)

/** A stack, the OTA images (v1 and v2) signed with the owner's keys and published, and an owner with no device yet. */
async function setUp(dir: string, transcript: string[], enrollments: number) {
    const keyring = ensureKeyring()
    // the OTA fixtures trust the root their builder names: here the owner's
    writeTrustAnchor(keyring.anchor(), OTA_ANCHOR_PATH)
    const v1 = await buildImage("test/device/fixtures/ota-v1.ts", join(dir, "v1.devs"))
    const v2 = await buildImage("test/device/fixtures/ota-v2.ts", join(dir, "v2.devs"))
    const stack: LocalStack = await startLocalStack({
        dir,
        onLog: (s, l) => transcript.push(`${Date.now()} ${s}: ${l}`),
        // many simulators enroll from one address here, as a lab would
        enrollmentLimit: { ...ENROLLMENT_POLICY, limit: Math.max(ENROLLMENT_POLICY.limit, enrollments + 1) },
    })
    await publishDocuments(stack.updates, keyring.documents())
    const key = keyring.releaseKey()
    await stack.updates.publish(signManifest(manifestFor(v1, 1), key), v1)
    const release = await stack.updates.publish(signManifest(manifestFor(v2, 2), key), v2)
    const fleet = await SimulatorFleet.start({ stack, dir, transcript })
    return { stack, fleet, v1: join(dir, "v1.devs"), release }
}

/** One release through `n` real simulated devices: per stage and in all. */
export async function realRollout(n = 5) {
    const dir = mkdtempSync(join(tmpdir(), "bench-rollout-real-"))
    const transcript: string[] = []
    const { stack, fleet, v1, release } = await setUp(dir, transcript, n)
    try {
        const t0 = performance.now()
        await Promise.all(Array.from({ length: n }, () => fleet.add(v1, 600_000)))
        console.log(`rollout (real): ${n} simulators enrolled, claimed and on MQTT in ${seconds(performance.now() - t0)} s`)
        const sent = new Map<string, number>()
        const confirmed = new Map<string, number>()
        fleet.owner.on("command", row => row.command.cmd === "update" && !sent.has(row.deviceId) && sent.set(row.deviceId, Date.now()))
        fleet.owner.on("update", u => u.report.step === "confirmed" && confirmed.set(u.deviceId, Date.now()))
        const plan = (upTo: StagePlan["upTo"]): StagePlan => ({
            upTo,
            successPercent: 100,
            timeLimitMs: 1_800_000,
            maxFailures: 1,
            maxFailurePercent: 100,
        })
        const started = Date.now()
        const rollout = fleet.owner.rollouts.create({
            release: { digest: release.digest, sequence: release.sequence },
            cohort: { all: true },
            stages: [plan({ devices: 1 }), plan({ percent: 50 }), plan({ percent: 100 })],
            timeouts: { deployMs: 1_200_000, trialMs: 1_200_000, reofferMs: 60_000 },
        })
        await until(
            () => `the rollout to end (${rollout.record.status} ${JSON.stringify(rollout.summary().map(s => s.steps))})`,
            () => rollout.record.status !== RolloutStatus.Running,
            n * 300_000
        )
        const total = Date.now() - started
        console.log(
            `rollout (real): one release to ${n} simulators in 3 stages: ` +
                `${rollout.record.status} (${rollout.record.reason}), ${seconds(total)} s in all ` +
                `(${seconds(total / n)} s per device)`
        )
        let canary = 0
        for (const s of rollout.summary()) {
            const ids = [...rollout.devices.values()].filter(d => d.stage === s.stage).map(d => d.id)
            if (!ids.length) continue
            const first = Math.min(...ids.map(id => sent.get(id) ?? Infinity))
            const last = Math.max(...ids.map(id => confirmed.get(id) ?? Infinity))
            const took = last - first
            if (s.stage === 0) canary = took
            console.log(
                `rollout (real):   ${s.name}: ${ids.length} device${ids.length === 1 ? "" : "s"}, ` +
                    `first offer to last sealed confirmation ${seconds(took)} s ` +
                    `(${(took / canary).toFixed(2)}x the canary, one device alone)`
            )
        }
        printMemory(fleet.devices[0])
    } finally {
        await fleet.stop()
        await stack.stop()
        rmSync(dir, { recursive: true, force: true })
    }
}

/** The resident memory of one device's simulator and devtools server. */
function printMemory(device: SimulatedDevice) {
    const simulator = rssOfProcessesIn(device.vmFolder)
    const devtools = rssOfProcessesIn(device.folder)
    console.log(
        `rollout (real): memory of one device: simulator ${(simulator / 1024).toFixed(0)} MB RSS + its devtools server ` +
            `${(devtools / 1024).toFixed(0)} MB RSS (machine: ${(totalmem() / 2 ** 30).toFixed(1)} GB)`
    )
}

/** Per device: the longest wait for a verified reading within the last `windowMs` (ms), counted up to now. */
function worstReadingGap(device: SimulatedDevice, since: number, now: number): number {
    const times = device.verified.map((m, i) => (m.kind === "readings" ? device.arrivals[i] : -1)).filter(t => t >= since)
    let worst = 0
    let previous = since
    for (const t of [...times, now]) {
        worst = Math.max(worst, t - previous)
        previous = t
    }
    return worst
}

/** Simulators one by one until one falls behind its readings, memory runs short, or one cannot join; prints each size. */
export async function largestFleet(max = 50) {
    const dir = mkdtempSync(join(tmpdir(), "bench-largest-fleet-"))
    const transcript: string[] = []
    const { stack, fleet, v1 } = await setUp(dir, transcript, max)
    let held = 0
    let why = `reached --largest-fleet's limit of ${max}`
    try {
        for (let n = 1; n <= max; n++) {
            const t0 = Date.now()
            try {
                await fleet.add(v1, 240_000)
            } catch (e) {
                why = `simulator ${n} did not boot, enroll and get claimed in 240 s (${(e as Error).message.split("\n")[0]})`
                break
            }
            const joined = Date.now() - t0
            // watch every device's readings, and the machine
            const since = Date.now()
            const cpu0 = cpuTimes()
            await new Promise(r => setTimeout(r, WATCH_MS))
            const cpu1 = cpuTimes()
            const now = Date.now()
            const gaps = fleet.devices.map(d => worstReadingGap(d, since, now))
            const worst = Math.max(...gaps)
            const busy = ((cpu1.busy - cpu0.busy) * 100) / Math.max(1, cpu1.total - cpu0.total)
            const rss = fleet.devices.reduce((kb, d) => kb + rssOfProcessesIn(d.vmFolder) + rssOfProcessesIn(d.folder), 0)
            const free = memAvailableKb()
            console.log(
                `fleet (real): ${n} simulator${n === 1 ? "" : "s"}: joined in ${seconds(joined)} s; ` +
                    `longest wait for a reading ${seconds(worst)} s ` +
                    `(limit ${seconds(READING_DEADLINE_MS)} s); CPU ${busy.toFixed(0)} % of 2 cores; simulators and devtools ` +
                    `${(rss / 1024).toFixed(0)} MB RSS; ${(free / 1024).toFixed(0)} MB available`
            )
            if (worst > READING_DEADLINE_MS) {
                why =
                    `with ${n}, a device went ${seconds(worst)} s without a verified reading ` +
                    `(its interval allows ${seconds(READING_DEADLINE_MS)} s)`
                break
            }
            if (free * 1024 < totalmem() * MIN_FREE_SHARE) {
                why = `with ${n}, less than ${MIN_FREE_SHARE * 100} % of the memory is left`
                held = n
                break
            }
            held = n
        }
        console.log(`fleet (real): the largest fleet of real simulators this machine held: ${held} (it stopped because ${why})`)
        if (fleet.devices.length) printMemory(fleet.devices[0])
    } finally {
        await fleet.stop()
        await stack.stop()
        if (existsSync(dir)) rmSync(dir, { recursive: true, force: true })
    }
}
