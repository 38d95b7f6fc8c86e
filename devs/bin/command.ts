/**
 * `npm run command`: sends an owner's command to a device, sealed with its
 * down key and the next counter from the keystore. The device answers on its
 * up topics (see `npm run consume`).
 *
 *   npm run command -- --owner <name> --id <device id> interval <sensor> <ms>
 *   npm run command -- --owner <name> --id <device id> update <image sha256> <sequence>
 *   npm run command -- --owner <name> --id <device id> events|state|update-check
 *       [--broker mqtts://localhost:8883] [--ca var/stack/pki/ca.crt] [--keystore FILE]
 */
import mqtt from "mqtt"
import { runCommand, UsageError } from "../cli/args.ts"
import { BROKER, brokerLogin, CA, DEVICE_ID, deviceId, KEYSTORE, openKeystore, ownedDevice, OWNER, readCa } from "../cli/options.ts"
import { sealCommand, type Command } from "../owner/commands.ts"
import { updateCommand } from "../updates/report.ts"

const COMMANDS = "interval <sensor> <ms> | update <sha256> <sequence> | events | state | update-check"

const spec = {
    name: "command",
    summary: "Sends a device a command sealed with its down key; it answers on its up topics (npm run consume).",
    positionals: { usage: `(${COMMANDS})`, min: 1, max: 3 },
    options: { owner: OWNER, id: DEVICE_ID, broker: BROKER, ca: CA, keystore: KEYSTORE },
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
function parseCommand(words: string[]): Command {
    const [cmd, ...rest] = words
    if (cmd === "interval") {
        if (rest.length !== 2 || !/^\d+$/.test(rest[1])) throw new UsageError(`interval needs <sensor> <ms>, e.g. interval shtc3 7000`)
        return { cmd, sensor: rest[0], ms: Number(rest[1]) }
    }
    if (cmd === "update") {
        if (rest.length !== 2 || !/^[0-9a-f]{64}$/.test(rest[0]) || !/^[1-9]\d{0,9}$/.test(rest[1]))
            throw new UsageError("update needs the image's <sha256> (64 hex digits) and its <sequence>")
        return updateCommand(rest[0], Number(rest[1]))
    }
    if (cmd !== "events" && cmd !== "state" && cmd !== "update-check") throw new UsageError(`unknown command ${cmd}: ${COMMANDS}`)
    if (rest.length) throw new UsageError(`${cmd} takes no arguments`)
    return { cmd }
}

await runCommand(spec, async ({ values, positionals }) => {
    const command = parseCommand(positionals)
    const id = deviceId(values.id)
    const keystore = openKeystore(values)
    const login = brokerLogin(keystore)
    ownedDevice(keystore, id)
    const client = await mqtt.connectAsync(values.broker, {
        ...login,
        // the broker binds each login to one client id, its username (devs/broker/dynsec.ts)
        clientId: login.username,
        ca: readCa(values.ca),
        reconnectPeriod: 0,
    })
    const { topic, payload } = await sealCommand(keystore, id, command)
    await client.publishAsync(topic, payload, { qos: 1 })
    await client.endAsync()
    console.log(`sent ${command.cmd} to ${id} (counter ${ownedDevice(keystore, id).downCounter}); replies arrive on its up topics`)
})
