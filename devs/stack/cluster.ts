/**
 * The distributed broker: the local stack's registry and update service
 * (./local.ts) with a RabbitMQ cluster instead of Mosquitto. The registry
 * keeps the broker logins (devs/broker/rabbitmq-logins.ts: in its PostgreSQL
 * database, or a SQLite file beside a SQLite store) and answers every
 * node's auth checks on a listener of its own (HTTPS with client
 * certificates, devs/broker/rabbitmq-auth.ts); devices are told every node
 * and fail over between them; owners keep persistent sessions, whose quorum
 * queues survive the loss of a node.
 *
 * The cluster's state lives in a temporary folder and goes with `stop()`;
 * the registry's database, the logins and the PKI stay in `dir`, as with Mosquitto.
 */
import { readFileSync } from "node:fs"
import type { AddressInfo } from "node:net"
import { RabbitAccess } from "../broker/rabbitmq-access.ts"
import { RabbitAuthPolicy, registerAdminLogin, serveRabbitAuth } from "../broker/rabbitmq-auth.ts"
import { startRabbitCluster, type RabbitCluster } from "../broker/rabbitmq-cluster.ts"
import { openBrokerLogins } from "../broker/rabbitmq-logins.ts"
import { ensurePrivateDir } from "../files/private.ts"
import { stackFiles } from "../project.ts"
import type { Registry } from "../registry/app.ts"
import { openStore } from "../registry/open-store.ts"
import { startServices, type ServicesOptions, type StackCore } from "./local.ts"
import { ensureClientCertificate, ensurePki } from "./pki.ts"

/** The name in the client certificate the nodes present to the auth backend. */
const BROKER_CLIENT = "sentinel-broker"

/** Options of the cluster stack. */
export interface ClusterStackOptions extends ServicesOptions {
    /** Nodes in the cluster (default 3). */
    nodes?: number
    /** The registry's store: a postgres:// URL, which other registries may share (default: the SQLite file in `dir`). */
    database?: string
}

/** A running cluster stack. */
export interface ClusterStack extends StackCore {
    cluster: RabbitCluster
    access: RabbitAccess
    /** Where the auth backend listens. */
    authPort: number
    /** The name of the registry's management login (its password stays inside the stack). */
    adminUsername: string
}

/** Starts PKI, the auth backend, the cluster, the update service and the registry; on failure stops what started and throws. */
export async function startClusterStack(options: ClusterStackOptions): Promise<ClusterStack> {
    const files = stackFiles(options.dir)
    ensurePrivateDir(files.dir)
    const pki = ensurePki(files.pki)
    const client = ensureClientCertificate(pki, BROKER_CLIENT)
    const stops: (() => unknown)[] = []
    const stopAll = async () => {
        for (const stop of stops.splice(0).reverse()) await stop()
    }
    try {
        const store = await openStore(options.database ?? files.registryDb)
        stops.push(() => store.close())
        const logins = openBrokerLogins(store, files.brokerLogins)
        stops.push(() => logins.close())
        // the registry's management login: its password in this process only, its hash in the store every backend reads
        const admin = await registerAdminLogin(store)
        stops.push(() => store.deleteBrokerAdmin(admin.username))
        // the backend's events go into the registry's log; the registry starts after the cluster
        const events: { registry?: Registry; early: Parameters<Registry["event"]>[] } = { early: [] }
        const auth = serveRabbitAuth({
            policy: new RabbitAuthPolicy(logins, store),
            tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey), clientCa: readFileSync(pki.caCert) },
            event: (...e) => (events.registry ? events.registry.event(...e) : events.early.push(e)),
        })
        await new Promise<void>((resolve, reject) => {
            auth.once("error", reject)
            auth.listen(0, "127.0.0.1", () => resolve())
        })
        stops.push(() => {
            const closed = new Promise<void>(resolve => auth.close(() => resolve()))
            auth.closeAllConnections()
            return closed
        })
        const authPort = (auth.address() as AddressInfo).port
        const cluster = await startRabbitCluster({
            nodes: options.nodes,
            tls: {
                caCert: pki.caCert,
                serverCert: pki.serverCert,
                serverKey: pki.serverKey,
                clientCert: client.cert,
                clientKey: client.key,
            },
            authUrl: `https://localhost:${authPort}`,
            onLog: options.onLog ? (node, line) => options.onLog!(node, line) : undefined,
        })
        stops.push(() => cluster.stop())
        const access = new RabbitAccess({ logins, endpoints: cluster.mqttEndpoints, managementUrls: cluster.managementUrls, admin })
        const services = await startServices(options, files, pki, access, stops, store)
        events.registry = services.registry
        for (const e of events.early.splice(0)) services.registry.event(...e)
        return {
            pki,
            ...services,
            mqtt: { endpoints: cluster.mqttEndpoints, persistentSessions: true },
            cluster,
            access,
            authPort,
            adminUsername: admin.username,
            stop: stopAll,
            killBroker: () => cluster.kill(),
        }
    } catch (e) {
        await stopAll()
        throw e
    }
}
