/**
 * An owner service on a local stack, for the owner tests: Mosquitto, the
 * registry over HTTPS, the owner service over HTTP with a console password
 * and its API token, every log line kept (so tests can look for secrets),
 * and devices emulated on the host that publish what a device publishes.
 */
import { randomBytes } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import mqtt, { type MqttClient } from "mqtt"
import { encode } from "cbor2"
import { sealEncrypt0 } from "../../../devs/owner/cose.ts"
import { channelKeys, ownerRoot } from "../../../devs/owner/keys.ts"
import { runOwnerService, type RunningOwner } from "../../../devs/owner/run.ts"
import { freePort } from "../../../devs/net/ports.ts"
import { enroll, inProcessTransport, login } from "../../../devs/registry/client.ts"
import { makeHostDevice, type HostDevice } from "../../../devs/sim/host-device.ts"
import { startLocalStack, type LocalStack } from "../../../devs/stack/local.ts"

/** A device emulated on the host: enrolled, logged in to the broker, sealing as the firmware seals. */
export interface EmulatedDevice extends HostDevice {
    root: Buffer
    client: MqttClient
    /** Seals a payload for one of its up topics with a counter. */
    seal(kind: "readings" | "events" | "state" | "update", plaintext: Uint8Array, counter: number, kid?: Buffer): Promise<Buffer>
    /** A SenML pack of `n` readings, as the firmware encodes them. */
    readings(n: number, base?: number): Uint8Array
    /** Logs in (once claimed) and connects to the broker with its login. */
    connect(): Promise<void>
    close(): Promise<void>
}

/** A running owner service on its own stack. */
export interface OwnerStack {
    stack: LocalStack
    owner: RunningOwner
    /** Every line the stack and the owner service logged. */
    log: string[]
    password: string
    token: string
    tokenPath: string
    /** The devices made so far. */
    devices: EmulatedDevice[]
    /** A new enrolled device, not yet claimed. */
    device(): Promise<EmulatedDevice>
    stop(): Promise<void>
}

/** Starts a local stack (free ports) and an owner service named `name` on it. */
export async function startOwnerStack(dir: string, name = "alice", options: { onlineMs?: number } = {}): Promise<OwnerStack> {
    const log: string[] = []
    const stack = await startLocalStack({
        dir,
        brokerPort: await freePort(),
        registryPort: await freePort(),
        updatesPort: await freePort(),
        onLog: (_s, line) => log.push(line),
    })
    const password = randomBytes(12).toString("base64url")
    const passwordFile = join(dir, "console-password")
    writeFileSync(passwordFile, password, { mode: 0o600 })
    const tokenPath = join(dir, "owner", "api-token")
    const ca = readFileSync(stack.pki.caCert)
    const owner = await runOwnerService({
        storePath: join(dir, "owner", "owner.db"),
        tokenPath,
        name,
        registryUrl: `https://localhost:${stack.registryPort}`,
        ca,
        brokerUrl: `mqtts://localhost:${stack.broker.port}`,
        port: 0,
        passwordFile,
        onlineMs: options.onlineMs,
        log: line => log.push(line),
    })
    const devices: EmulatedDevice[] = []
    const device = async (): Promise<EmulatedDevice> => {
        const { device: d, enrollment } = await makeHostDevice()
        const t = inProcessTransport(stack.registry)
        await enroll(t, enrollment)
        const root = ownerRoot(d.password, d.id)
        const up = channelKeys(root, d.id, "up")
        let client: MqttClient | undefined
        const e: EmulatedDevice = {
            ...d,
            root,
            get client() {
                if (!client) throw new Error("connect after the claim")
                return client
            },
            seal: (kind, plaintext, counter, kid = up.kid) =>
                sealEncrypt0(Buffer.from(plaintext), {
                    key: up.key,
                    kid,
                    contextIv: up.contextIv,
                    counter,
                    externalAad: Buffer.from(`things/${d.id}/up/${kind}`),
                }),
            readings: (n, base = 20) =>
                encode(
                    Array.from(
                        { length: n },
                        (_, i) =>
                            new Map<number, unknown>([
                                ...(i === 0 ? ([[-2, `urn:dev:sentinel:${d.id}:`]] as [number, unknown][]) : []),
                                [0, `shtc3/temperature`],
                                [1, "Cel"],
                                [2, base + i / 4],
                                [6, -i],
                            ])
                    )
                ),
            connect: async () => {
                const grant = (await login(t, d.id, d.password)).body.broker as { username: string; password: string }
                // a broker login is bound to its username as client id (devs/broker/dynsec.ts)
                client = await mqtt.connectAsync(`mqtts://localhost:${stack.broker.port}`, {
                    ...grant,
                    clientId: grant.username,
                    ca,
                    reconnectPeriod: 0,
                })
            },
            close: async () => void (await client?.endAsync()),
        }
        devices.push(e)
        return e
    }
    return {
        stack,
        owner,
        log,
        password,
        token: readFileSync(tokenPath, "utf8").trim(),
        tokenPath,
        devices,
        device,
        stop: async () => {
            for (const d of devices) await d.close()
            await owner.stop()
            await stack.stop()
        },
    }
}
