/**
 * The owner service as one running thing: the store, the service, its HTTP
 * server and the API token file, started and stopped together (by
 * `npm run owner`, `npm start` and the tests).
 */
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { httpsTransport, type Transport } from "../registry/client.ts"
import { ConsoleAuth, SETUP_LINK_FILE } from "./console-auth.ts"
import { buildOwnerHttp, listenOwnerHttp, type SimulatorControl } from "./http.ts"
import { OwnerService } from "./service.ts"
import { OwnerStore } from "./store.ts"

/** Options of a running owner service. */
export interface RunOwnerOptions {
    /** The store file (created mode 0600 in a 0700 folder). */
    storePath: string
    /** Where the API token goes (mode 0600). */
    tokenPath: string
    /** The owner's name: needed on the first run, checked after. */
    name?: string
    registryUrl: string
    /** CA certificate (PEM) of the registry and the broker. */
    ca: Buffer
    /** The registry by another way than HTTPS to `registryUrl` (tests: in-process). */
    registry?: Transport
    /** Where the broker is, when not where the registry says. */
    brokerUrl?: string
    /** Every node of a broker cluster, to fail over between (OwnerServiceOptions.brokerNodes). */
    brokerNodes?: { host: string; port: number }[]
    host?: string
    port: number
    tls?: { key: Buffer; cert: Buffer }
    /** A file holding the console password to set (scripts and tests; otherwise a setup link is written beside the store). */
    passwordFile?: string
    /** The simulated device of `npm start`, which the console may factory-reset. */
    simulator?: SimulatorControl
    /** A device is online when heard from within this time (default 60 s; tests shorten it). */
    onlineMs?: number
    log?: (line: string) => void
}

/** A running owner service. */
export interface RunningOwner {
    service: OwnerService
    store: OwnerStore
    auth: ConsoleAuth
    /** The HTTP(S) base URL it listens on. */
    url: string
    /** While no console password is set: the file (mode 0600, beside the store) holding the one-time setup link. */
    setupLinkFile?: string
    stop(): Promise<void>
}

/** Opens the store, starts the service (account, login, broker) and serves HTTP. */
export async function runOwnerService(options: RunOwnerOptions): Promise<RunningOwner> {
    const log = options.log ?? (line => console.log(line))
    const store = new OwnerStore(options.storePath)
    try {
        const service = new OwnerService({
            store,
            registry: options.registry ?? httpsTransport(options.registryUrl, options.ca),
            registryUrl: options.registryUrl,
            name: options.name,
            brokerCa: options.ca,
            brokerUrl: options.brokerUrl,
            brokerNodes: options.brokerNodes,
            onlineMs: options.onlineMs,
            log,
        })
        const auth = new ConsoleAuth(store)
        if (options.passwordFile) auth.setPassword(readFileSync(options.passwordFile, "utf8").replace(/\r?\n$/, ""))
        auth.ensureApiTokenFile(options.tokenPath)
        await service.start()
        const app = buildOwnerHttp({
            service,
            auth,
            host: options.host,
            port: options.port,
            tls: options.tls,
            log,
            simulator: options.simulator,
        })
        const url = await listenOwnerHttp(app, options)
        const setupLinkFile = join(dirname(options.storePath), SETUP_LINK_FILE)
        const offered = auth.offerSetupLink(setupLinkFile, url)
        return {
            service,
            store,
            auth,
            url,
            setupLinkFile: offered ? setupLinkFile : undefined,
            stop: async () => {
                await app.close()
                await service.stop()
                store.close()
            },
        }
    } catch (e) {
        store.close()
        throw e
    }
}
