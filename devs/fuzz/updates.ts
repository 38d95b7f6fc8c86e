/**
 * Fuzzing the update service (devs/updates/service.ts): the reports devices
 * send inside their authenticated registry exchange, and the publication of
 * signed images.
 *
 * Reports reach `handleReport` as the registry hands them over (parsed
 * JSON), from three enrolled devices, on a real store with three published images; a
 * report may be followed by the device connecting its update window (a
 * stand-in that runs whatever is deployed to it), so the state machine goes
 * all the way: approved, trial, confirmed, rollback. Wrong acceptance: a
 * reply outside `{ wssk?: "stored", update?: "accepted" | "confirmed" |
 * "refused: …" }`; an approval of an image not published under the sequence
 * named, or without a WSSK key, or from a device not running a published
 * image; a WSSK key replaced once stored; a deploy of anything but a
 * published image the row names; a row left in a phase without the digests
 * it needs, or naming an image never published.
 *
 * Publication: signed manifests (SLH-DSA-SHA2-128s, made here) and images,
 * mutated. Wrong acceptance: publishing anything but a manifest this key
 * signed, with the exact image it names; a refusal that is not a
 * `ManifestError`.
 */
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decode } from "cbor2"
import { SqliteStore } from "../registry/store.ts"
import { KeyVault } from "../updates/key-vault.ts"
import { ManifestError, manifestFor, signManifest } from "../updates/manifest.ts"
import { UpdateService, type DeployTarget } from "../updates/service.ts"
import { generateSigningKey } from "../updates/cose-sign1.ts"
import { singleKeyTrust } from "../updates/trust.ts"
import { mutate, type Campaign, type Verdict } from "./fuzzer.ts"
import { mutateJson, type Json } from "./json.ts"

