/**
 * `npm start`: the firmware in the DeviceScript simulator against the local stack.
 *
 * Starts the local stack (private CA, Mosquitto with TLS and dynamic
 * security, the registry over HTTPS; state in the git-ignored `var/stack`),
 * the DeviceScript devtools server (which the simulator needs outside test
 * mode), then builds src/main.ts, publishes the image to the update service
 * (signed with the owner's key, one sequence above the newest, so the device
 * runs a release it can be rolled back to), runs it in the simulator, trusting the local CA, and
 * prints what the device prints (`device>`). Playing the owner at the console,
 * it claims the device with the code it shows (owner "local", keystore
 * var/owner/local.json) and consumes its messages, verified and decrypted
 * (`owner>`). Ctrl-C stops everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { readFileSync } from "node:fs"
import { claimDevice } from "../owner/claim.ts"
import { ConsoleClaimer } from "../owner/console-claimer.ts"
import { Keystore } from "../owner/keystore.ts"
import { describeVerified, subscribeAsOwner, type OwnerSubscriber } from "../owner/subscriber.ts"
import { httpsTransport } from "../registry/client.ts"
import { DEVTOOLS_PORT, ownerKeystorePath, PROJECT_ROOT, stackFiles } from "../project.ts"
import { devsBin, forEachLine } from "../tools/devs-cli.ts"
import { createHash } from "node:crypto"
import { buildImage } from "../tools/sim-device.ts"
import { CLASS_ID, manifestFor, signManifest } from "../updates/manifest.ts"
import { ensureSigningKey, type SigningKey } from "../updates/signing-key.ts"
import { startLocalStack, type LocalStack } from "./local.ts"
import { portInUse, waitForPort } from "../net/ports.ts"

const children: ChildProcess[] = []
let stack: LocalStack | undefined
let owner: OwnerSubscriber | undefined
const OWNER = "local"

function start(name: string, args: string[], onLine: (line: string) => void, env: Record<string, string> = {}): ChildProcess {
    const child = spawn(devsBin(), args, { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
    children.push(child)
    forEachLine(child.stdout!, onLine)
    forEachLine(child.stderr!, onLine)
    child.on("exit", code => {
        if (!stopping) {
            console.error(`${name} exited (${code}); stopping`)
            stop(1)
        }
    })
    return child
}

let stopping = false
function stop(code: number) {
    if (stopping) return
    stopping = true
    for (const c of children) c.kill("SIGTERM")
    process.exitCode = code
    void (owner ? owner.close() : Promise.resolve()).finally(() => stack?.stop())
}

async function main() {
    if (await portInUse(DEVTOOLS_PORT)) throw new Error(`port ${DEVTOOLS_PORT} is taken: is another devtools server running?`)
    // the broker must not outlive us, however we end
    process.on("exit", () => stack?.broker.process.kill("SIGKILL"))
    process.on("SIGINT", () => stop(0))
    process.on("SIGTERM", () => stop(0))
    const key = ensureSigningKey()
    console.log("starting the local stack (CA, Mosquitto, registry, update service) in var/stack…")
    stack = await startLocalStack({ dir: stackFiles().dir })
    console.log(`registry https://localhost:${stack.registryPort}, broker mqtts://localhost:${stack.broker.port}`)
    console.log("starting the DeviceScript devtools server…")
    start("devtools", ["devtools"], () => {})
    await waitForPort(DEVTOOLS_PORT, 30000)
    const keystore = Keystore.open(ownerKeystorePath(OWNER), OWNER)
    const ca = readFileSync(stack.pki.caCert)
    const brokerUrl = `mqtts://localhost:${stack.broker.port}`
    const consume = async () => {
        owner ??= await subscribeAsOwner({
            url: brokerUrl,
            ca,
            keystore,
            onVerified: m => console.log(`owner> ${describeVerified(m)}`),
            onRejected: (r, topic) => console.log(`owner> REJECTED ${topic}: ${r.reason}: ${r.message}`),
        })
    }
    if (keystore.data.broker) await consume()
    const image = await publishLocalBuild(stack, key)
    console.log("running src/main.ts in the simulator (Ctrl-C to stop)")
    const claimer = new ConsoleClaimer(async (id, code) => {
        await claimDevice(httpsTransport(`https://localhost:${stack!.registryPort}`, ca), keystore, id, code)
        console.log(`owner> claimed ${id} as "${OWNER}" (keys in var/owner/${OWNER}.json)`)
        await consume()
        await owner!.follow(id)
    })
    start(
        "simulator",
        ["run", image],
        line => {
            if (!line.startsWith("WASM> ")) {
                if (/error/i.test(line)) console.error(line)
                return
            }
            const text = line.slice(6)
            console.log(`device> ${text}`)
            claimer.onLine(text)?.catch(e => console.error(`owner> claim failed: ${(e as Error).message}`))
        },
        { NODE_EXTRA_CA_CERTS: stack.pki.caCert }
    )
}

/**
 * Builds the firmware and publishes it signed, one sequence above the newest
 * image of its class (an image already published is left as it is). Returns the image's path.
 */
async function publishLocalBuild(stack: LocalStack, key: SigningKey): Promise<string> {
    const path = stackFiles().localBuild
    const image = await buildImage("src/main.ts", path)
    const digest = createHash("sha256").update(image).digest("hex")
    if (!stack.registry.store.getFirmwareImage(digest)) {
        const sequence = (stack.registry.store.latestFirmwareImage(CLASS_ID.toString("hex"))?.sequence ?? 0) + 1
        stack.updates.publish(signManifest(manifestFor(image, sequence), key.secretKey, key.publicKey), image)
        console.log(`published this build as sequence ${sequence} (sha256 ${digest.slice(0, 16)}…); sign releases above it`)
    }
    return path
}

main().catch(e => {
    console.error(e instanceof Error ? e.message : e)
    stop(1)
})
