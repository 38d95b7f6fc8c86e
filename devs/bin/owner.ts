/**
 * `npm run owner`: the owner service on its own (`npm start` runs it too):
 * the only holder of the owner's keys, counters and readings, with its HTTP
 * API and console. The first run registers the owner's account at the
 * registry and writes a one-time link to set the console password to a
 * file beside the store (mode 0600; the link is a credential, so it is not printed).
 *
 *   npm run owner -- --name <owner> [--registry URL] [--ca FILE] [--store FILE] [--listen 127.0.0.1:8080]
 *       [--tls-cert FILE --tls-key FILE] [--password-file FILE] [--token-file FILE] [--broker URL]
 */
import { readFileSync } from "node:fs"
import { displayPath, runCommand, UsageError } from "../cli/args.ts"
import { CA, readCa, REGISTRY, STORE, TOKEN_FILE } from "../cli/options.ts"
import { isLoopback } from "../owner/http.ts"
import { OWNER_NAME } from "../registry/owners.ts"
import { runOwnerService } from "../owner/run.ts"
import { OWNER_PORT } from "../project.ts"

const spec = {
    name: "owner",
    summary: "Runs the owner service: keys, counters and readings of the owner's devices, its HTTP API and console. Runs until Ctrl-C.",
    options: {
        name: { type: "string", value: "owner", help: "the owner's name at the registry (needed on the first run)" },
        registry: REGISTRY,
        ca: CA,
        store: STORE,
        listen: { type: "string", value: "host:port", default: `127.0.0.1:${OWNER_PORT}`, help: "where the API and console listen" },
        "tls-cert": { type: "string", value: "file", help: "certificate (PEM) to serve HTTPS with: required off loopback" },
        "tls-key": { type: "string", value: "file", help: "its private key (PEM)" },
        "password-file": {
            type: "string",
            value: "file",
            help: "sets the console password from this file (else a setup link is written beside the store)",
        },
        "token-file": TOKEN_FILE,
        broker: { type: "string", value: "url", help: "the broker, when not where the registry says (mqtts://host:port)" },
    },
    notes: ["The CLIs (claim, consume, command, bridge) talk to it with the API token it writes to --token-file."],
} as const

await runCommand(spec, async ({ values }) => {
    const listen = /^(.+):(\d{1,5})$/.exec(values.listen)
    if (!listen || Number(listen[2]) > 65535) throw new UsageError(`--listen must be host:port, not ${JSON.stringify(values.listen)}`)
    const host = listen[1].replace(/^\[(.*)\]$/, "$1")
    if (values.name !== undefined && !OWNER_NAME.test(values.name)) throw new UsageError("--name must be 1..64 of A-Z a-z 0-9 . _ @ -")
    if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined))
        throw new UsageError("--tls-cert and --tls-key go together")
    if (!values["tls-cert"] && !isLoopback(host))
        throw new UsageError(`--listen ${host} is not loopback: serve it with --tls-cert and --tls-key`)
    const tls = values["tls-cert"] ? { cert: readFileSync(values["tls-cert"]), key: readFileSync(values["tls-key"]!) } : undefined
    const running = await runOwnerService({
        storePath: values.store,
        tokenPath: values["token-file"],
        name: values.name,
        registryUrl: values.registry,
        ca: readCa(values.ca),
        brokerUrl: values.broker,
        host,
        port: Number(listen[2]),
        tls,
        passwordFile: values["password-file"],
        log: line => console.log(`${new Date().toISOString()} ${line}`),
    })
    console.log(`owner service of ${running.service.name} at ${running.url} (API token in ${values["token-file"]})`)
    if (running.setupLinkFile)
        console.log(`open the link in ${displayPath(running.setupLinkFile)} to set the console password (it works once)`)
    const stop = () => void running.stop().then(() => process.exit(0))
    process.on("SIGINT", stop)
    process.on("SIGTERM", stop)
})
