/**
 * `npm run consume`: prints what the owner's devices publish as the owner
 * service verified and decrypted it, and every message it rejected with the
 * reason. Runs until Ctrl-C.
 *
 *   npm run consume -- [--service URL] [--token-file FILE]
 */
import { CommandError, runCommand } from "../cli/args.ts"
import { CA, ownerApi, SERVICE, TOKEN_FILE } from "../cli/options.ts"
import { describeEvent } from "../owner/describe.ts"

const spec = {
    name: "consume",
    summary:
        "Prints what the owner's devices publish, verified and decrypted by the owner service, and why it rejects anything.\n" +
        "Runs until Ctrl-C.",
    options: { service: SERVICE, "token-file": TOKEN_FILE, ca: CA },
} as const

await runCommand(spec, async ({ values }) => {
    const api = ownerApi(values)
    const { devices } = await api.call<{ devices: unknown[] }>("GET", "/api/devices")
    console.log(`following ${devices.length} device(s) through ${values.service}`)
    const abort = new AbortController()
    process.on("SIGINT", () => abort.abort())
    const stopped = await api.stream(e => {
        const line = describeEvent(e)
        if (line) console.log(line)
    }, abort.signal)
    if (!stopped) throw new CommandError(`the owner service at ${values.service} ended the stream: is it still running?`)
})
