/**
 * `devs claim`: the owner claims a device with the one-time claim code it
 * printed on its console at first boot. The code itself is never sent: the
 * registry gets a proof derived from it, and returns the sealed owner
 * envelope, which only the code opens. The keys land in the owner's keystore.
 *
 *   npx tsx devs/claim.ts --id <device id> --code <CLAIM-CODE> --owner <name>
 *       [--registry https://localhost:8443] [--ca var/stack/pki/ca.crt] [--keystore var/owner/<name>.json]
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { claimDevice } from "./owner/claim.ts"
import { Keystore } from "./owner/keystore.ts"
import { httpsTransport } from "./registry/client.ts"

const { values } = parseArgs({
    options: {
        registry: { type: "string", default: "https://localhost:8443" },
        ca: { type: "string", default: "var/stack/pki/ca.crt" },
        id: { type: "string" },
        code: { type: "string" },
        owner: { type: "string" },
        keystore: { type: "string" },
    },
})

if (!values.id || !values.code || !values.owner) {
    console.error("usage: devs/claim.ts --id <device id> --code <claim code> --owner <name> [--registry URL] [--ca FILE] [--keystore FILE]")
    process.exit(2)
}

const keystore = Keystore.open(values.keystore ?? `var/owner/${values.owner}.json`, values.owner)
try {
    await claimDevice(httpsTransport(values.registry!, readFileSync(values.ca!)), keystore, values.id, values.code)
    console.log(`claimed ${values.id} for ${values.owner}; keys in ${keystore.path}`)
} catch (e) {
    // the error text never echoes the code
    console.error((e as Error).message)
    process.exit(1)
}
