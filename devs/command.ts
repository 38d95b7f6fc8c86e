/**
 * `devs command`: sends an owner's command to a device, sealed with its down
 * key and the next counter from the keystore.
 *
 *   npx tsx devs/command.ts --owner <name> --id <device id> interval <sensor> <ms>
 *   npx tsx devs/command.ts --owner <name> --id <device id> events|state|update-check
 *       [--broker mqtts://localhost:8883] [--ca var/stack/pki/ca.crt] [--keystore FILE]
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import mqtt from "mqtt"
import { sealCommand, type Command } from "./owner/commands.ts"
import { Keystore } from "./owner/keystore.ts"

const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
        owner: { type: "string" },
        id: { type: "string" },
        broker: { type: "string", default: "mqtts://localhost:8883" },
        ca: { type: "string", default: "var/stack/pki/ca.crt" },
        keystore: { type: "string" },
    },
})

function parseCommand(words: string[]): Command | undefined {
    if (words[0] === "interval" && words.length === 3 && /^\d+$/.test(words[2])) return { cmd: "interval", sensor: words[1], ms: Number(words[2]) }
    if (words.length === 1 && (words[0] === "events" || words[0] === "state" || words[0] === "update-check")) return { cmd: words[0] }
    return undefined
}

const command = parseCommand(positionals)
if (!values.owner || !values.id || !command) {
    console.error("usage: devs/command.ts --owner <name> --id <device id> (interval <sensor> <ms> | events | state | update-check)")
    process.exit(2)
}
const keystore = Keystore.open(values.keystore ?? `var/owner/${values.owner}.json`, values.owner)
const login = keystore.data.broker
if (!login) {
    console.error(`${keystore.path} has no broker login: claim a device first`)
    process.exit(1)
}
const { topic, payload } = await sealCommand(keystore, values.id, command)
const client = await mqtt.connectAsync(values.broker!, { ...login, ca: readFileSync(values.ca!), reconnectPeriod: 0 })
await client.publishAsync(topic, payload, { qos: 1 })
await client.endAsync()
console.log(`sent ${command.cmd} to ${values.id} (counter ${keystore.device(values.id)!.downCounter}); replies arrive on its up topics`)
