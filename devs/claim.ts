/**
 * `devs claim`: the owner claims a device with the one-time claim code it
 * printed on its console at first boot.
 *
 *   npx tsx devs/claim.ts --id <device id> --code <CLAIM-CODE> --owner <name>
 *       [--registry https://localhost:8443] [--ca var/stack/pki/ca.crt]
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { claim, httpsTransport } from "./registry/client.ts"

const { values } = parseArgs({
    options: {
        registry: { type: "string", default: "https://localhost:8443" },
        ca: { type: "string", default: "var/stack/pki/ca.crt" },
        id: { type: "string" },
        code: { type: "string" },
        owner: { type: "string" },
    },
})

if (!values.id || !values.code || !values.owner) {
    console.error("usage: devs/claim.ts --id <device id> --code <claim code> --owner <name> [--registry URL] [--ca FILE]")
    process.exit(2)
}

const reply = await claim(httpsTransport(values.registry!, readFileSync(values.ca!)), values.id, values.code, values.owner)
if (reply.status === 200) console.log(`claimed ${values.id} for ${values.owner}`)
else {
    // the registry's error text never echoes the code
    console.error(`claim refused (HTTP ${reply.status}): ${String(reply.body.error ?? "")}`)
    process.exit(1)
}
