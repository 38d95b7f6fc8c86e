/**
 * The update service: holds signed firmware images, learns from devices (in
 * their SCRAM-authenticated registry exchanges) what they approved, and
 * deploys over the runtime's WSSK channel only that exact digest, or, for
 * rollback, the digest the device last confirmed.
 *
 *   device approves B (running A) -> "approved"
 *   device opens its window       -> GET_HASH; deploy B -> "trial" (deadline starts)
 *   device confirms B in time     -> "idle" (B is the new rollback image); asked again, the same answer
 *   device reports failure, or the deadline passes -> deploy A when the window is open -> "idle"
 *
 * A candidate that crashes at start never closes its window and cannot stop
 * the deadline: WSSK runs in the runtime, not in the program.
 *
 * It shares the registry's store (`RegistryStore`), and checks everything it
 * is given with the rules devices apply: roots and key lists (./trust.ts) when
 * they are published; a manifest's signer against the current key list at
 * publication, and the image's signature and SHA-256 again just before every
 * deploy. Devices fetch what it holds by name: a manifest by its image's
 * digest (a release reaches a device only when its owner names it), and the
 * trust documents by version and signature, after a small index of the newest.
 */
import { createHash } from "node:crypto"
import { encode } from "cbor2"
import type { FirmwareUpdates } from "../registry/firmware-updates.ts"
import type { DeviceUpdateRow, FirmwareImageRow, RegistryStore } from "../registry/store.ts"
import { verifyCose } from "./cose-sign1.ts"
import type { KeyVault } from "./key-vault.ts"
import { CLASS_ID, ManifestError, readSignedManifest, VENDOR_ID, type FirmwareManifest } from "./manifest.ts"
import { TrustChain, TrustError, type TrustKind } from "./trust.ts"

/** A connected device the service can deploy to (a WSSK session). */
export interface DeployTarget {
    readonly deviceId: string
    /** SHA-256 of the program the device runs. */
    getHash(): Promise<Buffer>
    /** Replaces the device's program; the runtime restarts it. `onProgress` follows the acknowledged writes. */
    deploy(image: Buffer, onProgress?: (written: number, total: number) => void): Promise<void>
    /** Bytes the connection moved so far, on the wire and in protocol messages (for the record). */
    traffic?(): { wireIn: number; wireOut: number; payloadIn: number; payloadOut: number }
}

/** Options of the update service. */
export interface UpdateServiceOptions {
    store: RegistryStore
    vault: KeyVault
    /** How long a deployed candidate has to confirm. Default 10 minutes. */
    trialDeadlineMs?: number
    clock?: () => number
    /** Records a security or update event (the registry's event log). */
    event: (kind: string, identity: string, detail: string) => void
    /** Follows each deploy's acknowledged writes (tests cut the power half-way). */
    onDeployProgress?: (deviceId: string, written: number, total: number) => void
}

/** What the service answers to a device's report. */
export interface ReportReply {
    wssk?: "stored"
    update?: string
}

const DIGEST = /^[0-9a-f]{64}$/

/** A stored image or manifest that fails its check: refused, not retried. */
class IntegrityError extends Error {}

/** The update service's decisions; transport-free (the WSSK gateway and the registry call it). */
export class UpdateService implements FirmwareUpdates {
    private readonly clock: () => number
    private readonly targets = new Map<string, DeployTarget>()
    private readonly busy = new Set<string>()
    private timer: NodeJS.Timeout | undefined
    /** The trust documents as checked, and how many of the store's it was built from (another process may publish). */
    private trust = { chain: new TrustChain(), documents: 0 }

    constructor(private readonly options: UpdateServiceOptions) {
        this.clock = options.clock ?? Date.now
    }

    /** Verifies and stores a signed image. Throws `ManifestError` for anything that does not check out. */
    async publish(signedManifest: Buffer, image: Buffer): Promise<FirmwareImageRow> {
        const manifest = await this.checkImage(signedManifest, image, "current")
        const row: FirmwareImageRow = {
            digest: manifest.digest.toString("hex"),
            sequence: manifest.sequence,
            classId: manifest.classId.toString("hex"),
            signedManifest,
            image,
            publishedAt: this.clock(),
        }
        const same = await this.options.store.getFirmwareImage(row.digest)
        // the README's release steps followed right after `npm start` (which publishes its own build) end here
        if (same)
            throw new ManifestError(
                `image already published as sequence ${same.sequence}: change the firmware first (npm run release does every step)`
            )
        // one image per sequence: devices order releases by it, and two under one number would race for "latest"
        if (!(await this.options.store.insertFirmwareImage(row)))
            throw new ManifestError(`sequence ${row.sequence} is already published for this class: sign the image with a higher one`)
        return row
    }

