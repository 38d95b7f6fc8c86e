/**
 * `npm start`: the firmware in the DeviceScript simulator against the local
 * stack, with the owner at the console (devs/sim/start-local.ts). Ctrl-C stops
 * everything it started.
 */
import { runCommand } from "../cli/args.ts"
import { startLocal } from "../sim/start-local.ts"

const spec = {
    name: "start",
    invocation: "npm start",
    summary: [
        "Runs src/main.ts in the simulator against the local stack in var/stack (CA, Mosquitto, registry, update service),",
        'prints what the device prints (device>), claims it as owner "local" and prints what it publishes (owner>).',
    ].join("\n"),
    options: {},
    notes: ["rm -rf var .devicescript/flash starts over with a new device."],
} as const

await runCommand(spec, () => startLocal())
