/**
 * What `npm start` does: the firmware in the DeviceScript simulator against
 * the local stack, with the owner at the console.
 *
 * Starts the local stack (private CA, Mosquitto with TLS and dynamic
 * security, the registry over HTTPS, the update service; state in the
 * git-ignored `var/stack`), the DeviceScript devtools server (which the
 * simulator needs outside test mode), then builds src/main.ts, publishes the
 * image to the update service (signed with the owner's key, one sequence
 * above the newest, so the device runs a release it can be rolled back to),
 * runs it in the simulator, trusting the local CA, and prints what the device
 * prints (`device>`). The owner service (devs/owner, store var/owner/owner.db,
 * owner "local") runs with its API and console on 127.0.0.1:8080; playing
 * the owner at the device's console, it claims the device with the code it
 * shows, and prints what the service verified and stored (`owner>`). A
 * keystore of the CLIs before the service (var/owner/local.json) is moved
 * into the store on the first run. Ctrl-C stops everything it started; so
 * does the end of the simulator or devtools server.
 */
import type { ChildProcess } from "node:child_process"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { portInUse } from "../net/ports.ts"
import { existsSync } from "node:fs"
import { ConsoleClaimer } from "../owner/console-claimer.ts"
import { describeEvent } from "../owner/describe.ts"
import { migrateKeystore } from "../owner/keystore-migration.ts"
import { runOwnerService, type RunningOwner } from "../owner/run.ts"
import { OwnerStore } from "../owner/store.ts"
import { DEVTOOLS_PORT, OWNER_FILES, OWNER_PORT, ownerKeystorePath, PROJECT_ROOT, stackFiles } from "../project.ts"
import { startLocalStack, type LocalStack } from "../stack/local.ts"
import { CLASS_ID, manifestFor, signManifest } from "../updates/manifest.ts"
import { ensureSigningKey, type SigningKey } from "../updates/signing-key.ts"
import { buildImage, deviceLine, powerCutEnv, runDevs, startDevtools } from "./devs-cli.ts"

/** The owner `npm start` plays. */
const OWNER = "local"

/** Runs until Ctrl-C, or until the simulator or the devtools server ends; sets the exit code. */
export async function startLocal(): Promise<void> {
    let stack: LocalStack | undefined
    let owner: RunningOwner | undefined
    let devtools: ChildProcess | undefined
    const simulator = new AbortController()
    let stopping = false
    const stop = (code: number) => {
        if (stopping) return
        stopping = true
        process.exitCode = code
        devtools?.kill("SIGTERM")
        simulator.abort()
        void (owner ? owner.stop() : Promise.resolve()).finally(() => stack?.stop())
    }
    try {
        if (await portInUse(DEVTOOLS_PORT))
            throw new Error(`port ${DEVTOOLS_PORT} is taken: is another devtools server (or npm start) running?`)
        // the broker must not outlive us, however we end
        process.on("exit", () => stack?.broker.process.kill("SIGKILL"))
        process.on("SIGINT", () => stop(0))
        process.on("SIGTERM", () => stop(0))
        const key = ensureSigningKey()
        const files = stackFiles()
        console.log("starting the local stack (CA, Mosquitto, registry, update service) in var/stack…")
        stack = await startLocalStack({ dir: files.dir })
        console.log(`registry https://localhost:${stack.registryPort}, broker mqtts://localhost:${stack.broker.port}`)
        console.log("starting the DeviceScript devtools server…")
        devtools = await startDevtools(PROJECT_ROOT)
        devtools.on("exit", code => {
            if (!stopping) console.error(`the devtools server exited (${code}); stopping`)
            stop(1)
        })
        owner = await startOwner(stack)
        const image = await publishLocalBuild(stack, key, files.localBuild)
        console.log("running src/main.ts in the simulator (Ctrl-C to stop)")
        const service = owner.service
        const claimer = new ConsoleClaimer(async (id, code) => {
            if (service.follows(id)) return
            await service.claim(id, code)
        })
        const ended = await runDevs(["run", image], {
            // Ctrl-C may fall in the middle of a flash save: keep the flash file whole
            env: { ...powerCutEnv(), NODE_EXTRA_CA_CERTS: stack.pki.caCert },
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

/** Starts the owner service on var/owner (moving an older keystore into its store first) and prints what it stores. */
async function startOwner(stack: LocalStack): Promise<RunningOwner> {
    const keystore = ownerKeystorePath(OWNER)
    if (existsSync(keystore)) {
        const store = new OwnerStore(OWNER_FILES.store)
        try {
            if (!store.account() && store.devices().length === 0) {
                const { devices } = migrateKeystore(keystore, store)
                console.log(`moved ${devices.length} device(s) from ${keystore} into ${OWNER_FILES.store}`)
            }
        } finally {
            store.close()
        }
    }
    const owner = await runOwnerService({
        storePath: OWNER_FILES.store,
        tokenPath: OWNER_FILES.apiToken,
        name: OWNER,
        registryUrl: `https://localhost:${stack.registryPort}`,
        ca: readFileSync(stack.pki.caCert),
        brokerUrl: `mqtts://localhost:${stack.broker.port}`,
        port: OWNER_PORT,
        log: line => console.log(`owner> ${line}`),
    })
    for (const kind of ["reading", "state", "event", "command", "rejection"] as const)
        owner.service.on(kind, (data: unknown) => {
            const line = describeEvent({ event: kind, data })
            if (line) console.log(`owner> ${line}`)
        })
    console.log(`owner console ${owner.url} (CLIs: npm run claim|command|consume|bridge -- --help)`)
    if (owner.setupUrl) console.log(`set the console password once, at ${owner.setupUrl}`)
    return owner
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
        stack.updates.publish(signManifest(manifestFor(image, sequence), key.secretKey, key.publicKey), image)
        console.log(`published this build as sequence ${sequence} (sha256 ${digest.slice(0, 16)}…); sign releases above it`)
    }
    return path
}