    /** The newest release published for `classId` (hex): its digest and sequence; undefined before the first. */
    async newest(classId: string): Promise<{ digest: string; sequence: number } | undefined> {
        const row = await this.options.store.latestFirmwareImage(classId)
        return row && { digest: row.digest, sequence: row.sequence }
    }

    /** The release published with this image digest (hex), if any. */
    async published(digest: string): Promise<{ digest: string; sequence: number } | undefined> {
        const row = await this.options.store.getFirmwareImage(digest)
        return row && { digest: row.digest, sequence: row.sequence }
    }

    /**
     * The manifest of `image`, if it names this exact image for our vendor and class and a release key signed
     * it: one of the current key list (`current`, for a publication) or of any key list taken (`any`, for a
     * deploy: an image published before its key was revoked may still be a device's way back). Throws `ManifestError`.
     */
    private async checkImage(signedManifest: Buffer, image: Buffer, keys: "current" | "any"): Promise<FirmwareManifest> {
        const { parts, manifest } = readSignedManifest(signedManifest)
        const chain = await this.chain()
        const key = keys === "current" ? chain.releaseKey(parts.kid) : chain.anyReleaseKey(parts.kid)
        const kid = parts.kid.toString("hex")
        if (!key) throw new ManifestError(`signed by ${kid}, not a release key of the current key list (revoked, or not added)`)
        if (!verifyCose(parts, key)) throw new ManifestError(`signature by ${kid} does not verify`)
        const digest = createHash("sha256").update(image).digest()
        if (!digest.equals(manifest.digest) || image.length !== manifest.size) throw new ManifestError("image does not match its manifest")
        if (!manifest.vendorId.equals(VENDOR_ID) || !manifest.classId.equals(CLASS_ID))
            throw new ManifestError("manifest names another vendor or class")
        return manifest
    }

    /** The trust documents of the store, checked in order; rebuilt when another process published more. */
    private async chain(): Promise<TrustChain> {
        if ((await this.options.store.trustDocumentCount()) === this.trust.documents) return this.trust.chain
        const documents = await this.options.store.trustDocuments()
        const chain = new TrustChain()
        for (const d of documents) {
            try {
                if (d.kind === "root") chain.acceptRoot(d.copies)
                else chain.acceptKeyList(d.copies)
            } catch (e) {
                if (!(e instanceof TrustError)) throw e
                // a store changed behind our back: what came before stays, and devices refuse the rest themselves
                this.options.event("update-refused", "-", `stored ${d.kind} ${d.version}: ${e.message}`.slice(0, 96))
            }
        }
        this.trust = { chain, documents: documents.length }
        return chain
    }

    /**
     * Checks a root document or key list (its signatures, one COSE_Sign1 each) as devices will, and stores it.
     * Returns its version. Throws `TrustError`, or `ManifestError` for a version already published.
     */
    async publishTrust(kind: TrustKind, copies: Buffer[]): Promise<number> {
        const chain = await this.chain()
        const { version } = kind === "root" ? chain.acceptRoot(copies) : chain.acceptKeyList(copies)
        if (!(await this.options.store.insertTrustDocument({ kind, version, copies, publishedAt: this.clock() })))
            throw new ManifestError(`${kind} ${version} is already published`)
        this.trust.documents += 1
        return version
    }

    /** The signed manifest of an image (digest in hex) of a class, as devices fetch it by name. */
    async signedManifest(classId: string, digest: string): Promise<Buffer | undefined> {
        const image = await this.options.store.getFirmwareImage(digest)
        return image && image.classId === classId ? image.signedManifest : undefined
    }

    /** The versions of the newest root and key list held (0 for none). */
    async trustVersions(): Promise<{ root: number; keyList: number }> {
        const { root, keyList } = await this.chain()
        return { root: root?.version ?? 0, keyList: keyList?.version ?? 0 }
    }

    /** What devices ask first: the newest root version and key list version, a CBOR array [root, key list]; undefined before any. */
    async trustIndex(): Promise<Buffer | undefined> {
        const { root, keyList } = await this.trustVersions()
        if (root === 0 || keyList === 0) return undefined
        return Buffer.from(encode([root, keyList], { cde: true }))
    }

    /** One signature (COSE_Sign1) of a trust document, by kind, version and place. */
    async trustCopy(kind: TrustKind, version: number, copy: number): Promise<Buffer | undefined> {
        return this.options.store.getTrustCopy(kind, version, copy)
    }

    /** The device's WSSK master key, for the gateway; undefined if it never handed one over. */
    async masterKeyFor(deviceId: string): Promise<Buffer | undefined> {
        const row = await this.options.store.getDeviceUpdate(deviceId)
        return row?.sealedWsskKey ? this.options.vault.open(deviceId, row.sealedWsskKey) : undefined
    }

