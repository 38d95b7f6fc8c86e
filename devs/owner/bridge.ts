/**
 * The local bridge (the seed's "cheap small computers in local
 * installations"): republishes the readings the owner service verified (its
 * `reading` events) to a local broker in Home Assistant's MQTT discovery
 * format, so existing home tools see the sensors. They get plain values on
 * local topics; the device keys stay in the owner service.
 *
 * Per quantity: a retained config on `<prefix>/sensor/<node>/<object>/config`
 * (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery) and
 * values on `sentinel/<device id>/<sensor>/<quantity>`.
 */
import type { MqttClient } from "mqtt"

/** Readings of one verified message, as the owner service reports them (names without the base name). */
export interface ReadingsMessage {
    deviceId: string
    readings: { name: string; value: number }[]
}

/** SenML units (RFC 8428 §12.1) as Home Assistant shows them, with the matching device class. */
const QUANTITIES: Record<string, { unit: string; deviceClass?: string }> = {
    temperature: { unit: "°C", deviceClass: "temperature" },
    humidity: { unit: "%", deviceClass: "humidity" },
    pressure: { unit: "Pa", deviceClass: "pressure" },
    gas: { unit: "Ω" },
}

/** Republishes to a local broker. */
export class HomeAssistantBridge {
    /** Discovery configs already sent, by object id. */
    private readonly announced = new Set<string>()

    constructor(
        private readonly local: MqttClient,
        private readonly discoveryPrefix = "homeassistant"
    ) {}

    /** Publishes the latest value of each quantity of a message (counters and other records are not sensors). */
    async publish(message: ReadingsMessage): Promise<void> {
        const id = message.deviceId
        if (!/^[0-9a-f]{32}$/.test(id)) return
        const latest = new Map<string, number>()
        for (const r of message.readings) {
            const [sensor, quantity] = r.name.split(":").pop()!.split("/")
            if (!sensor || !/^[a-z0-9_]{1,32}$/.test(sensor) || !Object.hasOwn(QUANTITIES, quantity) || typeof r.value !== "number")
                continue
            latest.set(`${sensor}/${quantity}`, r.value)
        }
        for (const [name, value] of latest) {
            const [sensor, quantity] = name.split("/")
            const object = `${sensor}_${quantity}`
            const state = `sentinel/${id}/${sensor}/${quantity}`
            if (!this.announced.has(`${id}/${object}`)) {
                const q = QUANTITIES[quantity]
                const config = {
                    name: `${sensor} ${quantity}`,
                    unique_id: `sentinel_${id}_${object}`,
                    state_topic: state,
                    unit_of_measurement: q.unit,
                    ...(q.deviceClass ? { device_class: q.deviceClass } : {}),
                    state_class: "measurement",
                    device: { identifiers: [`sentinel_${id}`], name: `sentinel ${id.slice(0, 8)}`, manufacturer: "sentinel-node" },
                }
                await this.local.publishAsync(`${this.discoveryPrefix}/sensor/sentinel_${id}/${object}/config`, JSON.stringify(config), {
                    qos: 1,
                    retain: true,
                })
                this.announced.add(`${id}/${object}`)
            }
            await this.local.publishAsync(state, String(value), { qos: 1 })
        }
    }
}
