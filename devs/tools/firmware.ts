/**
 * Runs the real firmware (src/main.ts) in the simulator against a local
 * stack, plays its owner (claims it from its console, consumes as the owner),
 * and records what it prints and what the owner verified, with host times.
 * Used by the end-to-end tests and the benchmarks.
 */
import { randomBytes } from "node:crypto"
import { join } from "node:path"
import { readFileSync } from "node:fs"
import type { DevsResult } from "./devs-cli.ts"
import { runInSimulator } from "./devs-cli.ts"
import { claimDevice } from "../owner/claim.ts"
import { ConsoleClaimer } from "../owner/console-claimer.ts"
import type { Rejected, Verified } from "../owner/consumer.ts"
import { Keystore } from "../owner/keystore.ts"
import { subscribeAsOwner, type OwnerSubscriber } from "../owner/subscriber.ts"
import { httpsTransport } from "../registry/client.ts"
import type { LocalStack } from "../stack/local.ts"

/** A firmware run with its owner. */
export interface FirmwareRun {
    /** Device console lines, without the simulator prefix. */
    lines: string[]
    verified: Verified[]
    /** Host time (ms) at which each verified message arrived, parallel to `verified`. */
    arrivals: number[]
    /** Host time (ms) at which the device printed that it sealed each counter. */
    sealedAt: Map<number, number>
    rejected: { topic: string; rejection: Rejected }[]
    keystore: Keystore
    owner(): OwnerSubscriber
    deviceId(): string
    /** Counters of messages the device sealed, from its console. */
    sealed(): number[]
    /** Security events the device recorded: "kind: detail". */
    events(): string[]
    stop(): Promise<DevsResult>
}

/** Polls `predicate` every 100 ms until it holds; fails after `timeoutMs` with `what` (a function is asked at that moment). */
export async function until(what: string | (() => string), predicate: () => boolean, timeoutMs = 60_000) {
    const end = Date.now() + timeoutMs
    while (!predicate()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`)
        await new Promise(r => setTimeout(r, 100))
    }
}

/** Starts the firmware; `transcript` receives every line of every process. */
export function runFirmware(stack: LocalStack, dir: string, transcript: string[]): FirmwareRun {
    const ca = readFileSync(stack.pki.caCert)
    // a new owner per run: an owner's broker login is handed out once, at its first claim
    const name = `tester-${randomBytes(4).toString("hex")}`
    const keystore = Keystore.open(join(dir, `${name}.json`), name)
    const lines: string[] = []
    const verified: Verified[] = []
    const arrivals: number[] = []
    const sealedAt = new Map<number, number>()
    const rejected: { topic: string; rejection: Rejected }[] = []
    let owner: OwnerSubscriber | undefined
    const claimer = new ConsoleClaimer(async (id, code) => {
        await claimDevice(httpsTransport(`https://localhost:${stack.registryPort}`, ca), keystore, id, code)
        owner = await subscribeAsOwner({
            url: `mqtts://localhost:${stack.broker.port}`,
            ca,
            keystore,
            onVerified: m => {
                verified.push(m)
                arrivals.push(Date.now())
            },
            onRejected: (rejection, topic) => rejected.push({ topic, rejection }),
        })
    })
    const abort = new AbortController()
    const done = runInSimulator("src/main.ts", {
        timeoutMs: 300_000,
        env: { NODE_EXTRA_CA_CERTS: stack.pki.caCert },
        signal: abort.signal,
        onLine: line => {
            transcript.push(line)
            if (!line.startsWith("WASM> ")) return
            const text = line.slice(6)
            lines.push(text)
            const sealed = /^uplink: sealed \w+ #(\d+)/.exec(text)
            if (sealed) sealedAt.set(Number(sealed[1]), Date.now())
            claimer.onLine(text)?.catch(e => transcript.push(`claim failed: ${e}`))
        },
    })
    return {
        lines,
        verified,
        arrivals,
        sealedAt,
        rejected,
        keystore,
        owner: () => owner!,
        deviceId: () => claimer.deviceId,
        sealed: () => lines.map(l => /^uplink: sealed \w+ #(\d+)/.exec(l)).filter(m => m !== null).map(m => Number(m![1])),
        events: () => lines.map(l => /^security event #\d+ (.*)$/.exec(l)).filter(m => m !== null).map(m => m![1]),
        stop: async () => {
            // FIRMWARE_LOG=<file> keeps the whole transcript of a run for debugging a failed test
            if (process.env.FIRMWARE_LOG) (await import("node:fs")).writeFileSync(process.env.FIRMWARE_LOG, transcript.join("\n"))
            abort.abort()
            await owner?.close()
            return await done
        },
    }
}
