/**
 * Measurement ranges and units per sensor part, from the manufacturers' datasheets.
 * A reading outside its part's range is physically impossible for that part,
 * so it is a fault, not data.
 */
import { Quantity, SensorModel } from "./types"

/** Inclusive range of a quantity a part can report. */
export interface QuantityRange {
    min: number
    max: number
}

/** SenML unit of each quantity (RFC 8428 §12.1 registry). */
export const QUANTITY_UNIT: { [q in Quantity]: string } = {
    temperature: "Cel",
    humidity: "%RH",
    pressure: "Pa",
    gas: "Ohm",
}

const RH: QuantityRange = { min: 0, max: 100 }

/**
 * Per part: the quantities it measures and their ranges.
 * - SHTC3: -40..125 °C, 0..100 %RH (Sensirion SHTC3 datasheet, table 1-2).
 * - SHT30: -40..125 °C, 0..100 %RH (Sensirion SHT3x-DIS datasheet, table 1-2).
 * - AHT20: -40..85 °C, 0..100 %RH (Aosong AHT20 datasheet, section 1).
 * - BME680: -40..85 °C, 0..100 %RH, 300..1100 hPa (Bosch BST-BME680-DS001, table 1-3).
 *   Gas resistance has no datasheet range; 1 Ω..10 MΩ bounds what the heater
 *   and ADC can physically produce and rejects garbage.
 */
export const DATASHEET: { [m in SensorModel]: { [q in Quantity]?: QuantityRange } } = {
    shtc3: { temperature: { min: -40, max: 125 }, humidity: RH },
    sht30: { temperature: { min: -40, max: 125 }, humidity: RH },
    aht20: { temperature: { min: -40, max: 85 }, humidity: RH },
    bme680: {
        temperature: { min: -40, max: 85 },
        humidity: RH,
        pressure: { min: 30000, max: 110000 },
        gas: { min: 1, max: 10000000 },
    },
}

/** The quantities a part measures, in a fixed order. */
export function quantitiesOf(model: SensorModel): Quantity[] {
    const all: Quantity[] = ["temperature", "humidity", "pressure", "gas"]
    return all.filter(q => DATASHEET[model][q] !== undefined)
}

/** Whether `name` is a part this firmware has a driver for. */
export function isSensorModel(name: string): name is SensorModel {
    return DATASHEET[name as SensorModel] !== undefined
}
