/**
 * `npm run command`: has the owner service send a device a command, sealed
 * with its down key and the next counter of the service's store. The device
 * answers on its up topics (see `npm run consume`, or the console).
 *
 *   npm run command -- --id <device id> interval <sensor> <ms>
 *   npm run command -- --id <device id> update <image sha256> <sequence>
 *   npm run command -- --id <device id> events|state|update-check   [--service URL] [--token-file FILE]
 */
import { runCommand, UsageError } from "../cli/args.ts"
import { CA, DEVICE_ID, deviceId, ownerApi, SERVICE, TOKEN_FILE } from "../cli/options.ts"
import { parseCommand, type Command } from "../owner/commands.ts"

const COMMANDS = "interval <sensor> <ms> | update <sha256> <sequence> | events | state | update-check"

const spec = {
    name: "command",
    summary: "Has the owner service send a device a command sealed with its down key; it answers on its up topics (npm run consume).",
    positionals: { usage: `(${COMMANDS})`, min: 1, max: 3 },
    options: { id: DEVICE_ID, service: SERVICE, "token-file": TOKEN_FILE, ca: CA },
    notes: [
        "commands:",
        "  interval <sensor> <ms>   sample <sensor> (shtc3, sht30, aht20, bme680, …) every <ms> milliseconds",
        "  events                   send the security event log",
        "  state                    send the sampling intervals and queue state",
        "  update <sha256> <seq>    install the published release with that image SHA-256 and sequence",
        "                           (npm run publish-firmware prints both); the device reports each step on up/update",
        "  update-check             try the release named last again, if the device has not finished with it",
    ],
} as const

/** The command the words name; a `UsageError` for anything else. */
function commandOf(words: string[]): Command {
    const [cmd, ...rest] = words
    if (cmd === "interval") {
        if (rest.length !== 2 || !/^\d+$/.test(rest[1])) throw new UsageError(`interval needs <sensor> <ms>, e.g. interval shtc3 7000`)
        const command = parseCommand({ cmd, sensor: rest[0], ms: Number(rest[1]) })
        if (typeof command === "string") throw new UsageError(command)
        return command
    }
    if (cmd === "update") {
        if (rest.length !== 2 || !/^[0-9a-f]{64}$/.test(rest[0]) || !/^[1-9]\d{0,9}$/.test(rest[1]))
            throw new UsageError("update needs the image's <sha256> (64 hex digits) and its <sequence>")
        const command = parseCommand({ cmd, digest: rest[0], sequence: Number(rest[1]) })
        if (typeof command === "string") throw new UsageError(command)
        return command
    }
    if (cmd !== "events" && cmd !== "state" && cmd !== "update-check") throw new UsageError(`unknown command ${cmd}: ${COMMANDS}`)
    if (rest.length) throw new UsageError(`${cmd} takes no arguments`)
    return { cmd }
}

await runCommand(spec, async ({ values, positionals }) => {
    const command = commandOf(positionals)
    const id = deviceId(values.id)
    const sent = await ownerApi(values).call<{ counter: number }>("POST", `/api/devices/${id}/commands`, command)
    console.log(`sent ${command.cmd} to ${id} (counter ${sent.counter}); replies arrive on its up topics`)
})
