/**
 * `npm start`: the firmware in the DeviceScript simulator against the local
 * stack, with the owner at the console (devs/sim/start-local.ts). Ctrl-C stops
 * everything it started.
 *
 *   npm start -- [--registry-port 8443] [--broker-port 8883] [--updates-port 9443] [--devtools-port 8081]
 */
import { runCommand } from "../cli/args.ts"
import { port } from "../cli/options.ts"
import { BROKER_PORT, DEVTOOLS_PORTS, REGISTRY_PORT, UPDATES_PORT } from "../project.ts"
import { startLocal } from "../sim/start-local.ts"

const spec = {
    name: "start",
    invocation: "npm start",
    summary: [
        "Runs src/main.ts in the simulator against the local stack in var/stack (CA, Mosquitto, registry, update service),",
        'prints what the device prints (device>), claims it as owner "local" and prints what it publishes (owner>).',
    ].join("\n"),
    options: {
        "registry-port": { type: "string", value: "port", default: String(REGISTRY_PORT), help: "the registry's HTTPS port" },
        "broker-port": { type: "string", value: "port", default: String(BROKER_PORT), help: "the broker's TLS port" },
        "updates-port": { type: "string", value: "port", default: String(UPDATES_PORT), help: "the update service's WSSK port" },
        "devtools-port": {
            type: "string",
            value: "port",
            default: String(DEVTOOLS_PORTS.web),
            help: "the DeviceScript devtools dashboard (its other two ports are free ones)",
        },
    },
    notes: [
        "rm -rf var .devicescript/flash starts over with a new device.",
        "The programs (claim, consume, command, bridge) default to the well-known ports: give them --registry or --broker if you move them.",
    ],
} as const

await runCommand(spec, ({ values }) =>
    startLocal({
        registry: port("--registry-port", values["registry-port"]),
        broker: port("--broker-port", values["broker-port"]),
        updates: port("--updates-port", values["updates-port"]),
        devtools: port("--devtools-port", values["devtools-port"]),
    })
)