/** One report from one device, maybe followed by the device opening its window. */
export interface ReportInput {
    device: string
    report: Json
    connect?: boolean
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")
const PHASES = ["idle", "approved", "trial", "rollback"]

/** Three signed images, made once per process: SLH-DSA-SHA2-128s signs slowly (about 2 s each here). */
let signedImages: {
    key: ReturnType<typeof generateSigningKey>
    /** A root and key list under which `key` signs (`singleKeyTrust`). */
    trust: ReturnType<typeof singleKeyTrust>
    list: { sequence: number; image: Buffer; digest: string; signed: Buffer }[]
}

function images() {
    if (signedImages) return signedImages
    const key = generateSigningKey()
    const list = [1, 2, 3].map(sequence => {
        const image = randomBytes(64 * sequence)
        return { sequence, image, digest: sha256(image), signed: signManifest(manifestFor(image, sequence), key) }
    })
    signedImages = { key, list, trust: singleKeyTrust([key.publicKey]) }
    return signedImages
}

/** The update-report fuzzing campaign. */
export async function reportsCampaign(): Promise<Campaign<ReportInput>> {
    const dir = mkdtempSync(join(tmpdir(), "fuzz-updates-"))
    let now = 1_700_000_000_000
    const store = new SqliteStore(join(dir, "registry.db"))
    const published = images()
    const [a, b, c] = published.list
    const updates = new UpdateService({
        store,
        vault: KeyVault.ephemeral(),
        clock: () => now,
        trialDeadlineMs: 600_000,
        event: () => {},
    })
    for (const d of published.trust) await updates.publishTrust(d.kind, d.copies)
    for (const i of published.list) await updates.publish(i.signed, i.image)
    const digests = new Map(published.list.map(i => [i.digest, i]))
    // reports come only from enrolled devices, once they have proved who they are
    const devices = [1, 2, 3].map(() => randomBytes(16).toString("hex"))
    for (const id of devices)
        await store.insertDevice({
            id,
            scramSalt: randomBytes(16),
            scramIterations: 4096,
            storedKey: randomBytes(32),
            serverKey: randomBytes(32),
            claimSalt: null,
            claimIterations: null,
            claimHash: null,
            owner: "fuzz",
            enrolledAt: now,
            claimedAt: now,
            ownerEnvelope: randomBytes(64),
        })
    const [d1, d2] = devices
    /** What each device runs (digest), and the first WSSK key stored for it. */
    const running = new Map(devices.map(d => [d, a.digest]))
    const keys = new Map<string, Buffer>()
    const wsskKey = () => randomBytes(32).toString("base64")
    let wrongDeploy: string | undefined

    const target = (deviceId: string): DeployTarget => ({
        deviceId,
        getHash: async () => Buffer.from(running.get(deviceId) ?? "00".repeat(32), "hex"),
        deploy: async image => {
            const digest = sha256(image)
            const row = await store.getDeviceUpdate(deviceId)
            if (!digests.has(digest)) wrongDeploy = `deployed an image never published to ${deviceId}`
            else if (digest !== row?.approvedDigest && digest !== row?.rollbackDigest)
                wrongDeploy = `deployed an image ${deviceId}'s row does not name`
            running.set(deviceId, digest)
        },
    })

    /** What is wrong with the device's row, if anything. */
    async function rowProblem(deviceId: string): Promise<string | undefined> {
        const row = await store.getDeviceUpdate(deviceId)
        if (!row) return undefined
        if (!PHASES.includes(row.phase)) return `phase ${row.phase}`
        for (const d of [row.approvedDigest, row.rollbackDigest, row.failedDigest])
            if (d !== null && !digests.has(d)) return `the row names an image never published: ${d.slice(0, 16)}`
        if (row.phase !== "idle" && (row.approvedDigest === null || row.rollbackDigest === null)) return `${row.phase} without its digests`
        const stored = row.sealedWsskKey ? await updates.masterKeyFor(deviceId) : undefined
        const first = keys.get(deviceId)
        if (stored && first && !stored.equals(first)) return "the WSSK key was replaced"
        if (stored && !first) keys.set(deviceId, stored)
        return undefined
    }

    return {
        name: "update-reports",
        seeds: [
            { device: d1, report: { wssk: wsskKey() } },
            { device: d1, report: { update: { approve: b.digest, running: a.digest, sequence: 2 } }, connect: true },
            { device: d1, report: { update: { confirm: b.digest } } },
            { device: d2, report: { wssk: wsskKey() } },
            { device: d2, report: { update: { approve: c.digest, running: a.digest, sequence: 3 } }, connect: true },
            { device: d2, report: { update: { failed: c.digest, reason: "broker down" } }, connect: true },
        ],
        random: rng => ({ device: rng.pick(devices), report: mutateJson(rng, null, { update: { approve: c.digest } }) }),
        mutate: (rng, seed, other) => {
            const what = rng.below(5)
            if (what === 0) return { ...seed, device: rng.pick(devices) }
            if (what === 1) return { ...seed, connect: !seed.connect }
            return { ...seed, report: mutateJson(rng, seed.report, other.report) }
        },
        check: async (input): Promise<Verdict> => {
            now += 60_000
            const before = await store.getDeviceUpdate(input.device)
            const reply = (await updates.handleReport(input.device, input.report)) as Record<string, unknown>
            const extra = Object.keys(reply).filter(k => k !== "wssk" && k !== "update")
            if (extra.length || (reply.wssk !== undefined && reply.wssk !== "stored")) return { invalid: `reply ${JSON.stringify(reply)}` }
            const step = reply.update
            if (
                step !== undefined &&
                step !== "accepted" &&
                step !== "confirmed" &&
                !(typeof step === "string" && step.startsWith("refused: "))
            )
                return { invalid: `reply ${JSON.stringify(reply)}` }
            if (input.connect) {
                await updates.connected(target(input.device))
                updates.disconnected(input.device)
            }
            const problem = (await rowProblem(input.device)) ?? wrongDeploy
            if (problem) return { invalid: problem }
            const u = (input.report as { update?: Record<string, unknown> } | null)?.update
            if (step === "accepted" && u && typeof u === "object" && typeof u.approve === "string") {
                const image = digests.get(u.approve)
                if (!image || image.sequence !== u.sequence) return { invalid: "approved an image not published under that sequence" }
                if (typeof u.running !== "string" || !digests.has(u.running))
                    return { invalid: "approved with a running image not published" }
                if (!before?.sealedWsskKey) return { invalid: "approved for a device without a WSSK key" }
            }
            const handedKey = (input.report as { wssk?: unknown } | null)?.wssk !== undefined && reply.wssk === "stored"
            return step === "accepted" || step === "confirmed" || handedKey ? "accepted" : "refused"
        },
        after: async () => (await Promise.all(devices.map(rowProblem))).filter(p => p !== undefined),
        close: async () => {
            updates.close()
            await store.close()
            rmSync(dir, { recursive: true, force: true })
        },
    }
}

/** A publication: a signed manifest and the image it should name. */
export interface PublishInput {
    signed: Buffer
    image: Buffer
}

/** The parts of a COSE_Sign1 its signature covers, as hex, or undefined if it has not that shape. */
function signedParts(signed: Buffer): string | undefined {
    try {
        const v = decode(signed) as { tag?: unknown; contents?: unknown[] }
        const parts = v?.contents
        if (Number(v?.tag) !== 18 || !Array.isArray(parts) || parts.length !== 4) return undefined
        return [parts[0], parts[2], parts[3]].map(p => Buffer.from(p as Uint8Array).toString("hex")).join(".")
    } catch {
        return undefined
    }
}

/** The publication fuzzing campaign: signed manifests and images, mutated. */
export async function publishCampaign(): Promise<Campaign<PublishInput>> {
    const dir = mkdtempSync(join(tmpdir(), "fuzz-publish-"))
    const store = new SqliteStore(join(dir, "registry.db"))
    const published = images()
    const updates = new UpdateService({ store, vault: KeyVault.ephemeral(), event: () => {} })
    for (const d of published.trust) await updates.publishTrust(d.kind, d.copies)
    const genuine = new Map(published.list.map(i => [signedParts(i.signed)!, i]))
    return {
        name: "publish",
        seeds: published.list.map(i => ({ signed: i.signed, image: i.image })),
        random: rng => ({ signed: rng.bytes(rng.below(512)), image: rng.bytes(32) }),
        mutate: (rng, seed, other) =>
            rng.below(4) === 0
                ? { ...seed, image: mutate(rng, seed.image, other.image, 1024) }
                : { ...seed, signed: mutate(rng, seed.signed, other.signed, 9000) },
        show: input => `manifest of ${input.signed.length} bytes, image of ${input.image.length} bytes`,
        check: async input => {
            try {
                await updates.publish(input.signed, input.image)
            } catch (e) {
                if (e instanceof ManifestError) return "refused"
                throw e
            }
            const signer = genuine.get(signedParts(input.signed) ?? "")
            if (!signer) return { invalid: "published a manifest this key never signed" }
            if (!signer.image.equals(input.image)) return { invalid: "published an image its manifest does not name" }
            return "accepted"
        },
        close: async () => {
            updates.close()
            await store.close()
            rmSync(dir, { recursive: true, force: true })
        },
    }
}
