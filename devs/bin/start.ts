/**
 * `npm start`: the firmware in the DeviceScript simulator against the local
 * stack, with the owner service and its console (devs/sim/start-local.ts).
 * Ctrl-C or SIGTERM stops everything it started.
 *
 *   npm start -- [--owner-port 8080] [--registry-port 8443] [--broker-port 8883] [--updates-port 9443] [--devtools-port 8081]
 *                [--password-file FILE] [--broker mosquitto|rabbitmq] [--nodes 3]
 */
import { runCommand, UsageError } from "../cli/args.ts"
import { port } from "../cli/options.ts"
import { BROKER_PORT, DEVTOOLS_PORTS, OWNER_PORT, REGISTRY_PORT, UPDATES_PORT } from "../project.ts"
import { startLocal, type BrokerChoice } from "../sim/start-local.ts"

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
        broker: {
            type: "string",
            value: "mosquitto|rabbitmq",
            default: "mosquitto",
            help: "the broker: Mosquitto on one port, or a RabbitMQ cluster on free ports (its nodes are printed)",
        },
        nodes: { type: "string", value: "n", default: "3", help: "with --broker rabbitmq: the cluster's nodes, 1..9" },
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
        "The programs (claim, consume, command, bridge) default to the well-known ports:",
        "give them --registry or --broker if you move them.",
        "--broker rabbitmq needs the Debian package rabbitmq-server; the cluster's state is temporary, the registry's stays in var/stack.",
        "Switching an existing device and owner between brokers needs a fresh start: the owner's broker login is made once, by its broker.",
    ],
} as const

/** The broker asked for; --broker-port is Mosquitto's, --nodes the cluster's. */
function brokerChoice(values: { broker: string; nodes: string; "broker-port": string }): BrokerChoice {
    if (values.broker === "mosquitto") return { kind: "mosquitto" }
    if (values.broker !== "rabbitmq") throw new UsageError(`--broker must be mosquitto or rabbitmq, not ${JSON.stringify(values.broker)}`)
    if (values["broker-port"] !== String(BROKER_PORT))
        throw new UsageError("--broker-port is Mosquitto's: a RabbitMQ cluster's nodes take free ports")
    const nodes = /^[1-9]$/.test(values.nodes) ? Number(values.nodes) : 0
    if (nodes === 0) throw new UsageError(`--nodes must be a number 1..9, not ${JSON.stringify(values.nodes)}`)
    return { kind: "rabbitmq", nodes }
}

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
        broker: brokerChoice(values),
    })
)
