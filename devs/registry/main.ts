/**
 * The registry as a service:
 *
 *   npx tsx devs/registry/main.ts --cert server.crt --key server.key [--port 8443]
 *       [--db registry.db] [--broker-host localhost --broker-port 8883
 *        --broker-ca ca.crt --broker-admin-file admin.password]
 *
 * With no broker options, claimed devices authenticate but get no broker login.
 * The local stack (`npm start`) starts it with everything wired.
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { Registry, serveRegistry } from "./app.ts"
import { SqliteStore } from "./store.ts"
import { MosquittoDynsec } from "../broker/dynsec.ts"

const { values } = parseArgs({
    options: {
        port: { type: "string", default: "8443" },
        host: { type: "string", default: "127.0.0.1" },
        db: { type: "string", default: "registry.db" },
        cert: { type: "string" },
        key: { type: "string" },
        "broker-host": { type: "string" },
        "broker-port": { type: "string", default: "8883" },
        "broker-ca": { type: "string" },
        "broker-admin-file": { type: "string" },
    },
})

if (!values.cert || !values.key) {
    console.error("the registry serves HTTPS only: --cert and --key are required")
    process.exit(2)
}

const broker =
    values["broker-host"] && values["broker-ca"] && values["broker-admin-file"]
        ? new MosquittoDynsec(
              { host: values["broker-host"], port: Number(values["broker-port"]) },
              { username: "admin", password: readFileSync(values["broker-admin-file"], "utf8").trim() },
              readFileSync(values["broker-ca"])
          )
        : undefined
const registry = new Registry({ store: new SqliteStore(values.db!), broker })
registry.startExpiryTimer()
serveRegistry(registry, { cert: readFileSync(values.cert), key: readFileSync(values.key) }).listen(Number(values.port), values.host, () =>
    console.log(`registry listening on https://${values.host}:${values.port}${broker ? ", broker access via dynamic security" : ""}`)
)
