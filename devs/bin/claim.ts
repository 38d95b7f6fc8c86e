/**
 * `npm run claim`: asks the owner service to claim a device with the
 * one-time claim code it printed on its console at first boot. The code
 * itself never leaves the service: the registry gets a proof derived from
 * it, and returns the sealed owner envelope, which only the code opens.
 *
 *   npm run claim -- --id <device id> --code <CLAIM-CODE> [--name <name>] [--service URL] [--token-file FILE]
 */
import { runCommand, UsageError } from "../cli/args.ts"
import { CA, DEVICE_ID, deviceId, ownerApi, SERVICE, TOKEN_FILE } from "../cli/options.ts"

const spec = {
    name: "claim",
    summary: "Claims a device with the one-time code it printed at first boot; its keys go into the owner service's store.",
    options: {
        id: DEVICE_ID,
        code: {
            type: "string",
            value: "CLAIM-CODE",
            required: true,
            help: "the claim code the device printed once (never sent to the registry: a proof of it is)",
        },
        name: { type: "string", value: "name", help: "what to call the device (default: the start of its id)" },
        service: SERVICE,
        "token-file": TOKEN_FILE,
        ca: CA,
    },
} as const

await runCommand(spec, async ({ values }) => {
    const id = deviceId(values.id)
    if (!/^[A-Za-z2-7 -]{8,64}$/.test(values.code)) throw new UsageError("--code is the claim code the device printed (base32, in groups)")
    // the error text never echoes the code
    await ownerApi(values).call("POST", "/api/devices/claim", { id, code: values.code, ...(values.name ? { name: values.name } : {}) })
    console.log(`claimed ${id}; its keys are in the owner service's store`)
})
