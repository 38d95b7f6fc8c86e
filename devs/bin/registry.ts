/**
 * `npm run registry`: the registry as a service, over HTTPS only. With a
 * broker, claimed devices get expiring broker logins: through Mosquitto's
 * dynamic security, or from a RabbitMQ cluster, whose nodes ask the registry
 * about every login and topic on a listener of its own (HTTPS, the nodes'
 * client certificates checked against --auth-client-ca;
 * devs/broker/rabbitmq-auth.ts). Without a broker devices authenticate but
 * get no broker login. `npm start` runs it with everything wired (devs/stack/).
 *
 * On SQLite (the default) it is the one registry of its file. On PostgreSQL
 * any number of registries may share the database, behind a load balancer
 * or one DNS name: a login may start at one and finish at another.
 *
 *   npm run registry -- --cert server.crt --key server.key [--port 8443] [--host 127.0.0.1]
 *       [--db registry.db | --database postgres://user@host:5432/registry]
 *       [--broker-host localhost --broker-port 8883 --broker-ca ca.crt --broker-admin-file admin.password]
 *       [--rabbitmq-nodes host:port,… --rabbitmq-management http://host:15672,… --auth-client-ca ca.crt
 *        [--auth-port 8444] [--logins-db broker-logins.db]]
 */
import { readFileSync } from "node:fs"
import { CommandError, runCommand, UsageError } from "../cli/args.ts"
import { port } from "../cli/options.ts"
import { MosquittoDynsec } from "../broker/dynsec.ts"
import { RabbitAccess } from "../broker/rabbitmq-access.ts"
import { RabbitAuthPolicy, registerAdminLogin, serveRabbitAuth } from "../broker/rabbitmq-auth.ts"
import { openBrokerLogins } from "../broker/rabbitmq-logins.ts"
import { BROKER_PORT, REGISTRY_PORT } from "../project.ts"
import { Registry, serveRegistry } from "../registry/app.ts"
import type { BrokerAccess } from "../registry/broker-access.ts"
import { describeStore, openStore } from "../registry/open-store.ts"
import { isPostgresUrl } from "../registry/postgres-store.ts"

const spec = {
    name: "registry",
    summary: "Serves the registry (enrollment, SCRAM login, claims, broker logins) over HTTPS.",
    options: {
        cert: { type: "string", value: "file", required: true, help: "the server certificate (PEM)" },
        key: { type: "string", value: "file", required: true, help: "its private key (PEM)" },
        port: { type: "string", value: "port", default: String(REGISTRY_PORT), help: "the port to listen on" },
        host: { type: "string", value: "address", default: "127.0.0.1", help: "the address to listen on" },
        db: { type: "string", value: "file", help: "the SQLite database (default registry.db)" },
        database: {
            type: "string",
            value: "url",
            help:
                "a postgres:// URL instead: registries on one database share logins and limits " +
                "(its password from PGPASSWORD, kept out of argv)",
        },
        "broker-host": { type: "string", value: "host", help: "Mosquitto: where devices reach it (with the three below)" },
        "broker-port": { type: "string", value: "port", default: String(BROKER_PORT), help: "Mosquitto's TLS port" },
        "broker-ca": { type: "string", value: "file", help: "CA certificate Mosquitto's certificate chains to" },
        "broker-admin-file": { type: "string", value: "file", help: "Mosquitto's dynamic-security admin password" },
        "rabbitmq-nodes": {
            type: "string",
            value: "host:port,…",
            help: "RabbitMQ: every node's MQTT-over-TLS listener, as devices reach them",
        },
        "rabbitmq-management": {
            type: "string",
            value: "url,…",
            help: "RabbitMQ: every node's management API (to close expired sessions)",
        },
        "auth-client-ca": { type: "string", value: "file", help: "RabbitMQ: the CA of the client certificates the nodes present" },
        "auth-port": { type: "string", value: "port", default: "8444", help: "RabbitMQ: the auth backend's HTTPS port" },
        "logins-db": {
            type: "string",
            value: "file",
            default: "broker-logins.db",
            help: "RabbitMQ on a SQLite store: the broker logins (password hashes); with --database they are in that database",
        },
    },
    notes: [
        "With RabbitMQ, point every node's rabbitmq_auth_backend_http at https://<host>:<auth-port>/{user,vhost,resource,topic}",
        "with a client certificate from --auth-client-ca; devs/broker/rabbitmq-cluster.ts writes such a configuration.",
    ],
} as const

