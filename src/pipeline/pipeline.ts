/**
 * Wires sensors to a sink: one sampler per configured sensor, all feeding one batcher.
 */
import { SensorSampler } from "../sensors/sampler"
import { PortOpener, Reading, SensorConfig, SensorFault, SensorPort } from "../sensors/types"
import { ReadingBatcher } from "./batcher"
import { ReadingSink } from "./sink"

/** Options of the sensor pipeline. */
export interface PipelineOptions {
    sensors: SensorConfig[]
    sink: ReadingSink
    openPort: PortOpener
    /** Time between batches, in milliseconds. */
    flushIntervalMs: number
    /** Most readings held between two flushes. */
    maxReadings: number
    /** Called for every fault, after it is counted. */
    onFault?: (fault: SensorFault) => void
}

/** A running pipeline. */
export interface Pipeline {
    samplers: SensorSampler[]
    batcher: ReadingBatcher
    /** Valid readings taken since the pipeline started (an update's health check looks for one). */
    readingsTaken(): number
    /** Stops sampling and flushing. */
    stop(): void
}

/**
 * Opens every sensor and starts sampling. A sensor whose port cannot be opened
 * is reported as a `missing` fault and left out; the others still run.
 */
export async function startPipeline(options: PipelineOptions): Promise<Pipeline> {
    const batcher = new ReadingBatcher({
        sink: options.sink,
        flushIntervalMs: options.flushIntervalMs,
        maxReadings: options.maxReadings,
    })
    const onFault = (fault: SensorFault) => {
        batcher.countFault(fault)
        if (options.onFault) options.onFault(fault)
    }
    const samplers: SensorSampler[] = []
    let taken = 0
    for (const config of options.sensors) {
        let port: SensorPort
        try {
            port = await options.openPort(config)
        } catch (e: any) {
            onFault({ sensor: config.name, kind: "missing", detail: e && e.message ? e.message : "not found", atMs: 0 })
            continue
        }
        const onReading = (r: Reading) => {
            taken++
            batcher.add(r)
        }
        samplers.push(new SensorSampler({ config, port, onReading, onFault }))
    }
    for (const s of samplers) s.start()
    batcher.start()
    return {
        samplers,
        batcher,
        readingsTaken: () => taken,
        stop: () => {
            for (const s of samplers) s.stop()
            batcher.stop()
        },
    }
}