    private async row(deviceId: string): Promise<DeviceUpdateRow> {
        return (
            (await this.options.store.getDeviceUpdate(deviceId)) ?? {
                deviceId,
                sealedWsskKey: null,
                phase: "idle",
                approvedDigest: null,
                rollbackDigest: null,
                deadline: null,
                failedDigest: null,
                updatedAt: this.clock(),
            }
        )
    }

    private async save(row: DeviceUpdateRow) {
        await this.options.store.putDeviceUpdate({ ...row, updatedAt: this.clock() })
    }

    /**
     * Acts on a report from a device that has just proved its identity with
     * SCRAM (the registry calls this only then). Hostile input: every field is checked.
     */
    async handleReport(deviceId: string, report: unknown): Promise<ReportReply> {
        if (!report || typeof report !== "object") return {}
        const r = report as Record<string, unknown>
        const reply: ReportReply = {}
        if (r.wssk !== undefined) {
            if (await this.storeWsskKey(deviceId, r.wssk)) reply.wssk = "stored"
        } else if ((await this.options.store.getDeviceUpdate(deviceId))?.sealedWsskKey) reply.wssk = "stored"
        if (r.update && typeof r.update === "object") reply.update = await this.updateStep(deviceId, r.update as Record<string, unknown>)
        return reply
    }

    private async storeWsskKey(deviceId: string, field: unknown): Promise<boolean> {
        const key = typeof field === "string" && /^[A-Za-z0-9+/]{43}=$/.test(field) ? Buffer.from(field, "base64") : undefined
        if (!key || key.length !== 32) {
            this.options.event("update-refused", deviceId, "malformed WSSK key")
            return false
        }
        const row = await this.row(deviceId)
        if (row.sealedWsskKey) {
            // handed over once; a different key later is not taken (someone else, or a reset device: re-enroll)
            if (this.options.vault.open(deviceId, row.sealedWsskKey).equals(key)) return true
            this.options.event("wssk-key-mismatch", deviceId, "device offered a different WSSK key; kept the first")
            return false
        }
        await this.save({ ...row, sealedWsskKey: this.options.vault.seal(deviceId, key) })
        this.options.event("wssk-key-stored", deviceId, "update channel key received")
        return true
    }

    private refuse(deviceId: string, why: string): string {
        this.options.event("update-refused", deviceId, why)
        return `refused: ${why}`
    }

    private async updateStep(deviceId: string, u: Record<string, unknown>): Promise<string> {
        const row = await this.row(deviceId)
        if (typeof u.approve === "string") {
            if (!DIGEST.test(u.approve) || typeof u.running !== "string" || !DIGEST.test(u.running))
                return this.refuse(deviceId, "malformed approval")
            if (!row.sealedWsskKey) return this.refuse(deviceId, "no WSSK key")
            const image = await this.options.store.getFirmwareImage(u.approve)
            if (!image || image.sequence !== u.sequence) return this.refuse(deviceId, "approved an image not published")
            // rollback needs the image the device runs now
            if (!(await this.options.store.getFirmwareImage(u.running)))
                return this.refuse(deviceId, "running image unknown: no rollback path")
            if (row.phase === "trial" || row.phase === "rollback") return this.refuse(deviceId, `update already in ${row.phase}`)
            if (u.approve === row.failedDigest) return this.refuse(deviceId, "this image failed its trial on this device")
            await this.save({ ...row, phase: "approved", approvedDigest: u.approve, rollbackDigest: u.running, deadline: null })
            this.options.event("update-approved", deviceId, `sequence ${image.sequence}`)
            return "accepted"
        }
        if (typeof u.confirm === "string") {
            // the device may not have heard our answer (a power cut, a dropped connection) and asks again
            if (this.confirmed(row, u.confirm)) {
                this.options.event("update-confirmed", deviceId, `digest ${u.confirm.slice(0, 16)} again: our answer was lost`)
                return "accepted"
            }
            if (row.phase !== "trial" || u.confirm !== row.approvedDigest) return this.refuse(deviceId, "confirmation of nothing on trial")
            if (row.deadline !== null && this.clock() > row.deadline) return this.refuse(deviceId, "confirmation after the deadline")
            await this.save({ ...row, phase: "idle", rollbackDigest: u.confirm, approvedDigest: null, deadline: null })
            this.options.event("update-confirmed", deviceId, `digest ${u.confirm.slice(0, 16)}`)
            return "accepted"
        }
        if (typeof u.failed === "string") {
            // its confirmation reached us but our answer did not, and it has since run out of trial boots:
            // the candidate passed its checks and slot A is gone here, so it is told to finish the confirmation
            if (this.confirmed(row, u.failed)) {
                this.options.event(
                    "update-confirmed",
                    deviceId,
                    `digest ${u.failed.slice(0, 16)}: failure report after its confirmation; told it is confirmed`
                )
                return "confirmed"
            }
            if (row.phase === "rollback" && u.failed === row.approvedDigest) return "accepted" // asked again while we roll back
            if (row.phase !== "trial" || u.failed !== row.approvedDigest) return this.refuse(deviceId, "failure report of nothing on trial")
            await this.save({ ...row, phase: "rollback" })
            this.options.event("update-unhealthy", deviceId, String(u.reason ?? "").slice(0, 64))
            void this.act(deviceId)
            return "accepted"
        }
        return this.refuse(deviceId, "unknown update step")
    }