/** `host:port,host:port` as endpoints. */
function endpoints(text: string): { host: string; port: number }[] {
    return text.split(",").map(item => {
        const m = /^([A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(item)
        if (!m) throw new UsageError(`--rabbitmq-nodes: ${JSON.stringify(item)} is not host:port`)
        return { host: m[1], port: port("--rabbitmq-nodes", m[2]) }
    })
}

await runCommand(spec, async ({ values }) => {
    const listenPort = port("--port", values.port)
    const brokerPort = port("--broker-port", values["broker-port"])
    const mosquitto = [values["broker-host"], values["broker-ca"], values["broker-admin-file"]]
    const rabbit = [values["rabbitmq-nodes"], values["rabbitmq-management"], values["auth-client-ca"]]
    if (mosquitto.some(v => v !== undefined) && !mosquitto.every(v => v !== undefined))
        throw new UsageError("--broker-host, --broker-ca and --broker-admin-file go together")
    if (rabbit.some(v => v !== undefined) && !rabbit.every(v => v !== undefined))
        throw new UsageError("--rabbitmq-nodes, --rabbitmq-management and --auth-client-ca go together")
    if (mosquitto[0] !== undefined && rabbit[0] !== undefined) throw new UsageError("one broker: Mosquitto's options or RabbitMQ's")
    if (values.db !== undefined && values.database !== undefined) throw new UsageError("--db and --database go alone: one store")
    if (values.database !== undefined && !isPostgresUrl(values.database))
        throw new UsageError("--database takes a postgres:// URL (--db takes a SQLite file)")
    const tls = { cert: readFileSync(values.cert), key: readFileSync(values.key) }
    const database = values.database ?? values.db ?? "registry.db"
    let store
    try {
        store = await openStore(database)
    } catch (e) {
        // the message names the server and the reason, never the URL's password
        throw new CommandError(`cannot open the store at ${describeStore(database)}: ${(e as Error).message}`)
    }
    let broker: BrokerAccess | undefined
    let registry: Registry | undefined = undefined
    if (values["broker-host"]) {
        broker = new MosquittoDynsec(
            { host: values["broker-host"], port: brokerPort },
            { username: "admin", password: readFileSync(values["broker-admin-file"]!, "utf8").trim() },
            readFileSync(values["broker-ca"]!)
        )
    } else if (values["rabbitmq-nodes"]) {
        const nodes = endpoints(values["rabbitmq-nodes"])
        const management = values["rabbitmq-management"]!.split(",")
        if (!management.every(u => /^https?:\/\/[^\s/]+\/?$/.test(u))) throw new UsageError("--rabbitmq-management: http(s)://host:port, …")
        const logins = openBrokerLogins(store, values["logins-db"])
        // the registry's management login: made per run, its password known to this process only, its hash in the
        // store, so every registry's backend on that store accepts it; gone from the store when this one stops
        const admin = await registerAdminLogin(store)
        const forget = () => void store.deleteBrokerAdmin(admin.username).finally(() => process.exit(0))
        process.once("SIGINT", forget)
        process.once("SIGTERM", forget)
        const auth = serveRabbitAuth({
            policy: new RabbitAuthPolicy(logins, store),
            tls: { ...tls, clientCa: readFileSync(values["auth-client-ca"]!) },
            event: (...e) => registry?.event(...e),
        })
        const authPort = port("--auth-port", values["auth-port"])
        await new Promise<void>((resolve, reject) => {
            auth.once("error", reject)
            auth.listen(authPort, values.host, () => resolve())
        })
        broker = new RabbitAccess({ logins, endpoints: nodes, managementUrls: management.map(u => u.replace(/\/$/, "")), admin })
        console.log(`RabbitMQ auth backend on https://${values.host}:${authPort}`)
    }
    registry = new Registry({ store, broker })
    const server = serveRegistry(registry, tls)
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject)
        server.listen(listenPort, values.host, () => resolve())
    })
    registry.startExpiryTimer()
    const via = values["broker-host"]
        ? ", broker access via dynamic security"
        : values["rabbitmq-nodes"]
          ? ", broker access via RabbitMQ"
          : ""
    console.log(`registry listening on https://${values.host}:${listenPort}${via}`)
})
