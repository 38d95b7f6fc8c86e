/**
 * The local stack: a private CA, Mosquitto with TLS and dynamic security, the
 * registry over HTTPS on its SQLite store, and the update service with its
 * WSSK gateway (wss://) sharing that store. `npm start` and the end-to-end
 * tests run the firmware in the simulator against it.
 *
 * Every port is an option; left out, it is a free one, so stacks of two test
 * runs on one machine never meet. `npm start` asks for the well-known ports
 * (devs/project.ts). The registry tells devices where the broker and the
 * update service are, so the firmware follows whatever the stack chose; only
 * the registry's own port is compiled into it (see devs/sim/port-map.cjs).
 */
import { readFileSync } from "node:fs"
import type { AddressInfo } from "node:net"
import { MosquittoDynsec } from "../broker/dynsec.ts"
import { startMosquitto, type MosquittoInstance, type MosquittoOptions } from "../broker/mosquitto.ts"
import { freePort } from "../net/ports.ts"
import { ensurePrivateDir } from "../files/private.ts"
import { Registry, serveRegistry } from "../registry/app.ts"
import { SqliteStore, type RegistryStore } from "../registry/store.ts"
import { stackFiles } from "../project.ts"
import type { FirmwareUpdates } from "../registry/firmware-updates.ts"
import type { RateLimitPolicy } from "../registry/rate-limit.ts"
import { KeyVault } from "../updates/key-vault.ts"
import { UpdateService } from "../updates/service.ts"
import { WsskGateway } from "../updates/wssk.ts"
import type { BrokerAccess } from "../registry/broker-access.ts"
import { ensurePki, type Pki } from "./pki.ts"

/** Options of the local stack. */
export interface LocalStackOptions {
    /** Folder for keys, certificates, the database and broker state (git-ignored `var/` by default). */
    dir: string
    /** The registry's HTTPS port. Default: a free one (`LocalStack.registryPort` says which). */
    registryPort?: number
    /** The broker's TLS port. Default: a free one. */
    brokerPort?: number
    /** Lifetime of broker passwords. */
    brokerTokenTtlMs?: number
    /** Receives log lines of the services. */
    onLog?: (service: string, line: string) => void
    /** Serve the registry over HTTPS (default); tests that put their own server in front pass false. */
    serveRegistry?: boolean
    /** The broker port the registry tells devices (default: the broker's own); tests put a front there. */
    advertisedBrokerPort?: number
    /** The update service's WSSK port. Default: a free one. */
    updatesPort?: number
    /** How long a deployed candidate has to confirm before it is rolled back. Default 10 minutes. */
    trialDeadlineMs?: number
    /** How long a device keeps its window open for a deploy. Default 5 minutes. */
    updateWindowMs?: number
    /** Follows each deploy's acknowledged writes. */
    onDeployProgress?: (deviceId: string, written: number, total: number) => void
    /**
     * What the registry serves devices in the update service's name (manifests, trust documents): the
     * service itself by default. Tests that play a compromised or broken service hand back another.
     */
    served?: (service: UpdateService) => FirmwareUpdates
    /** New device ids one source may enroll (default: the registry's 20 an hour); a bench of many simulators on one address raises it. */
    enrollmentLimit?: RateLimitPolicy
}

/** A server's host name and TCP port. */
export interface Endpoint {
    host: string
    port: number
}

/** How owners and tools reach the broker, whichever it is. */
export interface BrokerReach {
    /** Every node, in the order to try them (one for Mosquitto). */
    endpoints: Endpoint[]
    /**
     * Whether the owner's session should persist (clean session = 0): on a cluster its queue is a quorum queue that
     * outlives any one node; Mosquitto here keeps no state across restarts, so its sessions stay clean.
     */
    persistentSessions: boolean
}

/** What every stack has, whichever broker it runs. */
export interface StackCore {
    pki: Pki
    registry: Registry
    /** Where the registry listens (0 with `serveRegistry: false`, unless a port was given). */
    registryPort: number
    updates: UpdateService
    gateway: WsskGateway
    mqtt: BrokerReach
    stop(): Promise<void>
    /** Kills the broker at once, synchronously: for an `exit` hook (the broker must not outlive its stack's process). */
    killBroker(): void
}

/** A running local stack (Mosquitto). */
export interface LocalStack extends StackCore {
    broker: MosquittoInstance
    dynsec: MosquittoDynsec
    /** Stops and restarts Mosquitto on the same port and state (logins survive). */
    restartBroker(): Promise<void>
}

/**
 * Starts Mosquitto on `port`, or on a free port when none is given. Mosquitto cannot be asked for
 * any free port, so one is picked first; if another program takes it meanwhile Mosquitto exits
 * at once, and it is started again on another.
 */
