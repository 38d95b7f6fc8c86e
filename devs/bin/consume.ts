/**
 * `npm run consume`: reads what the owner's devices publish, verified and
 * decrypted with cose-js, and prints it as SenML; forged, tampered and
 * replayed messages are rejected with the reason. Runs until Ctrl-C.
 *
 *   npm run consume -- --owner <name> [--broker mqtts://localhost:8883] [--ca var/stack/pki/ca.crt] [--keystore FILE]
 */
import { runCommand } from "../cli/args.ts"
import { BROKER, brokerLogin, CA, KEYSTORE, openKeystore, OWNER, readCa } from "../cli/options.ts"
import { describeVerified, subscribeAsOwner } from "../owner/subscriber.ts"

const spec = {
    name: "consume",
    summary: "Prints what the owner's devices publish, verified and decrypted; says why it rejects anything. Runs until Ctrl-C.",
    options: { owner: OWNER, broker: BROKER, ca: CA, keystore: KEYSTORE },
} as const

await runCommand(spec, async ({ values }) => {
    const keystore = openKeystore(values)
    brokerLogin(keystore)
    const sub = await subscribeAsOwner({
        url: values.broker,
        ca: readCa(values.ca),
        keystore,
        onVerified: m => console.log(describeVerified(m)),
        onRejected: (r, topic) => console.log(`REJECTED ${topic}: ${r.reason}: ${r.message}`),
    })
    console.log(`following ${Object.keys(keystore.data.devices).length} device(s) as ${values.owner}`)
    process.on("SIGINT", () => void sub.close().then(() => process.exit(0)))
})
