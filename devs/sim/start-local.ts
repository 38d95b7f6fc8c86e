/**
 * What `npm start` does: the firmware in the DeviceScript simulator against
 * the local stack, with the owner at the console.
 *
 * Starts the local stack (private CA, Mosquitto with TLS and dynamic
 * security, the registry over HTTPS, the update service; state in the
 * git-ignored `var/stack`), the DeviceScript devtools server (which the
 * simulator needs outside test mode), hands the update service the owner's
 * root and key list (var/keys, made on a fresh clone), then builds
 * src/main.ts, publishes the image (signed with the current release key, one
 * sequence above the newest, so the device runs a release it can be rolled back to),
 * runs it in the simulator, trusting the local CA, and prints what the device
 * prints (`device>`). Playing the owner at the console, it claims the device
 * with the code it shows (owner "local", keystore var/owner/local.json) and
 * consumes its messages, verified and decrypted (`owner>`). Ctrl-C stops
 * everything it started; so does the end of the simulator or devtools server.
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { portInUse } from "../net/ports.ts"
import { claimDevice } from "../owner/claim.ts"
import { ConsoleClaimer } from "../owner/console-claimer.ts"
import { Keystore } from "../owner/keystore.ts"
import { describeVerified, subscribeAsOwner, type OwnerSubscriber } from "../owner/subscriber.ts"
import { ownerKeystorePath, PROJECT_ROOT, REGISTRY_PORT, stackFiles } from "../project.ts"
import { httpsTransport } from "../registry/client.ts"
import { startLocalStack, type LocalStack } from "../stack/local.ts"
import type { SigningKey } from "../updates/cose-sign1.ts"
import { ensureKeyring, publishDocuments } from "../updates/keyring.ts"
import { CLASS_ID, manifestFor, signManifest } from "../updates/manifest.ts"
import { buildImage, deviceLine, powerCutEnv, runDevs, startDevtools, type Devtools } from "./devs-cli.ts"

/** The owner `npm start` plays. */
const OWNER = "local"

/** The ports `npm start` serves on (the well-known ones of devs/project.ts unless told otherwise). */
export interface StartPorts {
    registry: number
    broker: number
    updates: number
    /** The devtools dashboard; its bus and debugger ports are free ones. */
    devtools: number
}

/** Runs until Ctrl-C, or until the simulator or the devtools server ends; sets the exit code. */
export async function startLocal(ports: StartPorts): Promise<void> {
    let stack: LocalStack | undefined
    let owner: OwnerSubscriber | undefined
    let devtools: Devtools | undefined
    const simulator = new AbortController()
    let stopping = false
    const stop = (code: number) => {
        if (stopping) return
        stopping = true
        process.exitCode = code
        devtools?.process.kill("SIGTERM")
        simulator.abort()
        void (owner ? owner.close() : Promise.resolve()).finally(() => stack?.stop())
    }
    try {
        if (await portInUse(ports.devtools))
            throw new Error(`port ${ports.devtools} is taken: is another devtools server (or npm start) running?`)
        // the broker must not outlive us, however we end
        process.on("exit", () => stack?.broker.process.kill("SIGKILL"))
        process.on("SIGINT", () => stop(0))
        process.on("SIGTERM", () => stop(0))
        const keyring = ensureKeyring()
        const files = stackFiles()
        console.log("starting the local stack (CA, Mosquitto, registry, update service) in var/stack…")
        stack = await startLocalStack({
            dir: files.dir,
            registryPort: ports.registry,
            brokerPort: ports.broker,
            updatesPort: ports.updates,
        })
        console.log(`registry https://localhost:${stack.registryPort}, broker mqtts://localhost:${stack.broker.port}`)
        for (const d of publishDocuments(stack.updates, keyring.documents()))
            console.log(`published ${d.kind === "root" ? "root" : "key list"} ${d.version} of var/keys to the update service`)
        console.log("starting the DeviceScript devtools server…")
        devtools = await startDevtools(PROJECT_ROOT, ports.devtools)
        console.log(`devtools dashboard http://localhost:${ports.devtools}/`)
        devtools.process.on("exit", code => {
            if (!stopping) console.error(`the devtools server exited (${code}); stopping`)
            stop(1)
        })
        const keystore = Keystore.open(ownerKeystorePath(OWNER), OWNER)
        const ca = readFileSync(stack.pki.caCert)
        const consume = async () => {
            owner ??= await subscribeAsOwner({
                url: `mqtts://localhost:${stack!.broker.port}`,
                ca,
                keystore,
                onVerified: m => console.log(`owner> ${describeVerified(m)}`),
                onRejected: (r, topic) => console.log(`owner> REJECTED ${topic}: ${r.reason}: ${r.message}`),
            })
        }
        if (keystore.data.broker) await consume()
        const image = await publishLocalBuild(stack, keyring.releaseKey(), files.localBuild)
        console.log("running src/main.ts in the simulator (Ctrl-C to stop)")
        const registry = httpsTransport(`https://localhost:${stack.registryPort}`, ca)
        const claimer = new ConsoleClaimer(async (id, code) => {
            await claimDevice(registry, keystore, id, code)
            console.log(`owner> claimed ${id} as "${OWNER}" (keys in ${keystore.path})`)
            await consume()
            await owner!.follow(id)
        })
        const ended = await runDevs(["run", image], {
            // Ctrl-C may fall in the middle of a flash save: keep the flash file whole
            env: { ...powerCutEnv(), NODE_EXTRA_CA_CERTS: stack.pki.caCert },
            // the firmware expects the registry on the well-known port
            ports: { ...devtools.ports, [REGISTRY_PORT]: stack.registryPort },
            signal: simulator.signal,
            onLine: line => {
                const text = deviceLine(line)
                if (text === undefined) {
                    if (/error/i.test(line)) console.error(line)
                    return
                }
                console.log(`device> ${text}`)
                claimer.onLine(text)?.catch(e => console.error(`owner> claim failed: ${(e as Error).message}`))
            },
        })
        if (!stopping) console.error(`the simulator exited (${ended.code}); stopping`)
        stop(1)
    } catch (e) {
        stop(1)
        throw e
    }
}

/**
 * Builds the firmware into `path` and publishes it signed, one sequence above the newest
 * image of its class (an image already published is left as it is). Returns the image's path.
 */
async function publishLocalBuild(stack: LocalStack, key: SigningKey, path: string): Promise<string> {
    const image = await buildImage("src/main.ts", path)
    const digest = createHash("sha256").update(image).digest("hex")
    if (!stack.registry.store.getFirmwareImage(digest)) {
        const sequence = (stack.registry.store.latestFirmwareImage(CLASS_ID.toString("hex"))?.sequence ?? 0) + 1
        stack.updates.publish(signManifest(manifestFor(image, sequence), key), image)
        console.log(`published this build as sequence ${sequence} (sha256 ${digest.slice(0, 16)}…); sign releases above it`)
    }
    return path
}
