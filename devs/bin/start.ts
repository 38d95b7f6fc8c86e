/**
 * `npm start`: the firmware in the DeviceScript simulator against the local
 * stack, with the owner at the console (devs/sim/start-local.ts). Ctrl-C stops
 * everything it started.
 *
 *   npm start -- [--registry-port 8443] [--broker-port 8883] [--updates-port 9443] [--devtools-port 8081]
 *                [--broker mosquitto|rabbitmq] [--nodes 3]
 */
import { runCommand, UsageError } from "../cli/args.ts"
import { port } from "../cli/options.ts"
import { BROKER_PORT, DEVTOOLS_PORTS, REGISTRY_PORT, UPDATES_PORT } from "../project.ts"
import { startLocal, type BrokerChoice } from "../sim/start-local.ts"

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
        "rm -rf var .devicescript/flash starts over with a new device.",
        "The programs (claim, consume, command, bridge) default to the well-known ports: give them --registry or --broker if you move them.",
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
    startLocal(
        {
            registry: port("--registry-port", values["registry-port"]),
            broker: port("--broker-port", values["broker-port"]),
            updates: port("--updates-port", values["updates-port"]),
            devtools: port("--devtools-port", values["devtools-port"]),
        },
        brokerChoice(values)
    )
)