    /** Whether `digest` is the candidate this device last confirmed, with no update since. */
    private confirmed(row: DeviceUpdateRow, digest: string): boolean {
        return row.phase === "idle" && row.approvedDigest === null && row.rollbackDigest === digest && row.failedDigest !== digest
    }

    /** A device opened its window. */
    async connected(target: DeployTarget) {
        this.targets.set(target.deviceId, target)
        await this.act(target.deviceId)
    }

    /** A device closed its window. */
    disconnected(deviceId: string) {
        this.targets.delete(deviceId)
    }

    /** Re-checks every connected device (deadlines) every `intervalMs` until `close()`. */
    startTimer(intervalMs = 500) {
        this.timer = setInterval(() => {
            for (const id of this.targets.keys()) void this.act(id)
        }, intervalMs)
        this.timer.unref()
    }

    close() {
        if (this.timer) clearInterval(this.timer)
    }

    /** Does what the device's row asks for, if the device is connected. One action per device at a time. */
    private async act(deviceId: string) {
        const target = this.targets.get(deviceId)
        if (!target || this.busy.has(deviceId)) return
        this.busy.add(deviceId)
        try {
            const row = await this.row(deviceId)
            if (row.phase === "approved" && row.approvedDigest) {
                const running = (await target.getHash()).toString("hex")
                // on trial before the deploy ends: the new program may confirm before the deploy call returns
                await this.save({ ...row, phase: "trial", deadline: this.clock() + (this.options.trialDeadlineMs ?? 600_000) })
                try {
                    if (running !== row.approvedDigest) await this.deploy(target, row.approvedDigest)
                } catch (e) {
                    await this.save({ ...row, phase: "approved" })
                    throw e
                }
            } else if (
                row.rollbackDigest &&
                (row.phase === "rollback" || (row.phase === "trial" && row.deadline !== null && this.clock() > row.deadline))
            ) {
                if (row.phase === "trial") this.options.event("update-deadline", deviceId, "candidate did not confirm in time")
                const running = (await target.getHash()).toString("hex")
                if (running !== row.rollbackDigest) await this.deploy(target, row.rollbackDigest)
                await this.endAttempt(row)
                this.options.event("update-rolled-back", deviceId, `back to ${row.rollbackDigest.slice(0, 16)}`)
            }
        } catch (e) {
            if (e instanceof IntegrityError) {
                // never retried: the stored image is not what was signed (tampered store); the device's window times out
                await this.endAttempt(await this.row(deviceId))
                this.options.event("update-refused", deviceId, e.message)
            } else this.options.event("update-deploy-failed", deviceId, (e as Error).message.slice(0, 96))
        } finally {
            this.busy.delete(deviceId)
        }
    }

    /** Closes a failed attempt: back to idle, and its candidate is never deployed to this device again. */
    private async endAttempt(row: DeviceUpdateRow) {
        await this.save({ ...row, phase: "idle", approvedDigest: null, deadline: null, failedDigest: row.approvedDigest })
    }

    /** Deploys a stored image after checking it again: signature, then the exact digest. */
    private async deploy(target: DeployTarget, digest: string) {
        const image = await this.options.store.getFirmwareImage(digest)
        if (!image) throw new IntegrityError(`image ${digest.slice(0, 16)} not stored`)
        try {
            if ((await this.checkImage(image.signedManifest, image.image, "any")).digest.toString("hex") !== digest)
                throw new ManifestError("manifest names another image")
        } catch (e) {
            throw new IntegrityError(`stored image ${digest.slice(0, 16)} does not match its signed digest: ${(e as Error).message}`)
        }
        this.options.event("update-deploying", target.deviceId, `sequence ${image.sequence}, ${image.image.length} B`)
        const started = this.clock()
        const before = target.traffic?.()
        await target.deploy(image.image, (written, total) => this.options.onDeployProgress?.(target.deviceId, written, total))
        const after = target.traffic?.()
        const wire = before && after ? `; wire ${after.wireOut - before.wireOut} B out, ${after.wireIn - before.wireIn} B in` : ""
        this.options.event(
            "update-deployed",
            target.deviceId,
            `sequence ${image.sequence}, ${image.image.length} B in ${this.clock() - started} ms${wire}`
        )
    }
}
