/**
 * Simulated sensor parts for the DeviceScript simulator.
 *
 * Values follow a deterministic curve of the read count, so tests on the device
 * and on the host can compute exactly what a read must return. The simulator
 * has no `Math.sin`; triangle waves with power-of-two steps keep every value
 * exact in binary floating point on both sides.
 */
import { quantitiesOf } from "./datasheet"
import { Quantity, Sample, SensorConfig, SensorModel, SensorPort } from "./types"

/** Triangle wave: 0, 1, …, period/2, …, 1, 0, 1, … */
function triangle(n: number, period: number): number {
    const k = n % period
    return k <= period / 2 ? k : period - k
}

/**
 * The curve every simulated part follows: value of `quantity` at read number `n` (from 0).
 * temperature 20..23 °C in 0.25 steps; humidity 40..50 %RH in 0.5 steps;
 * pressure 101300..101450 Pa in 10 Pa steps; gas 50..58 kΩ in 1 kΩ steps.
 */
export function simulatedValue(quantity: Quantity, n: number): number {
    switch (quantity) {
        case "temperature":
            return 20 + triangle(n, 24) * 0.25
        case "humidity":
            return 40 + triangle(n + 6, 40) * 0.5
        case "pressure":
            return 101300 + triangle(n, 30) * 10
        case "gas":
            return 50000 + triangle(n, 16) * 1000
    }
    return NaN
}

/** A fault to inject on a given read, for tests. */
export type InjectedFault = "bus" | "nan" | "out-of-range"

/** Options of a simulated part. */
export interface SimulatedSensorOptions {
    /** Returns the fault to inject on read `n`, or undefined for a good read. */
    faultAt?: (n: number) => InjectedFault | undefined
}

/** A simulated part of a given model that follows `simulatedValue`. */
export class SimulatedSensor implements SensorPort {
    /** Number of reads so far; read `n` returns the curve at `n`. */
    reads = 0
    private readonly quantities: Quantity[]

    constructor(
        readonly model: SensorModel,
        private readonly options: SimulatedSensorOptions = {}
    ) {
        this.quantities = quantitiesOf(model)
    }

    async read(): Promise<Sample> {
        const n = this.reads++
        const fault = this.options.faultAt ? this.options.faultAt(n) : undefined
        if (fault === "bus") throw new Error(`simulated I2C error on read ${n}`)
        const sample: Sample = {}
        for (const q of this.quantities) sample[q] = simulatedValue(q, n)
        // the first quantity carries the injected bad value; the others stay good
        if (fault === "nan") sample[this.quantities[0]] = NaN
        if (fault === "out-of-range") sample[this.quantities[0]] = 1e6
        return sample
    }
}

/** The port of a configured sensor in the simulator: a simulated part of its model (as a driver is on a board). */
export async function openSimulatedPort(config: SensorConfig): Promise<SensorPort> {
    return new SimulatedSensor(config.model)
}
