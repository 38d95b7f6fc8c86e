/**
 * `npm start`: the firmware in the DeviceScript simulator against the local
 * stack, with the owner service and its console (devs/sim/start-local.ts).
 * Ctrl-C or SIGTERM stops everything it started.
 *
 *   npm start -- [--owner-port 8080] [--registry-port 8443] [--broker-port 8883] [--updates-port 9443] [--devtools-port 8081] [--password-file FILE]
 */
import { runCommand } from "../cli/args.ts"
import { port } from "../cli/options.ts"
import { BROKER_PORT, DEVTOOLS_PORTS, OWNER_PORT, REGISTRY_PORT, UPDATES_PORT } from "../project.ts"
import { startLocal } from "../sim/start-local.ts"

const spec = {
    name: "start",
    invocation: "npm start",
    summary: [
        "Runs src/main.ts in the simulator against the local stack in var/stack (CA, Mosquitto, registry, update service),",
        'with the owner service and its console on http://127.0.0.1:8080: claims the device as owner "local" and shows',
        "what it publishes. Prints what the device prints (device>) and what the owner service stores (owner>).",
    ].join("\n"),
    options: {
        "password-file": { type: "string", value: "file", help: "sets the console password from this file (one who lost it)" },
        "owner-port": { type: "string", value: "port", default: String(OWNER_PORT), help: "the owner service's API and console" },
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
        "npm run reset-device factory-resets the simulated device (the console's device page can too).",
        "rm -rf var starts over: a new device, a new owner store (the signing key in var/keys goes too: back it up first).",
        "The programs (claim, consume, command, bridge) default to the well-known ports: give them --registry or --broker if you move them.",
    ],
} as const

await runCommand(spec, ({ values }) =>
    startLocal({
        passwordFile: values["password-file"],
        ports: {
            registry: port("--registry-port", values["registry-port"]),
            broker: port("--broker-port", values["broker-port"]),
            updates: port("--updates-port", values["updates-port"]),
            devtools: port("--devtools-port", values["devtools-port"]),
            owner: port("--owner-port", values["owner-port"]),
        },
    })
)
