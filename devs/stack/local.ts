/**
 * The local stack: a private CA, Mosquitto with TLS and dynamic security, and
 * the registry over HTTPS on its SQLite store. `npm start` and the
 * end-to-end tests run the firmware in the simulator against it.
 */
import { readFileSync } from "node:fs"
import type { Server } from "node:https"
import { join } from "node:path"
import { Registry, serveRegistry } from "../registry/app.ts"
import { SqliteStore } from "../registry/store.ts"
import { MosquittoDynsec, startMosquitto, type MosquittoInstance } from "./mosquitto.ts"
import { ensurePki, type Pki } from "./pki.ts"

/** Ports the firmware in the simulator expects (see src/identity/endpoint.ts). */
export const REGISTRY_PORT = 8443
export const BROKER_PORT = 8883

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
}

/** A running local stack. */
export interface LocalStack {
    pki: Pki
    registry: Registry
    broker: MosquittoInstance
    dynsec: MosquittoDynsec
    registryPort: number
    /** Stops and restarts Mosquitto on the same port and state (logins survive). */
    restartBroker(): Promise<void>
    stop(): Promise<void>
}

/** Starts CA, broker and registry. */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
    const pki = ensurePki(join(options.dir, "pki"))
    const ca = readFileSync(pki.caCert)
    const startBroker = () =>
        startMosquitto({
            dir: join(options.dir, "mosquitto"),
            port: options.brokerPort ?? BROKER_PORT,
            pki,
            onLog: line => options.onLog?.("mosquitto", line),
        })
    let broker = await startBroker()
    const dynsec = new MosquittoDynsec({ host: "localhost", port: options.advertisedBrokerPort ?? broker.port }, broker.admin, ca, broker.port)
    const registry = new Registry({
        store: new SqliteStore(join(options.dir, "registry.db")),
        broker: dynsec,
        brokerTokenTtlMs: options.brokerTokenTtlMs,
        log: options.onLog ? line => options.onLog!("registry", line) : undefined,
    })
    registry.startExpiryTimer()
    const registryPort = options.registryPort ?? REGISTRY_PORT
    let server: Server | undefined
    if (options.serveRegistry !== false) {
        const https = serveRegistry(registry, { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) })
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
        restartBroker: async () => {
            await dynsec.close()
            await broker.stop()
            broker = await startBroker()
        },
        stop: async () => {
            registry.close()
            if (server) {
                const closed = new Promise<void>(resolve => server!.close(() => resolve()))
                server.closeAllConnections()
                await closed
            }
            await dynsec.close()
            await broker.stop()
            registry.store.close()
        },
    }
}
