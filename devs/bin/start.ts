/**
 * `npm start`: the firmware in the DeviceScript simulator against the local
 * stack, with the owner service and its console (devs/sim/start-local.ts).
 * Ctrl-C or SIGTERM stops everything it started.
 */
import { runCommand } from "../cli/args.ts"
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
    },
    notes: [
        "npm run reset-device factory-resets the simulated device (the console's device page can too).",
        "rm -rf var starts over: a new device, a new owner store (the signing key in var/keys goes too: back it up first).",
    ],
} as const

await runCommand(spec, ({ values }) => startLocal({ passwordFile: values["password-file"] }))
