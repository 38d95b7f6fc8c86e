/**
 * The local bridge (the seed's "cheap small computers in local
 * installations"): republishes verified readings to a local broker in Home
 * Assistant's MQTT discovery format, so existing home tools see the sensors.
 * They get plain values on local topics; the device key stays in the bridge.
 *
 * Per quantity: a retained config on `<prefix>/sensor/<node>/<object>/config`
 * (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery) and
 * values on `sentinel/<device id>/<sensor>/<quantity>`.
 */
import type { MqttClient } from "mqtt"
import type { Verified } from "./consumer.ts"

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

    /** Publishes the readings of a verified message (other kinds are not for home tools). */
    async publish(message: Verified): Promise<void> {
        if (message.kind !== "readings") return
        const id = message.deviceId
        const latest = new Map<string, number>()
        for (const r of message.readings) {
            const name = r.name.split(":").pop()!
            const [sensor, quantity] = name.split("/")
            if (!sensor || !(quantity in QUANTITIES) || r.value === undefined) continue
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
