/**
 * `npm run registry`: the registry as a service, over HTTPS only. With the
 * broker options, claimed devices get expiring broker logins through
 * Mosquitto's dynamic security; without them they authenticate but get no
 * broker login. `npm start` runs it with everything wired (devs/stack/local.ts).
 *
 *   npm run registry -- --cert server.crt --key server.key [--port 8443] [--host 127.0.0.1] [--db registry.db]
 *       [--broker-host localhost --broker-port 8883 --broker-ca ca.crt --broker-admin-file admin.password]
 */
import { readFileSync } from "node:fs"
import { runCommand, UsageError } from "../cli/args.ts"
import { port } from "../cli/options.ts"
import { MosquittoDynsec } from "../broker/dynsec.ts"
import { BROKER_PORT, REGISTRY_PORT } from "../project.ts"
import { Registry, serveRegistry } from "../registry/app.ts"
import { SqliteStore } from "../registry/store.ts"

const spec = {
    name: "registry",
    summary: "Serves the registry (enrollment, SCRAM login, claims, broker logins) over HTTPS.",
    options: {
        cert: { type: "string", value: "file", required: true, help: "the server certificate (PEM)" },
        key: { type: "string", value: "file", required: true, help: "its private key (PEM)" },
        port: { type: "string", value: "port", default: String(REGISTRY_PORT), help: "the port to listen on" },
        host: { type: "string", value: "address", default: "127.0.0.1", help: "the address to listen on" },
        db: { type: "string", value: "file", default: "registry.db", help: "the SQLite database" },
        "broker-host": { type: "string", value: "host", help: "where devices reach the broker (with the three below)" },
        "broker-port": { type: "string", value: "port", default: String(BROKER_PORT), help: "the broker's TLS port" },
        "broker-ca": { type: "string", value: "file", help: "CA certificate the broker's certificate chains to" },
        "broker-admin-file": { type: "string", value: "file", help: "the dynamic-security admin password" },
    },
} as const

await runCommand(spec, async ({ values }) => {
    const listenPort = port("--port", values.port)
    const brokerPort = port("--broker-port", values["broker-port"])
    const brokerOptions = [values["broker-host"], values["broker-ca"], values["broker-admin-file"]]
    if (brokerOptions.some(v => v !== undefined) && !brokerOptions.every(v => v !== undefined))
        throw new UsageError("--broker-host, --broker-ca and --broker-admin-file go together")
    const tls = { cert: readFileSync(values.cert), key: readFileSync(values.key) }
    const broker = values["broker-host"]
        ? new MosquittoDynsec(
              { host: values["broker-host"], port: brokerPort },
              { username: "admin", password: readFileSync(values["broker-admin-file"]!, "utf8").trim() },
              readFileSync(values["broker-ca"]!)
          )
        : undefined
    const registry = new Registry({ store: new SqliteStore(values.db), broker })
    const server = serveRegistry(registry, tls)
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject)
        server.listen(listenPort, values.host, () => resolve())
    })
    registry.startExpiryTimer()
    console.log(`registry listening on https://${values.host}:${listenPort}${broker ? ", broker access via dynamic security" : ""}`)
})
