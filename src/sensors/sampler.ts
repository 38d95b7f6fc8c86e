/**
 * Reads one sensor on its own schedule and turns each raw sample into
 * validated readings and counted faults.
 */
import * as ds from "@devicescript/core"
import { MAX_INTERVAL_MS, MIN_INTERVAL_MS } from "./config"
import { DATASHEET, quantitiesOf } from "./datasheet"
import { Reading, Sample, SensorConfig, SensorFault, SensorPort } from "./types"

/** Readings and faults found in one sample. */
export interface ValidatedSample {
    readings: Reading[]
    faults: SensorFault[]
}

/**
 * Checks every quantity the part should have measured: present, a finite number,
 * and inside the part's datasheet range. Only those become readings.
 */
export function validateSample(config: SensorConfig, sample: Sample, atMs: number): ValidatedSample {
    const out: ValidatedSample = { readings: [], faults: [] }
    const limits = DATASHEET[config.model]
    for (const q of quantitiesOf(config.model)) {
        const v = sample[q]
        let kind: SensorFault["kind"] = undefined
        let detail: string
        if (v === undefined || v === null) {
            kind = "missing"
            detail = `${q}: no value`
        } else if (typeof v !== "number" || v !== v || v === Infinity || v === -Infinity) {
            kind = "not-a-number"
            detail = `${q}: not a finite number`
        } else if (v < limits[q].min || v > limits[q].max) {
            kind = "out-of-range"
            detail = `${q}: ${v} outside ${limits[q].min}..${limits[q].max}`
        }
        if (kind) out.faults.push({ sensor: config.name, quantity: q, kind, detail, atMs })
        else out.readings.push({ sensor: config.name, quantity: q, value: v, atMs })
    }
    return out
}

/** Where a sampler sends what it finds. */
export interface SamplerOptions {
    config: SensorConfig
    port: SensorPort
    onReading: (reading: Reading) => void
    onFault: (fault: SensorFault) => void
}

/** Samples one sensor every `config.intervalMs`. */
export class SensorSampler {
    /** Samples taken, good or bad. */
    samples = 0
    /** Faults found so far (a sample can hold several). */
    faults = 0
    private timer: number = undefined
    private busy = false

    constructor(readonly options: SamplerOptions) {}

    /** Reads the sensor once and reports readings and faults. Never throws. */
    async sampleOnce(): Promise<ValidatedSample> {
        const { config, port, onReading, onFault } = this.options
        this.samples++
        const atMs = ds.millis()
        let result: ValidatedSample
        try {
            const sample = await port.read()
            result = validateSample(config, sample, atMs)
        } catch (e: any) {
            const detail = e && e.message ? e.message : "read failed"
            result = { readings: [], faults: [{ sensor: config.name, kind: "bus", detail, atMs }] }
        }
        for (const r of result.readings) onReading(r)
        for (const f of result.faults) {
            this.faults++
            onFault(f)
        }
        return result
    }

    /** Starts periodic sampling; the first sample is taken at once. */
    start() {
        this.stop()
        const self = this
        const tick = async () => {
            await self.tick()
        }
        this.timer = setInterval(tick, this.options.config.intervalMs)
        setTimeout(tick, 0)
    }

    /** Stops periodic sampling. */
    stop() {
        if (this.timer !== undefined) clearInterval(this.timer)
        this.timer = undefined
    }

    /** Changes the sampling interval, restarting the schedule if running. */
    setIntervalMs(ms: number) {
        if (!(ms >= MIN_INTERVAL_MS && ms <= MAX_INTERVAL_MS))
            throw new RangeError(`interval must be ${MIN_INTERVAL_MS}..${MAX_INTERVAL_MS} ms`)
        this.options.config.intervalMs = ms
        if (this.timer !== undefined) this.start()
    }

    private async tick() {
        // a slow bus must not stack reads on top of each other
        if (this.busy) return
        this.busy = true
        try {
            await this.sampleOnce()
        } finally {
            this.busy = false
        }
    }
}
