/**
 * `devs bridge`: follows the owner's devices like `devs consume` and
 * republishes their verified readings to a local broker in Home Assistant
 * MQTT discovery format.
 *
 *   npx tsx devs/bridge.ts --owner <name> --local mqtt://localhost:1883
 *       [--broker mqtts://localhost:8883] [--ca var/stack/pki/ca.crt] [--keystore FILE] [--prefix homeassistant]
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import mqtt from "mqtt"
import { HomeAssistantBridge } from "./owner/bridge.ts"
import { Keystore } from "./owner/keystore.ts"
import { subscribeAsOwner } from "./owner/subscriber.ts"

const { values } = parseArgs({
    options: {
        owner: { type: "string" },
        local: { type: "string" },
        broker: { type: "string", default: "mqtts://localhost:8883" },
        ca: { type: "string", default: "var/stack/pki/ca.crt" },
        keystore: { type: "string" },
        prefix: { type: "string", default: "homeassistant" },
    },
})
if (!values.owner || !values.local) {
    console.error("usage: devs/bridge.ts --owner <name> --local <mqtt url> [--broker URL] [--ca FILE] [--keystore FILE] [--prefix P]")
    process.exit(2)
}
const local = await mqtt.connectAsync(values.local)
const bridge = new HomeAssistantBridge(local, values.prefix)
const keystore = Keystore.open(values.keystore ?? `var/owner/${values.owner}.json`, values.owner)
const sub = await subscribeAsOwner({
    url: values.broker!,
    ca: readFileSync(values.ca!),
    keystore,
    onVerified: m => void bridge.publish(m).catch(e => console.error(`bridge: ${(e as Error).message}`)),
    onRejected: (r, topic) => console.log(`REJECTED ${topic}: ${r.reason}: ${r.message}`),
})
console.log(`bridging ${Object.keys(keystore.data.devices).length} device(s) to ${values.local}`)
process.on("SIGINT", () => void Promise.all([sub.close(), local.endAsync()]).then(() => process.exit(0)))
