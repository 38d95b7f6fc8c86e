/**
 * Real parts on a board's I2C bus, through drivers of our own (`sht.ts`,
 * `aht20.ts`, `bme680.ts`) that read each part's registers directly: the
 * stock `@devicescript/drivers` start Jacdac sensor servers for every part and
 * cost the image about 10 KB of function code, more than the runtime leaves
 * room for (see devs/bench/budget.ts). A board's image imports only the
 * drivers of the parts it has (`src/boards/`).
 */
import { I2CTransfer, i2cTransfer } from "./i2c"
import { PortOpener, SensorModel, SensorPort } from "./types"

/** A driver: the port of a part on `bus`, at `address` when the board names one (else the part's default). */
export type PartDriver = (bus: I2CTransfer, address?: number) => SensorPort

/** The opener of a board's parts on the board's bus; a model without a driver in the image is a fault, not a crash. */
export function driverPorts(drivers: { [m in SensorModel]?: PartDriver }, bus: I2CTransfer = i2cTransfer): PortOpener {
    return async config => {
        const driver = drivers[config.model]
        if (driver === undefined) throw new Error(`no ${config.model} driver in this image`)
        return config.address === undefined ? driver(bus) : driver(bus, config.address)
    }
}
