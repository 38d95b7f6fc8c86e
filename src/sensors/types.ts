/**
 * What the sensor layer hands to the rest of the firmware.
 */

/** A physical quantity a sensor measures. */
export type Quantity = "temperature" | "humidity" | "pressure" | "gas"

/** The sensor parts the firmware knows (see `datasheet.ts`). */
export type SensorModel = "shtc3" | "sht30" | "aht20" | "bme680"

/** One raw read of a sensor: a value per quantity it measures; absent when the part did not give one. */
export type Sample = { [q in Quantity]?: number }

/** Anything that can be read like a sensor: an I2C driver on a board, or a simulated part. */
export interface SensorPort {
    /** Reads all quantities once. Throws on a bus or device error. */
    read(): Promise<Sample>
}

/**
 * Opens the port of one configured sensor: a driver on a board, a simulated part in the simulator. Throws when the
 * part does not answer.
 */
export type PortOpener = (config: SensorConfig) => Promise<SensorPort>

/** How one sensor is attached and sampled. */
export interface SensorConfig {
    model: SensorModel
    /** Name used in SenML record names; unique per device. */
    name: string
    /** 7-bit I2C address, when the part has more than one. */
    address?: number
    /** Time between two reads, in milliseconds. */
    intervalMs: number
}

/** A validated measurement. */
export interface Reading {
    sensor: string
    quantity: Quantity
    value: number
    /** `ds.millis()` when it was read. */
    atMs: number
}

/** Why a read produced no data. */
export type FaultKind = "bus" | "missing" | "not-a-number" | "out-of-range"

/** A read, or a part of one, that was refused. Counted and reported; never sent as data. */
export interface SensorFault {
    sensor: string
    quantity?: Quantity
    kind: FaultKind
    /** Human-readable detail; never holds anything secret. */
    detail: string
    atMs: number
}
