/**
 * What `npm run fleet` does: N real simulated devices beside a running
 * `npm start`, each the firmware `npm start` built and published, in the
 * DeviceScript simulator with a flash of its own (`var/fleet/<n>`, kept
 * across runs: a device keeps its identity) and a devtools server of its own
 * on free ports. Each enrolls with the stack's registry on its first boot;
 * playing the owner at its console, the fleet has the owner service claim it
 * through its API with the code it prints once, so every device is in the
 * console.
 *
 * The registry counts enrollments per source address (20 new devices an
 * hour, devs/registry/rate-limit.ts): simulators all speak from 127.0.0.1,
 * so a fresh stack takes about 19 of them (and `npm start`'s own) in an hour.
 */
import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import type { OwnerApi } from "../owner/api-client.ts"
import { ConsoleClaimer } from "../owner/console-claimer.ts"
import { FLEET_DIR, REGISTRY_PORT } from "../project.ts"
import { deviceLine, powerCutEnv, runDevs, startDevtools, type Devtools } from "./devs-cli.ts"

/** Options of a fleet of simulators. */
export interface FleetOptions {
    devices: number
    /** The image to run: what `npm start` built and published. */
    image: string
    /** The CA certificate of the stack (the simulators trust it). */
    caCert: string
    /** Where the stack's registry listens. */
    registryPort: number
    /** The owner service that claims them. */
    api: OwnerApi
    /** Progress lines. */
    log: (line: string) => void
    signal: AbortSignal
}

/** One simulator of the fleet: its devtools server, and its run. */
interface Member {
    devtools: Devtools
    ended: Promise<unknown>
}

/** Runs `devices` simulators until `signal` aborts; resolves once they all ended. */
export async function runFleet(options: FleetOptions): Promise<void> {
    const members: Member[] = []
    try {
        for (let index = 1; index <= options.devices && !options.signal.aborted; index++) members.push(await startMember(index, options))
        options.log(`${members.length} simulators started; Ctrl-C stops them (their flash stays in ${FLEET_DIR})`)
        await Promise.all(members.map(m => m.ended))
    } finally {
        for (const m of members) m.devtools.stop()
    }
}

async function startMember(index: number, options: FleetOptions): Promise<Member> {
    const dir = join(FLEET_DIR, String(index))
    const fresh = !existsSync(join(dir, ".devicescript", "flash"))
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const devtools = await startDevtools(dir)
    const name = `fleet-${index}`
    const claimer = new ConsoleClaimer(async (id, code) => {
        await options.api.call("POST", "/api/devices/claim", { id, code, name })
        options.log(`${name}: claimed ${id}`)
    })
    const ended = runDevs(["run", options.image], {
        cwd: dir,
        env: { ...powerCutEnv(), NODE_EXTRA_CA_CERTS: options.caCert },
        ports: { ...devtools.ports, [REGISTRY_PORT]: options.registryPort },
        signal: options.signal,
        onLine: line => {
            const text = deviceLine(line)
            if (text === undefined) return
            if (/^sentinel-node: boot /.test(text)) options.log(`${name}: ${text}`)
            claimer.onLine(text)?.catch(e => options.log(`${name}: claim failed: ${(e as Error).message}`))
        },
    }).then(r => {
        if (!options.signal.aborted) options.log(`${name}: the simulator ended (exit ${r.code})`)
    })
    options.log(`${name}: started${fresh ? " (a new device: it enrolls and is claimed)" : ""}`)
    return { devtools, ended }
}
