/**
 * Real parts on a board's I2C bus, through the drivers of `@devicescript/drivers`.
 * Each driver starts Jacdac sensor servers; the port reads their roles once per sample.
 *
 * Known limit of the stock BME680 driver: it publishes gas resistance through the
 * air quality index service, whose register tops out at 65535, so resistances above
 * that saturate.
 */
import * as ds from "@devicescript/core"
import { startAHT20, startBME680, startSHT30, startSHTC3 } from "@devicescript/drivers"
import { Quantity, Sample, SensorConfig, SensorPort } from "./types"

type ReadableRole = ds.Role & { reading: ds.Register<number> }

class DriverPort implements SensorPort {
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

/** Starts the driver for one configured part. Throws `DriverError` when the part does not answer. */
export async function startDriverPort(config: SensorConfig): Promise<SensorPort> {
    const baseName = config.name
    switch (config.model) {
        case "shtc3": {
            const r = await startSHTC3({ baseName })
            return new DriverPort({ temperature: r.temperature, humidity: r.humidity })
        }
        case "sht30": {
            const r = await startSHT30({ baseName, address: config.address as 0x44 | 0x45 })
            return new DriverPort({ temperature: r.temperature, humidity: r.humidity })
        }
        case "aht20": {
            const r = await startAHT20({ baseName })
            return new DriverPort({ temperature: r.temperature, humidity: r.humidity })
        }
        case "bme680": {
            const r = await startBME680({ baseName, address: config.address as 0x76 | 0x77 })
            return new DriverPort({
                temperature: r.temperature,
                humidity: r.humidity,
                pressure: r.pressure,
                gas: r.airQualityIndex,
            })
        }
    }
    throw new Error(`no driver for ${config.model}`)
}
