/**
 * `devs consume`: reads what the owner's devices publish, verified and
 * decrypted with cose-js, and prints it as SenML; forged, tampered and
 * replayed messages are rejected with the reason.
 *
 *   npx tsx devs/consume.ts --owner <name> [--broker mqtts://localhost:8883] [--ca var/stack/pki/ca.crt] [--keystore FILE]
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { Keystore } from "./owner/keystore.ts"
import { describeVerified, subscribeAsOwner } from "./owner/subscriber.ts"

const { values } = parseArgs({
    options: {
        owner: { type: "string" },
        broker: { type: "string", default: "mqtts://localhost:8883" },
        ca: { type: "string", default: "var/stack/pki/ca.crt" },
        keystore: { type: "string" },
    },
})
if (!values.owner) {
    console.error("usage: devs/consume.ts --owner <name> [--broker URL] [--ca FILE] [--keystore FILE]")
    process.exit(2)
}
const keystore = Keystore.open(values.keystore ?? `var/owner/${values.owner}.json`, values.owner)
const sub = await subscribeAsOwner({
    url: values.broker!,
    ca: readFileSync(values.ca!),
    keystore,
    onVerified: m => console.log(describeVerified(m)),
    onRejected: (r, topic) => console.log(`REJECTED ${topic}: ${r.reason}: ${r.message}`),
})
console.log(`following ${Object.keys(keystore.data.devices).length} device(s) as ${values.owner}`)
process.on("SIGINT", () => void sub.close().then(() => process.exit(0)))
