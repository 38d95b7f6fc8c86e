/**
 * Benchmarks of updates over the air (figures only, nothing asserted):
 * - SLH-DSA-SHA2-128s verification of a signed manifest on the VM (simulator
 *   ms and tweakable-hash calls, the operation that dominates it), as ratios
 *   against baselines of the same run: the same number of bare SHA-256 calls
 *   on the VM, and a valid signature against a tampered one; and the sizes of
 *   key, signature and manifest;
 * - a whole v1 -> v2 update in the simulator against the local stack: time
 *   from the owner's `update` command to the new program's confirmation, and the
 *   bytes the deploy moved over WSSK (image, protocol messages, TLS on the wire).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decode, type Tag } from "cbor2"
import { OTA_ANCHOR_PATH, PROJECT_ROOT } from "../project.ts"
import { buildImage, deviceLines, runInSimulator, startDevtools } from "../sim/devs-cli.ts"
import { SimulatedDevice } from "../sim/simulated-device.ts"
import { until } from "../sim/until.ts"
import { manifestFor, signManifest } from "../updates/manifest.ts"
import { ensureKeyring, publishDocuments, writeTrustAnchor } from "../updates/keyring.ts"
import { startLocalStack } from "../stack/local.ts"

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/**
 * Signs a manifest for an image of the firmware's size with the owner's release key
 * and writes it, with the public key, as test/device/fixtures/generated/bench-slh.ts
 * (the SLH-DSA and RAM fixtures read it). Returns the signed manifest.
 */
export function writeBenchManifest(): { signed: Buffer; publicKey: Uint8Array } {
    const key = ensureKeyring().releaseKey()
    const image = Buffer.alloc(83232, 1)
    const signed = signManifest(manifestFor(image, 1), key)
    const dir = join(PROJECT_ROOT, "test/device/fixtures/generated")
    mkdirSync(dir, { recursive: true })
    writeFileSync(
        join(dir, "bench-slh.ts"),
        `export const PUBLIC_KEY = hex\`${Buffer.from(key.publicKey).toString("hex")}\`\n` +
            `export const SIGNED_MANIFEST = hex\`${signed.toString("hex")}\`\n`
    )
    return { signed, publicKey: key.publicKey }
}

/** Verification on the VM, and what a signed manifest weighs. */
export async function slhDsaOnDevice() {
    const { signed, publicKey } = writeBenchManifest()
    const [, , payload, signature] = (decode(signed) as Tag).contents as Uint8Array[]
    const run = await runInSimulator("test/device/fixtures/bench-slh.ts", { timeoutMs: 120_000 })
    const lines = deviceLines(run.output)
    const rows = lines
        .map(l => /^slh-bench (\d+) (\d+) (accept|reject) (valid|tampered)$/.exec(l))
        .filter(m => m !== null)
        .map(m => ({ ms: Number(m![1]), calls: Number(m![2]), ok: m![3] === "accept", tampered: m![4] === "tampered" }))
    const floors = lines
        .map(l => /^slh-floor (\d+) (\d+)$/.exec(l))
        .filter(m => m !== null)
        .map(m => ({ ms: Number(m![1]), calls: Number(m![2]) }))
    const valid = rows.filter(r => !r.tampered)
    const tampered = rows.filter(r => r.tampered)
    // a valid signature must verify and a tampered one must not, or the figures measure something else
    if (!valid.length || !tampered.length || floors.length !== valid.length || rows.some(r => r.ok === r.tampered))
        throw new Error(`SLH-DSA bench failed:\n${run.output}`)
    const validMs = median(valid.map(r => r.ms))
    const tamperedMs = median(tampered.map(r => r.ms))
    const floorMs = median(floors.map(f => f.ms))
    const ratio = (a: number, b: number) => (a / Math.max(1, b)).toFixed(2)
    // each verification against the floor measured right after it
    const ratios = valid.map((r, i) => r.ms / Math.max(1, floors[i].ms)).sort((a, b) => a - b)
    console.log(
        `SLH-DSA-SHA2-128s verify on the VM (simulator): median ${validMs} ms over ${valid.length} runs ` +
            `(${valid.map(r => r.ms).join(", ")}), ${median(valid.map(r => r.calls))} tweakable-hash calls (SHA-256 each)`
    )
    console.log(
        `  its hash floor (the same count of bare SHA-256 calls on inputs of the same sizes, same run): median ${floorMs} ms ` +
            `(${floors.map(f => f.ms).join(", ")}); verify/floor ${ratio(validMs, floorMs)}x ` +
            `(per run ${ratios[0].toFixed(2)}..${ratios[ratios.length - 1].toFixed(2)}); ` +
            `a tampered signature ${ratio(tamperedMs, validMs)}x a valid one ` +
            `(median ${tamperedMs} ms, ${median(tampered.map(r => r.calls))} calls)`
    )
    console.log(
        `sizes: public key ${publicKey.length} B, signature ${signature.length} B, manifest payload ${payload.length} B, ` +
            `signed manifest (COSE_Sign1) ${signed.length} B`
    )
}

/** A whole update in the simulator: v1 running and connected -> owner names v2 -> v2 confirmed. */
export async function updateEndToEnd() {
    const dir = mkdtempSync(join(tmpdir(), "bench-update-"))
    const transcript: string[] = []
    const keyring = ensureKeyring()
    const key = keyring.releaseKey()
    // the OTA fixtures trust the root their builder names: here the owner's
    writeTrustAnchor(keyring.anchor(), OTA_ANCHOR_PATH)
    const v1 = await buildImage("test/device/fixtures/ota-v1.ts", join(dir, "v1.devs"))
    const v2 = await buildImage("test/device/fixtures/ota-v2.ts", join(dir, "v2.devs"))
    const stack = await startLocalStack({ dir, onLog: (s, l) => transcript.push(`${s}: ${l}`) })
    const devtools = await startDevtools(dir)
    const device = new SimulatedDevice({ stack, dir, devtools, transcript })
    try {
        await publishDocuments(stack.updates, keyring.documents())
        await stack.updates.publish(signManifest(manifestFor(v1, 1), key), v1)
        const release = await stack.updates.publish(signManifest(manifestFor(v2, 2), key), v2)
        device.start(["run", join(dir, "v1.devs")])
        await device.waitFor(/^uplink: connected to/, 120_000)
        const from = device.lines.length
        const started = Date.now()
        await device.requestUpdate(release.digest, release.sequence)
        await device.waitFor(/^update: sequence 2 confirmed/, 180_000, from)
        const confirmed = Date.now() - started
        await device.waitFor(/^uplink: connected to/, 60_000, from)
        const resumed = Date.now() - started
        await until("the deploy record", async () => (await stack.registry.store.events({ kind: "update-deployed" })).length > 0, 10_000)
        const deployed = (await stack.registry.store.events({ kind: "update-deployed" }))[0].detail
        console.log(
            `update v1 -> v2 in the simulator: ${confirmed} ms from the update command to confirmation, ${resumed} ms to MQTT again`
        )
        console.log(`deploy over WSSK: ${deployed} (image ${v2.length} B)`)
    } finally {
        await device.stop()
        devtools.stop()
        await stack.stop()
        rmSync(dir, { recursive: true, force: true })
    }
}
