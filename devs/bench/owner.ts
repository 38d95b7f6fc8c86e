/**
 * The owner service's throughput (printed, never asserted): messages per
 * second verified, decrypted and stored (SenML of 10 readings each, sealed
 * with cose-js as a device seals them), against raw Mosquitto delivery of
 * payloads of the same size to a subscriber that does nothing, in the same
 * run, over the same TLS listener with the same QoS 1.
 *
 * Rounds alternate raw and verified, each below Mosquitto's default queue of
 * 1000 messages per client (a slow subscriber would otherwise lose some);
 * the ratio printed is the median of the rounds' ratios. The raw rounds use a
 * second device's topic, which the owner service does not follow, so the
 * service is idle while they run.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { encode } from "cbor2"
import mqtt from "mqtt"
import { sealEncrypt0 } from "../owner/cose.ts"
import { channelKeys, ownerRoot } from "../owner/keys.ts"
import { OwnerService } from "../owner/service.ts"
import { OwnerStore } from "../owner/store.ts"
import { enroll, inProcessTransport, login } from "../registry/client.ts"
import { makeHostDevice } from "../sim/host-device.ts"
import { startLocalStack } from "../stack/local.ts"
import { freePort } from "../net/ports.ts"

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Enrolls a host device, logs it in, and returns its broker login. */
async function hostDevice(t: ReturnType<typeof inProcessTransport>) {
    const { device, enrollment } = await makeHostDevice()
    await enroll(t, enrollment)
    return device
}

/** Times `rounds` × `count` messages, raw and through the owner service; prints the rates and their ratio. */
export async function ownerThroughput(count = 900, rounds = 9) {
    const dir = mkdtempSync(join(tmpdir(), "bench-owner-"))
    const stack = await startLocalStack({ dir, brokerPort: await freePort(), registryPort: await freePort(), onLog: () => {} })
    const ca = readFileSync(stack.pki.caCert)
    const url = `mqtts://localhost:${stack.broker.port}`
    const t = inProcessTransport(stack.registry)
    const store = new OwnerStore(join(dir, "owner.db"))
    const service = new OwnerService({
        store,
        registry: t,
        registryUrl: "in-process",
        name: "bench",
        brokerCa: ca,
        brokerUrl: url,
        log: () => {},
    })
    try {
        await service.start()
        const followed = await hostDevice(t)
        const other = await hostDevice(t)
        await service.claim(followed.id, followed.claimCode)
        await service.claim(other.id, other.claimCode)
        // the raw rounds' device is not followed: only the raw subscriber receives its messages
        await service.remove(other.id)
        const grant = async (d: typeof followed) => {
            const granted = (await login(t, d.id, d.password)).body.broker as { username: string; password: string }
            // a broker login is bound to its username as client id (devs/broker/dynsec.ts)
            return { ...granted, clientId: granted.username }
        }
        const pack = Buffer.from(
            encode(
                Array.from(
                    { length: 10 },
                    (_, i) =>
                        new Map<number, unknown>([
                            [0, "s/temperature"],
                            [1, "Cel"],
                            [2, 20 + i / 4],
                            [6, -i],
                        ])
                )
            )
        )
        const seal = async (d: typeof followed, counter: number) => {
            const topic = `things/${d.id}/up/readings`
            const keys = channelKeys(ownerRoot(d.password, d.id), d.id, "up")
            return sealEncrypt0(pack, { key: keys.key, kid: keys.kid, contextIv: keys.contextIv, counter, externalAad: Buffer.from(topic) })
        }
        const payloads = async (d: typeof followed, round: number) => {
            const out: Buffer[] = []
            for (let i = 0; i < count; i++) out.push(await seal(d, round * count + i))
            return out
        }
        /** When the owner service's MQTT session received the last message of a round (before verification). */
        let receivedAt = 0
        let received = 0
        service.mqtt.on("message", () => {
            if (++received % count === 0) receivedAt = performance.now()
        })
        const receivedRates: number[] = []
        const publishAll = async (d: typeof followed, messages: Buffer[], delivered: Promise<void>) => {
            const pub = await mqtt.connectAsync(url, { ...(await grant(d)), ca })
            const topic = `things/${d.id}/up/readings`
            const start = performance.now()
            for (const p of messages) pub.publish(topic, p, { qos: 1 })
            let timer: NodeJS.Timeout | undefined
            const late = new Promise<never>((_, reject) => {
                timer = setTimeout(() => reject(new Error(`a round of ${count} messages not delivered within 60 s`)), 60_000)
            })
            await Promise.race([delivered, late])
            clearTimeout(timer)
            const end = performance.now()
            if (d === followed) receivedRates.push(count / ((receivedAt - start) / 1000))
            await pub.endAsync()
            return count / ((end - start) / 1000)
        }
        const raws: number[] = []
        const verifieds: number[] = []
        const sub = await mqtt.connectAsync(url, { ...stack.broker.admin, ca })
        await sub.subscribeAsync(`things/${other.id}/up/readings`, { qos: 1 })
        for (let round = 0; round < rounds; round++) {
            const raw = await payloads(other, round)
            let received = 0
            const rawDone = new Promise<void>(resolve => {
                const onMessage = () => {
                    if (++received === count) {
                        sub.off("message", onMessage)
                        resolve()
                    }
                }
                sub.on("message", onMessage)
            })
            raws.push(await publishAll(other, raw, rawDone))

            const sealed = await payloads(followed, round)
            const stored = store.readingCount()
            let verified = 0
            // the clock stops once the last message is in the store
            const verifiedDone = new Promise<void>(resolve => {
                const onStored = (s: { verified: number }) => {
                    verified += s.verified
                    if (verified === count) {
                        service.off("stored", onStored)
                        resolve()
                    }
                }
                service.on("stored", onStored)
            })
            verifieds.push(await publishAll(followed, sealed, verifiedDone))
            if (store.readingCount() - stored !== count * 10)
                throw new Error(`stored ${store.readingCount() - stored} readings, not ${count * 10}`)
        }
        await sub.endAsync()
        const ratios = raws.map((r, i) => verifieds[i] / r)
        const rejected = [...service.counts.rejected.values()].reduce((a, b) => a + b, 0)
        console.log(
            `owner service throughput: ${median(verifieds).toFixed(0)} messages/s verified, decrypted and stored ` +
                `vs raw Mosquitto delivery ${median(raws).toFixed(0)} messages/s, ratio ${median(ratios).toFixed(3)} ` +
                `(median of ${rounds} rounds of ${count} messages of ${(await seal(followed, 0)).length} B with 10 readings; ` +
                `ratios ${ratios.map(r => r.toFixed(2)).join(" ")}; ` +
                `the service's MQTT session received at ${median(receivedRates).toFixed(0)}/s; ` +
                `${rejected} rejected)`
        )
    } finally {
        await service.stop()
        store.close()
        await stack.stop()
        rmSync(dir, { recursive: true, force: true })
    }
}
