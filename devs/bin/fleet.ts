/**
 * `npm run fleet`: N real simulated devices beside a running `npm start`,
 * each with its own flash in var/fleet/<n>, all claimed by the local owner
 * and shown in its console (devs/sim/fleet.ts).
 *
 *   npm run fleet -- --devices <n> [--registry-port 8443] [--service URL] [--token-file FILE] [--ca FILE]
 */
import { existsSync } from "node:fs"
import { CommandError, runCommand, UsageError } from "../cli/args.ts"
import { CA, ownerApi, port, SERVICE, TOKEN_FILE } from "../cli/options.ts"
import { REGISTRY_PORT, stackFiles } from "../project.ts"
import { runFleet } from "../sim/fleet.ts"

/** More would only starve each other on a small machine; npm run bench states what this one holds. */
const MAX_DEVICES = 50

const spec = {
    name: "fleet",
    summary:
        "Runs N simulated devices (the firmware npm start built) beside npm start, each with its own flash, claimed by the local owner.",
    options: {
        devices: { type: "string", value: "n", required: true, help: `how many simulators, 1..${MAX_DEVICES}` },
        "registry-port": { type: "string", value: "port", default: String(REGISTRY_PORT), help: "the registry npm start runs" },
        service: SERVICE,
        "token-file": TOKEN_FILE,
        ca: CA,
    },
    notes: [
        "Start npm start first (it builds and publishes the image the fleet runs). Ctrl-C stops the fleet; its flash stays.",
        "The registry takes 20 new devices an hour from one address: a fresh stack takes about 19 simulators in an hour.",
    ],
} as const

await runCommand(spec, async ({ values }) => {
    const n = /^\d{1,3}$/.test(values.devices) ? Number(values.devices) : 0
    if (n < 1 || n > MAX_DEVICES) throw new UsageError(`--devices must be 1..${MAX_DEVICES}, not ${JSON.stringify(values.devices)}`)
    const registryPort = port("--registry-port", values["registry-port"])
    const image = stackFiles().localBuild
    if (!existsSync(image)) throw new CommandError(`no firmware build at ${image}: run npm start first (it builds and publishes it)`)
    if (!existsSync(values.ca)) throw new CommandError(`no CA certificate at ${values.ca}: run npm start first`)
    const api = ownerApi(values)
    const abort = new AbortController()
    process.on("SIGINT", () => abort.abort())
    process.on("SIGTERM", () => abort.abort())
    const say = (line: string) => console.log(`${new Date().toTimeString().slice(0, 8)} ${line}`)
    await runFleet({ devices: n, image, caCert: values.ca, registryPort, api, log: say, signal: abort.signal })
})
