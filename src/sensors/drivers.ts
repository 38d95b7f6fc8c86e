/**
 * Real parts on a board's I2C bus, through the drivers of `@devicescript/drivers`.
 * Each driver starts Jacdac sensor servers; the port reads their roles once per sample.
 * A board's image imports only the openers of the parts it has (`src/boards/`),
 * so no image carries a driver its board does not need.
 *
 * Known limit of the stock BME680 driver: it publishes gas resistance through the
 * air quality index service, whose register tops out at 65535, so resistances above
 * that saturate.
 */
import * as ds from "@devicescript/core"
// each driver from its own module: the package's index would run the top-level code of every driver it has
import { startAHT20 } from "@devicescript/drivers/src/aht20"
import { startBME680 } from "@devicescript/drivers/src/bme680"
import { startSHT30 } from "@devicescript/drivers/src/sht30"
import { startSHTC3 } from "@devicescript/drivers/src/shtc3"
import { configureHardware } from "@devicescript/servers"
import { PortOpener, Quantity, Sample, SensorConfig, SensorModel, SensorPort } from "./types"

// what the package's index does: no I2C scan at start
configureHardware({ scanI2C: false })

type ReadableRole = ds.Role & { reading: ds.Register<number> }

class DriverPort {
    constructor(private readonly roles: { [q in Quantity]?: ReadableRole }) {}

    async read(): Promise<Sample> {
        const sample: Sample = {}
        const quantities = Object.keys(this.roles) as Quantity[]
        for (const q of quantities) {
            const role = this.roles[q]
            // an unbound role would wait forever for its server: report a missing value instead
            if (!role.isBound) continue
            const v = await role.reading.read()
            // the Jacdac air pressure service reports hPa; SenML wants Pa
            sample[q] = q === "pressure" ? v * 100 : v
        }
        return sample
    }
}

/** SHTC3: temperature and humidity. */
export async function shtc3(config: SensorConfig): Promise<SensorPort> {
    const r = await startSHTC3({ baseName: config.name })
    return new DriverPort({ temperature: r.temperature, humidity: r.humidity })
}

/** SHT30 at 0x44 or 0x45. */
export async function sht30(config: SensorConfig): Promise<SensorPort> {
    const r = await startSHT30({ baseName: config.name, address: config.address as 0x44 | 0x45 })
    return new DriverPort({ temperature: r.temperature, humidity: r.humidity })
}

/** AHT20. */
export async function aht20(config: SensorConfig): Promise<SensorPort> {
    const r = await startAHT20({ baseName: config.name })
    return new DriverPort({ temperature: r.temperature, humidity: r.humidity })
}

/** BME680 at 0x76 or 0x77: temperature, humidity, pressure and gas resistance. */
export async function bme680(config: SensorConfig): Promise<SensorPort> {
    const r = await startBME680({ baseName: config.name, address: config.address as 0x76 | 0x77 })
    return new DriverPort({ temperature: r.temperature, humidity: r.humidity, pressure: r.pressure, gas: r.airQualityIndex })
}

/** The opener of a board's parts: the driver of each model it names; a model without one is a fault, not a crash. */
export function driverPorts(drivers: { [m in SensorModel]?: PortOpener }): PortOpener {
    return async config => {
        const open = drivers[config.model]
        if (!open) throw new Error(`no ${config.model} driver in this image`)
        return await open(config)
    }
}
