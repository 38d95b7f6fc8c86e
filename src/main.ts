/**
 * sentinel-node firmware entry point.
 *
 * Boot: count the boot, open the security event log, honour a factory reset,
 * load or make the device's credentials (the claim code is shown once).
 * Then sensors -> validated readings -> SenML-CBOR -> COSE_Encrypt0 -> the
 * outbound queue -> MQTT over TLS, on a session the registry grants. A device
 * whose identity is unusable runs its sensors to the console only.
 *
 * Updates (src/update): before the uplink starts, the update records say
 * whether this boot is a candidate on trial, a window still open for a
 * deploy, or a normal run; an owner's `update-check` command, or the periodic
 * check, lends the socket to the updater between MQTT sessions.
 */
import * as ds from "@devicescript/core"
import { CborMap, encodeCbor } from "./codec/cbor"
import { bootIdentity } from "./identity/boot"
import { registryEndpoint } from "./identity/endpoint"
import { Pipeline, startPipeline } from "./pipeline/pipeline"
import { ConsoleSink } from "./pipeline/console-sink"
import { ReadingSink } from "./pipeline/sink"
import { CounterError, MessageCounter } from "./secure/counter"
import { channelKeys, ownerRoot } from "./secure/keys"
import { boardSensorList, parseSensorList } from "./sensors/config"
import { startDriverPort } from "./sensors/drivers"
import { SimulatedSensor } from "./sensors/simulated"
import { SensorConfig, SensorFault } from "./sensors/types"
import { Command, DownlinkVerifier } from "./uplink/downlink"
import { OutboundQueue } from "./uplink/queue"
import { SecureUplink } from "./uplink/uplink"
import { runningProgramDigest } from "./update/running-image"
import { BootDecision } from "./update/slots"
import { FIRMWARE_SIGNING_KEY } from "./update/trust-anchor"
import { Updater } from "./update/updater"

const FLUSH_INTERVAL_MS = 5000
const MAX_READINGS = 64
/** A sensor's faults are logged as security events at most this often (flash wear, log flooding). */
const FAULT_EVENT_INTERVAL_MS = 600000
/** Events per uplink message, so each fits a queue slot. */
const EVENTS_PER_MESSAGE = 5
/** How often the device looks for an update by itself. */
const UPDATE_CHECK_INTERVAL_MS = 6 * 3600 * 1000
/** How long a candidate on trial waits for its first valid reading. */
const TRIAL_SENSOR_WAIT_MS = 20000

async function openPort(config: SensorConfig) {
    if (ds.isSimulator()) return new SimulatedSensor(config.model)
    return await startDriverPort(config)
}

const { boot, events, identity } = await bootIdentity(code => {
    console.log(`claim code (shown once; the owner claims the device with it): ${code}`)
})
const deviceName = identity ? identity.deviceId : "unprovisioned"
const baseName = `urn:dev:sentinel:${deviceName}:`
console.log(`sentinel-node: boot ${boot}, device ${deviceName}, ${events.total()} security events (${events.dropped()} dropped)`)

const lastFaultEvent: { [sensor: string]: number } = {}
async function onFault(f: SensorFault) {
    console.log(`sensor fault: ${f.sensor} ${f.kind}: ${f.detail}`)
    const last = lastFaultEvent[f.sensor]
    if (last !== undefined && ds.millis() - last < FAULT_EVENT_INTERVAL_MS) return
    lastFaultEvent[f.sensor] = ds.millis()
    await events.record("sensor-fault", `${f.sensor} ${f.kind}: ${f.detail}`)
}

let uplink: SecureUplink = undefined
let pipeline: Pipeline = undefined
let updater: Updater = undefined

/** The device's state report: what an owner needs to see that it is healthy. */
function stateReport(): Buffer {
    const intervals = new CborMap()
    for (const s of pipeline.samplers) intervals.set(s.options.config.name, s.options.config.intervalMs)
    return encodeCbor(
        new CborMap()
            .set("boot", boot)
            .set("uptime", Math.round(ds.millis()))
            .set("events", events.total())
            .set("queued", uplink.options.queue.size())
            .set("dropped", uplink.options.queue.dropped)
            .set("intervals", intervals)
    )
}

