/**
 * sentinel-node firmware entry point.
 *
 * Boot: count the boot, open the security event log, honour a factory reset,
 * load or make the device's credentials (the claim code is shown once).
 * Then sensors -> validated readings -> SenML-CBOR batches -> sink (the
 * console for now; the secure uplink later), while the device keeps itself
 * enrolled and authenticated with the registry.
 */
import * as ds from "@devicescript/core"
import { bootIdentity } from "./identity/boot"
import { registryEndpoint } from "./identity/endpoint"
import { runRegistrySession } from "./identity/session"
import { startPipeline } from "./pipeline"
import { boardSensorList, parseSensorList } from "./sensors/config"
import { startDriverPort } from "./sensors/drivers"
import { SimulatedSensor } from "./sensors/simulated"
import { SensorConfig, SensorFault } from "./sensors/types"
import { ConsoleSink } from "./uplink/console-sink"

const FLUSH_INTERVAL_MS = 5000
const MAX_READINGS = 64
/** A sensor's faults are logged as security events at most this often (flash wear, log flooding). */
const FAULT_EVENT_INTERVAL_MS = 600000

async function openPort(config: SensorConfig) {
    if (ds.isSimulator()) return new SimulatedSensor(config.model)
    return await startDriverPort(config)
}

const { boot, events, identity } = await bootIdentity(code => {
    console.log(`claim code (shown once; the owner claims the device with it): ${code}`)
})
const deviceName = identity ? identity.deviceId : "unprovisioned"
console.log(`sentinel-node: boot ${boot}, device ${deviceName}, ${events.total()} security events (${events.dropped()} dropped)`)

const lastFaultEvent: { [sensor: string]: number } = {}
async function onFault(f: SensorFault) {
    console.log(`sensor fault: ${f.sensor} ${f.kind}: ${f.detail}`)
    const last = lastFaultEvent[f.sensor]
    if (last !== undefined && ds.millis() - last < FAULT_EVENT_INTERVAL_MS) return
    lastFaultEvent[f.sensor] = ds.millis()
    await events.record("sensor-fault", `${f.sensor} ${f.kind}: ${f.detail}`)
}

const sensors = parseSensorList(boardSensorList())
console.log(`sensors: ${sensors.map(s => `${s.name}@${s.intervalMs}ms`).join(" ")}`)
await startPipeline({
    sensors,
    sink: new ConsoleSink({ baseName: `urn:dev:sentinel:${deviceName}:` }),
    openPort,
    flushIntervalMs: FLUSH_INTERVAL_MS,
    maxReadings: MAX_READINGS,
    onFault,
})

if (identity)
    await runRegistrySession({
        identity,
        endpoint: registryEndpoint(),
        events,
        onSession: session => {
            if (!session.claimed) console.log("registry: authenticated; waiting for the owner's claim")
            else if (session.broker) console.log(`registry: claimed; broker ${session.broker.host}:${session.broker.port} granted`)
            else console.log("registry: claimed; no broker configured")
        },
    })
