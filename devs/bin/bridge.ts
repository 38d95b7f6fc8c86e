/**
 * `npm run bridge`: follows the owner's devices like `npm run consume` and
 * republishes their verified readings to a local broker in Home Assistant
 * MQTT discovery format. Runs until Ctrl-C.
 *
 *   npm run bridge -- --owner <name> --local mqtt://localhost:1883
 *       [--broker mqtts://localhost:8883] [--ca var/stack/pki/ca.crt] [--keystore FILE] [--prefix homeassistant]
 */
import mqtt from "mqtt"
import { CommandError, runCommand } from "../cli/args.ts"
import { BROKER, brokerLogin, CA, KEYSTORE, openKeystore, OWNER, readCa } from "../cli/options.ts"
import { HomeAssistantBridge } from "../owner/bridge.ts"
import { subscribeAsOwner } from "../owner/subscriber.ts"

const spec = {
    name: "bridge",
    summary: "Republishes the owner's verified readings to a local broker as Home Assistant sensors (MQTT discovery). Runs until Ctrl-C.",
    options: {
        owner: OWNER,
        local: { type: "string", value: "mqtt url", required: true, help: "the local broker home tools read, e.g. mqtt://localhost:1883" },
        broker: BROKER,
        ca: CA,
        keystore: KEYSTORE,
        prefix: { type: "string", value: "topic", default: "homeassistant", help: "Home Assistant's discovery prefix" },
    },
} as const

await runCommand(spec, async ({ values }) => {
    const keystore = openKeystore(values)
    brokerLogin(keystore)
    const ca = readCa(values.ca)
    const local = await mqtt.connectAsync(values.local).catch(e => {
        const refused = (e as NodeJS.ErrnoException).code === "ECONNREFUSED"
        throw refused ? new CommandError(`no broker answers at ${values.local}: start the local broker the home tools read`) : e
    })
    const bridge = new HomeAssistantBridge(local, values.prefix)
    const sub = await subscribeAsOwner({
        url: values.broker,
        ca,
        keystore,
        onVerified: m => void bridge.publish(m).catch(e => console.error(`bridge: ${(e as Error).message}`)),
        onRejected: (r, topic) => console.log(`REJECTED ${topic}: ${r.reason}: ${r.message}`),
    })
    console.log(`bridging ${Object.keys(keystore.data.devices).length} device(s) to ${values.local}`)
    process.on("SIGINT", () => void Promise.all([sub.close(), local.endAsync()]).then(() => process.exit(0)))
})