async function startBrokerOnPort(options: Omit<MosquittoOptions, "port">, port: number | undefined): Promise<MosquittoInstance> {
    for (let attempt = 1; ; attempt++) {
        let broker: MosquittoInstance | undefined
        try {
            broker = await startMosquitto({ ...options, port: port ?? (await freePort()) })
        } catch (e) {
            if (port !== undefined || attempt === 5) throw e
        }
        // something answers on the port, but is it this Mosquitto? One that failed to bind has ended within 200 ms
        await new Promise(resolve => setTimeout(resolve, 200))
        if (broker && broker.process.exitCode === null && broker.process.signalCode === null) return broker
        broker?.process.kill("SIGKILL")
        if (port !== undefined || attempt === 5) throw new Error(`mosquitto exited at start: is port ${broker?.port} taken?`)
    }
}

/** Starts CA, broker, update service and registry; if any of them fails to start, stops those that did and throws. */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
    const files = stackFiles(options.dir)
    // keys, the database and broker state: the folder (and var/ above it, if new) is the owner's alone
    ensurePrivateDir(files.dir)
    const pki = ensurePki(files.pki)
    const ca = readFileSync(pki.caCert)
    /** What stops each part started so far, in the order they started. */
    const stops: (() => unknown)[] = []
    const stopAll = async () => {
        for (const stop of stops.splice(0).reverse()) await stop()
    }
    try {
        const brokerOptions = {
            dir: files.mosquitto,
            tls: { cert: pki.serverCert, key: pki.serverKey },
            onLog: (line: string) => options.onLog?.("mosquitto", line),
        }
        let broker = await startBrokerOnPort(brokerOptions, options.brokerPort)
        stops.push(() => broker.stop())
        const dynsec = new MosquittoDynsec(
            { host: "localhost", port: options.advertisedBrokerPort ?? broker.port },
            broker.admin,
            ca,
            broker.port
        )
        stops.push(() => dynsec.close())
        const services = await startServices(options, files, pki, dynsec, stops)
        return {
            pki,
            ...services,
            // owners reach Mosquitto itself, not a front a test advertises to devices
            mqtt: { endpoints: [{ host: "localhost", port: broker.port }], persistentSessions: false },
            get broker() {
                return broker
            },
            dynsec,
            restartBroker: async () => {
                await dynsec.close()
                await broker.stop()
                broker = await startMosquitto({ ...brokerOptions, port: broker.port })
            },
            stop: stopAll,
            killBroker: () => broker.process.kill("SIGKILL"),
        }
    } catch (e) {
        await stopAll()
        throw e
    }
}

/** What `startServices` needs: the stack's options other than the broker's. */
export type ServicesOptions = Omit<LocalStackOptions, "brokerPort" | "advertisedBrokerPort">

/**
 * Starts the registry (on `store`, or else its SQLite file, with `broker` for broker logins) and the update service
 * with its WSSK gateway; pushes what stops each onto `stops`. Every stack runs these the same way, whatever its broker.
 * A store passed in is the caller's to close.
 */
export async function startServices(
    options: ServicesOptions,
    files: ReturnType<typeof stackFiles>,
    pki: Pki,
    broker: BrokerAccess,
    stops: (() => unknown)[],
    opened?: RegistryStore
): Promise<{ registry: Registry; registryPort: number; updates: UpdateService; gateway: WsskGateway }> {
    const store = opened ?? new SqliteStore(files.registryDb)
    if (!opened) stops.push(() => store.close())
    const tls = { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) }
    // the service logs into the registry's event log; the registry is made just below
    let registry: Registry | undefined = undefined
    const updates = new UpdateService({
        store,
        vault: KeyVault.open(files.vaultKey),
        trialDeadlineMs: options.trialDeadlineMs,
        event: (kind, identity, detail) => registry?.event(kind, "updates", identity, detail),
        onDeployProgress: options.onDeployProgress,
    })
    updates.startTimer()
    stops.push(() => updates.close())
    const gateway = new WsskGateway({
        tls,
        port: options.updatesPort ?? 0,
        masterKeyFor: id => updates.masterKeyFor(id),
        onEvent: e => registry?.event(e.kind, e.source ?? "wssk", e.deviceId ?? "?", e.detail),
        onConnect: session => {
            void updates.connected(session)
            void session.closed.then(() => updates.disconnected(session.deviceId))
        },
    })
    await gateway.start()
    stops.push(() => gateway.stop())
    registry = new Registry({
        store,
        broker,
        brokerTokenTtlMs: options.brokerTokenTtlMs,
        enrollmentLimit: options.enrollmentLimit,
        log: options.onLog ? line => options.onLog!("registry", line) : undefined,
        updates: {
            service: options.served?.(updates) ?? updates,
            endpoint: { host: "localhost", port: gateway.port, windowMs: options.updateWindowMs ?? 300_000 },
        },
    })
    registry.startExpiryTimer()
    stops.push(() => registry!.close())
    let registryPort = options.registryPort ?? 0
    if (options.serveRegistry !== false) {
        const server = serveRegistry(registry, tls)
        await new Promise<void>((resolve, reject) => {
            server.once("error", reject)
            server.listen(registryPort, "127.0.0.1", () => resolve())
        })
        registryPort = (server.address() as AddressInfo).port
        stops.push(() => {
            const closed = new Promise<void>(resolve => server.close(() => resolve()))
            server.closeAllConnections()
            return closed
        })
    }
    return { registry, registryPort, updates, gateway }
}
