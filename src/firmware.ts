/**
 * The sentinel-node firmware, wiring only; the images' entry points
 * (`main.ts` for the simulator, `boards/<board>.ts` for hardware) call
 * `runFirmware` with the sensor ports they carry, so an image holds only the
 * drivers its board has, and no board holds the simulated parts.
 *
 * Boot: count the boot, open the security event log, honour a factory reset,
 * load or make the device's credentials (the claim code is shown once).
 * Then sensors -> validated readings -> SenML-CBOR -> COSE_Encrypt0 -> the
 * outbound queue -> MQTT over TLS, on a session the registry grants. A device
 * whose identity or message counter is unusable runs its sensors to the
 * console only, until a factory reset.
 *
 * Updates (src/update): before the sensors start, the update records say
 * whether this boot is a candidate on trial, a window still open for a
 * deploy, or a normal run; what is left of an update runs before the uplink
 * takes the socket. An owner's `update` command, which names a release, lends
 * the socket to the updater between MQTT sessions; the device never looks for
 * a release by itself. The image entry point hands over the root it trusts
 * (its trust anchor), so a test image can trust a root of its own.
 */
import { CommandHandler } from "./control/commands"
import { bootIdentity } from "./identity/boot"
import { registryEndpoint } from "./identity/endpoint"
import { ConsoleSink } from "./pipeline/console-sink"
import { faultLogger } from "./pipeline/fault-log"
import { applyStoredIntervals } from "./pipeline/intervals"
import { startPipeline } from "./pipeline/pipeline"
import { boardSensorList, parseSensorList } from "./sensors/config"
import { PortOpener } from "./sensors/types"
import { runningProgramDigest } from "./update/running-image"
import { Updater } from "./update/updater"
import { SecureUplink } from "./uplink/uplink"

const FLUSH_INTERVAL_MS = 5000
const MAX_READINGS = 64
/** A sensor's faults are logged as security events at most this often. */
const FAULT_EVENT_INTERVAL_MS = 600000

/**
 * Boots and runs the firmware for good, reading sensors through `openPort`; `trustAnchor` is the payload of the
 * root it trusts from the start.
 */
export async function runFirmware(openPort: PortOpener, trustAnchor: Buffer) {
    const { boot, events, identity } = await bootIdentity(code => {
        console.log(`claim code (shown once): ${code}`)
    })
    const deviceName = identity ? identity.deviceId : "unprovisioned"
    console.log(`sentinel-node: boot ${boot}, device ${deviceName}, ${events.total()} security events (${events.dropped()} dropped)`)

    const uplink = identity ? await SecureUplink.open({ identity, registry: registryEndpoint(), events }) : undefined
    const updater = uplink
        ? new Updater({
              identity,
              events,
              registry: uplink.options.registry,
              trustAnchor,
              runningDigest: runningProgramDigest,
              // in flash at once: a report made just before a deploy must outlive the program
              report: async body => await uplink.send("update", body, true),
          })
        : undefined

    const sensors = parseSensorList(boardSensorList())
    // the owner's intervals, set by command, over the board's
    await applyStoredIntervals(sensors, events)
    console.log(`sensors: ${sensors.map(s => `${s.name}@${s.intervalMs}ms`).join(" ")}`)
    const decision = updater ? await updater.boot() : undefined
    const pipeline = await startPipeline({
        sensors,
        sink: uplink ? uplink : new ConsoleSink(),
        openPort,
        flushIntervalMs: FLUSH_INTERVAL_MS,
        maxReadings: MAX_READINGS,
        onFault: faultLogger(events, FAULT_EVENT_INTERVAL_MS),
    })
    if (uplink) {
        await updater.resumeAtBoot(decision, { sensors: pipeline, uplink })
        await uplink.run(new CommandHandler({ boot, events, pipeline, uplink, updater }))
    }
}
