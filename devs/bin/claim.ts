/**
 * `npm run claim`: the owner claims a device with the one-time claim code it
 * printed on its console at first boot. The code itself is never sent: the
 * registry gets a proof derived from it, and returns the sealed owner
 * envelope, which only the code opens. The keys land in the owner's keystore.
 *
 *   npm run claim -- --id <device id> --code <CLAIM-CODE> --owner <name>
 *       [--registry https://localhost:8443] [--ca var/stack/pki/ca.crt] [--keystore var/owner/<name>.json]
 */
import { runCommand } from "../cli/args.ts"
import { CA, DEVICE_ID, deviceId, KEYSTORE, openKeystore, OWNER, readCa, REGISTRY } from "../cli/options.ts"
import { claimDevice } from "../owner/claim.ts"
import { httpsTransport } from "../registry/client.ts"

const spec = {
    name: "claim",
    summary: "Claims a device with the one-time code it printed at first boot; its keys go into the owner's keystore.",
    options: {
        id: DEVICE_ID,
        code: {
            type: "string",
            value: "CLAIM-CODE",
            required: true,
            help: "the claim code the device printed once (never sent: a proof of it is)",
        },
        owner: OWNER,
        registry: REGISTRY,
        ca: CA,
        keystore: KEYSTORE,
    },
} as const

await runCommand(spec, async ({ values }) => {
    const id = deviceId(values.id)
    const keystore = openKeystore(values)
    // the error text never echoes the code
    await claimDevice(httpsTransport(values.registry, readCa(values.ca)), keystore, id, values.code)
    console.log(`claimed ${id} for ${values.owner}; keys in ${keystore.path}`)
})
