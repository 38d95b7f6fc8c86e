/**
 * sentinel-node firmware entry point: sensors -> validated readings ->
 * SenML-CBOR batches -> sink (the console for now; the secure uplink later).
 */
import * as ds from "@devicescript/core"
import { boardSensorList, parseSensorList } from "./sensors/config"
import { startDriverPort } from "./sensors/drivers"
import { SimulatedSensor } from "./sensors/simulated"
import { SensorConfig } from "./sensors/types"
import { startPipeline } from "./pipeline"
import { ConsoleSink } from "./uplink/console-sink"

const FLUSH_INTERVAL_MS = 5000
const MAX_READINGS = 64

async function openPort(config: SensorConfig) {
    if (ds.isSimulator()) return new SimulatedSensor(config.model)
    return await startDriverPort(config)
}

async function main() {
    const sensors = parseSensorList(boardSensorList())
    const baseName = `urn:dev:sentinel:${ds.deviceIdentifier("self")}:`
    console.log(`sentinel-node: ${sensors.length} sensors: ${sensors.map(s => `${s.name}@${s.intervalMs}ms`).join(" ")}`)
    await startPipeline({
        sensors,
        sink: new ConsoleSink({ baseName }),
        openPort,
        flushIntervalMs: FLUSH_INTERVAL_MS,
        maxReadings: MAX_READINGS,
        onFault: f => console.log(`sensor fault: ${f.sensor} ${f.kind}: ${f.detail}`),
    })
}

await main()
