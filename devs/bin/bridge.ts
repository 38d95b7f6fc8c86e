/**
 * `npm run bridge`: follows the owner service's verified readings and
 * republishes them to a local broker in Home Assistant MQTT discovery
 * format. Runs until Ctrl-C.
 *
 *   npm run bridge -- --local mqtt://localhost:1883 [--prefix homeassistant] [--service URL] [--token-file FILE]
 */
import mqtt from "mqtt"
import { CommandError, runCommand } from "../cli/args.ts"
import { CA, ownerApi, SERVICE, TOKEN_FILE } from "../cli/options.ts"
import { HomeAssistantBridge, type ReadingsMessage } from "../owner/bridge.ts"

const spec = {
    name: "bridge",
    summary: "Republishes the owner's verified readings to a local broker as Home Assistant sensors (MQTT discovery). Runs until Ctrl-C.",
    options: {
        local: { type: "string", value: "mqtt url", required: true, help: "the local broker home tools read, e.g. mqtt://localhost:1883" },
        prefix: { type: "string", value: "topic", default: "homeassistant", help: "Home Assistant's discovery prefix" },
        service: SERVICE,
        "token-file": TOKEN_FILE,
        ca: CA,
    },
} as const

await runCommand(spec, async ({ values }) => {
    const api = ownerApi(values)
    const { devices } = await api.call<{ devices: unknown[] }>("GET", "/api/devices")
    const local = await mqtt.connectAsync(values.local, { reconnectPeriod: 1000 }).catch(e => {
        const refused = (e as NodeJS.ErrnoException).code === "ECONNREFUSED"
        throw refused ? new CommandError(`no broker answers at ${values.local}: start the local broker the home tools read`) : e
    })
    const bridge = new HomeAssistantBridge(local, values.prefix)
    console.log(`bridging ${devices.length} device(s) to ${values.local}`)
    const abort = new AbortController()
    process.on("SIGINT", () => abort.abort())
    const stopped = await api.stream(e => {
        if (e.event === "reading")
            void bridge.publish(e.data as ReadingsMessage).catch(err => console.error(`bridge: ${(err as Error).message}`))
    }, abort.signal)
    await local.endAsync()
    if (!stopped) throw new CommandError(`the owner service at ${values.service} ended the stream: is it still running?`)
})