async function onCommand(c: Command): Promise<{ topic: string; body: Buffer }> {
    if (c.cmd === "interval") {
        for (const s of pipeline.samplers)
            if (s.options.config.name === c.sensor) {
                try {
                    s.setIntervalMs(c.ms)
                } catch (e: any) {
                    await events.record("command", `interval ${c.sensor} refused: ${e.message}`)
                    return undefined
                }
                await events.record("command", `interval ${c.sensor} set to ${c.ms} ms`)
                return { topic: "state", body: stateReport() }
            }
        await events.record("command", `interval: no sensor ${c.sensor}`)
        return undefined
    }
    if (c.cmd === "events") {
        const list = await events.list()
        for (let i = 0; i < list.length; i += EVENTS_PER_MESSAGE) {
            const part = list.slice(i, Math.min(list.length, i + EVENTS_PER_MESSAGE))
            await uplink.send("events", encodeCbor(part.map(e => [e.seq, e.boot, e.uptimeMs, e.kind, e.detail])))
        }
        return undefined
    }
    if (c.cmd === "update-check") {
        await events.record("command", "update check requested")
        uplink.lendSocket(checkForUpdate)
    }
    return { topic: "state", body: stateReport() }
}

/** With the socket lent by the uplink: look for an update; if a window opens, wait in it. */
async function checkForUpdate() {
    const outcome = await updater.check()
    console.log(`update: check: ${outcome}`)
    if (outcome === "window-open") await updater.awaitDeploy()
}

/** A candidate's health: sensors give a valid reading, registry and broker take our credentials. */
async function trialHealth(): Promise<string> {
    const until = ds.millis() + TRIAL_SENSOR_WAIT_MS
    while (pipeline.readingsTaken() === 0 && ds.millis() < until) await ds.sleep(250)
    if (pipeline.readingsTaken() === 0) return "no valid sensor reading"
    return await uplink.probe()
}

/** Runs what the update records ask of this boot. Resolves when the uplink may start. */
async function continueUpdate(decision: BootDecision) {
    if (decision.action === "trial") {
        if (await updater.trial(trialHealth)) return
    } else if (decision.action === "announce") {
        if ((await updater.announce()) !== "window-open") return
        await updater.awaitDeploy()
        return
    } else if (decision.action === "await-deploy") {
        await updater.reopenWindow()
        await updater.awaitDeploy()
        return
    } else if (decision.action === "request-rollback") {
        if (await updater.requestRollback("candidate did not confirm within its trial boots")) return
    } else return
    // rollback asked for: the window stays open and the service replaces this program
    await updater.awaitRollback()
}

let sink: ReadingSink = new ConsoleSink({ baseName })
if (identity) {
    try {
        const root = ownerRoot(identity.secret, identity.deviceId)
        uplink = new SecureUplink({
            identity,
            registry: registryEndpoint(),
            events,
            up: channelKeys(root, identity.deviceId, "up"),
            down: await DownlinkVerifier.open(channelKeys(root, identity.deviceId, "down"), identity.deviceId),
            counter: await MessageCounter.open({ key: "sn_piv" }),
            queue: await OutboundQueue.open({}),
            baseName,
            onCommand,
        })
        sink = uplink
        updater = new Updater({ identity, events, registry: registryEndpoint(), publicKey: FIRMWARE_SIGNING_KEY, runningDigest: runningProgramDigest })
    } catch (e: any) {
        if (!(e instanceof CounterError)) throw e
        // resuming without the counter could reuse a nonce: stay offline until a factory reset
        await events.record("storage-corrupt", e.message)
    }
}

const sensors = parseSensorList(boardSensorList())
console.log(`sensors: ${sensors.map(s => `${s.name}@${s.intervalMs}ms`).join(" ")}`)
const decision = updater ? await updater.boot() : undefined
pipeline = await startPipeline({ sensors, sink, openPort, flushIntervalMs: FLUSH_INTERVAL_MS, maxReadings: MAX_READINGS, onFault })
if (uplink) {
    if (decision) await continueUpdate(decision)
    setInterval(() => uplink.lendSocket(checkForUpdate), UPDATE_CHECK_INTERVAL_MS)
    await uplink.run()
}
