/**
 * The local stack: a private CA, Mosquitto with TLS and dynamic security, the
 * registry over HTTPS on its SQLite store, and the update service with its
 * WSSK gateway (wss://) sharing that store. `npm start` and the end-to-end
 * tests run the firmware in the simulator against it.
 */
import { readFileSync } from "node:fs"
import type { Server } from "node:https"
import { MosquittoDynsec } from "../broker/dynsec.ts"
import { startMosquitto, type MosquittoInstance } from "../broker/mosquitto.ts"
import { Registry, serveRegistry } from "../registry/app.ts"
import type { FirmwareUpdates } from "../registry/firmware-updates.ts"
import { SqliteStore } from "../registry/store.ts"
import { BROKER_PORT, REGISTRY_PORT, stackFiles, UPDATES_PORT } from "../project.ts"
import { KeyVault } from "../updates/key-vault.ts"
import { UpdateService } from "../updates/service.ts"
import { WsskGateway } from "../updates/wssk.ts"
import { ensurePrivateDir } from "../files/private.ts"
import { ensurePki, type Pki } from "./pki.ts"

/** Options of the local stack. */
export interface LocalStackOptions {
    /** Folder for keys, certificates, the database and broker state (git-ignored `var/` by default). */
    dir: string
    registryPort?: number
    brokerPort?: number
    /** Lifetime of broker passwords. */
    brokerTokenTtlMs?: number
    /** Receives log lines of the services. */
    onLog?: (service: string, line: string) => void
    /** Serve the registry over HTTPS (default); tests that put their own server in front pass false. */
    serveRegistry?: boolean
    /** The broker port the registry tells devices (default: the broker's own); tests put a front there. */
    advertisedBrokerPort?: number
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
}

/** A running local stack. */
export interface LocalStack {
    pki: Pki
    registry: Registry
    broker: MosquittoInstance
    dynsec: MosquittoDynsec
    registryPort: number
    updates: UpdateService
    gateway: WsskGateway
    /** Stops and restarts Mosquitto on the same port and state (logins survive). */
    restartBroker(): Promise<void>
    stop(): Promise<void>
}

/** Starts CA, broker and registry. */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
    const files = stackFiles(options.dir)
    // keys, the database and broker state: the folder (and var/ above it, if new) is the owner's alone
    ensurePrivateDir(files.dir)
    const pki = ensurePki(files.pki)
    const ca = readFileSync(pki.caCert)
    const startBroker = () =>
        startMosquitto({
            dir: files.mosquitto,
            port: options.brokerPort ?? BROKER_PORT,
            tls: { cert: pki.serverCert, key: pki.serverKey },
            onLog: line => options.onLog?.("mosquitto", line),
        })
    let broker = await startBroker()
    const dynsec = new MosquittoDynsec(
        { host: "localhost", port: options.advertisedBrokerPort ?? broker.port },
        broker.admin,
        ca,
        broker.port
    )
    const store = new SqliteStore(files.registryDb)
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
    const gateway = new WsskGateway({
        tls,
        port: options.updatesPort ?? UPDATES_PORT,
        masterKeyFor: id => updates.masterKeyFor(id),
        onEvent: e => registry?.event(e.kind, e.source ?? "wssk", e.deviceId ?? "?", e.detail),
        onConnect: session => {
            void updates.connected(session)
            void session.closed.then(() => updates.disconnected(session.deviceId))
        },
    })
    await gateway.start()
    registry = new Registry({
        store,
        broker: dynsec,
        brokerTokenTtlMs: options.brokerTokenTtlMs,
        log: options.onLog ? line => options.onLog!("registry", line) : undefined,
        updates: {
            service: options.served?.(updates) ?? updates,
            endpoint: { host: "localhost", port: gateway.port, windowMs: options.updateWindowMs ?? 300_000 },
        },
    })
    registry.startExpiryTimer()
    const registryPort = options.registryPort ?? REGISTRY_PORT
    let server: Server | undefined
    if (options.serveRegistry !== false) {
        const https = serveRegistry(registry, tls)
        await new Promise<void>((resolve, reject) => {
            https.once("error", reject)
            https.listen(registryPort, "127.0.0.1", () => resolve())
        })
        server = https
    }
    return {
        pki,
        registry,
        get broker() {
            return broker
        },
        dynsec,
        registryPort,
        updates,
        gateway,
        restartBroker: async () => {
            await dynsec.close()
            await broker.stop()
            broker = await startBroker()
        },
        stop: async () => {
            registry!.close()
            updates.close()
            await gateway.stop()
            if (server) {
                const closed = new Promise<void>(resolve => server!.close(() => resolve()))
                server.closeAllConnections()
                await closed
            }
            await dynsec.close()
            await broker.stop()
            store.close()
        },
    }
}
