/**
 * Updates over the air, device side: the flow of ARCHITECTURE.md's update
 * window, driven by the records of `slots.ts`.
 *
 *   the owner names a release (digest, sequence) in a sealed `update` command ->
 *   check:  newer roots and key list from the registry, each verified (`trust.ts`) ->
 *           the named manifest -> its signer in the key list, SLH-DSA verified ->
 *           vendor, class, sequence above the security counter -> slot B, approved ->
 *           tell the service (SCRAM-authenticated) -> open the window (WSSK)
 *   the service deploys; the runtime restarts with the new program, which
 *   boots into `trial`: it runs its health checks with the window closed, and
 *   confirms (slot A := B, security counter raised) or asks for rollback (window reopened,
 *   the service puts slot A back). A candidate that crashes never closes the
 *   window, so the service, which runs natively beside it, rolls it back on its deadline.
 *
 * Each step the device takes is reported to the owner, sealed (`report.ts`).
 * The device never looks for "the latest" by itself: it installs only what its
 * owner named, so a canary release reaches no one else.
 *
 * The firmware calls: `boot` before the sensors start (it reads the records
 * and decides what this boot is), `resumeAtBoot` once they run and before the
 * uplink takes the socket (it carries on with an update that a restart
 * interrupted, or runs a candidate's trial), `request` when the owner names a
 * release, and `checkAndWait` whenever the uplink lends it the socket. Every
 * step that talks to the network needs the socket free.
 */
import * as ds from "@devicescript/core"
import { constantTimeEqual } from "../bytes/constant-time"
import { base64Encode } from "../codec/base64"
import { CborMap, CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { EventLog } from "../events/log"
import { DeviceIdentity } from "../identity/credentials"
import { registryExchange, RegistryError, RegistrySession, UpdateServiceInfo } from "../identity/registry-client"
import { ScramKeyCache } from "../identity/scram"
import { Endpoint } from "../net/endpoint"
import { HttpsConnection, HttpsError } from "../net/https"
import { wsskMasterKey } from "../secure/keys"
import { deleteKey, readBytes, SettingKey, writeBytes } from "../storage/settings"
import {
    checkManifestPolicy,
    CLASS_ID,
    decodeManifest,
    decodeSigned,
    FirmwareManifest,
    ManifestError,
    MAX_SIGNED_BYTES,
    SignedParts,
    VENDOR_ID,
} from "./manifest"
import { UpdateStep } from "./report"
import { BootDecision, decideAtBoot, SlotStore, UpdatePhase, UpdateState } from "./slots"
import { decodeTrust, SignedSource, TrustDocument, verifyThreshold } from "./trust"
import { closeUpdateWindow, openUpdateWindow } from "./window"

/** Options of the updater. */
export interface UpdaterOptions {
    identity: DeviceIdentity
    events: EventLog
    registry: Endpoint
    /** The payload of the root document the image trusts from the start (`trust-anchor.ts`). */
    trustAnchor: Buffer
    /** SHA-256 of the running program. */
    runningDigest: () => Promise<Buffer>
    /** Seals a report (`report.ts`) for the owner and queues it, in flash: the program may be replaced before it goes out. */
    report: (plaintext: Buffer) => Promise<void>
}

/** A release the owner named: the image's SHA-256 and its manifest's sequence number. */
export interface UpdateTarget {
    digest: Buffer
    sequence: number
}

/** Fields of the state record a transition changes (see `Updater.enter`). */
interface StateChange {
    securityCounter?: number
    trialBoots?: number
}

/** How long a window waits for the deploy when the service has not said. */
const DEFAULT_WINDOW_MS = 300000
/** How long a candidate on trial waits for its first valid reading. */
const TRIAL_SENSOR_WAIT_MS = 20000

/** What a candidate's trial checks on the device, besides the update service's answer. */
export interface TrialHealth {
    /** The sensor pipeline: the candidate must take a valid reading. */
    sensors: { readingsTaken(): number }
    /** The uplink: `probe` reaches registry and broker with our credentials and says what failed, if anything. */
    uplink: { probe(): Promise<string> }
}

/** What `check` did. */
type CheckOutcome = "up-to-date" | "window-open" | "refused" | "unreachable"

/** Drives the update state machine. */
export class Updater implements SignedSource {
    private readonly store: SlotStore
    /** The root in force: the anchor's, or a newer one verified since (`trust.ts`). */
    root: TrustDocument = undefined
    /** The key list verified last (its version is the floor); undefined before the first. */
    keyList: TrustDocument = undefined
    private readonly cache: ScramKeyCache = {}
    /** The registry: the manifest fetch and the SCRAM exchanges after it share one TLS connection, closed when the socket goes back. */
    private readonly https: HttpsConnection
    /** The state record: phase, security counter, trial boots (for the state report too). */
    state: UpdateState = undefined
    private slotA: FirmwareManifest = undefined
    private slotB: FirmwareManifest = undefined
    /** SHA-256 of the running program, read at boot. */
    running: Buffer = undefined
    /** The manifest the running program was installed from (slot A or B); undefined when none the device trusts names it. */
    image: FirmwareManifest = undefined
    /** The release the owner named last, until a check finishes with it (in RAM: the owner names it again after a restart). */
    target: UpdateTarget = undefined

    constructor(readonly options: UpdaterOptions) {
        this.store = new SlotStore(options.identity.secret, options.identity.deviceId)
        this.https = new HttpsConnection(options.registry)
    }

    /**
     * Reads the records and decides what this boot must do. Bookkeeping-only
     * steps (finishing a confirmation, recording a rollback) are done here;
     * `resumeAtBoot` carries out the others.
     * A record that fails its check is logged and the update abandoned, never trusted.
     */
    async boot(): Promise<BootDecision> {
        await this.load()
        this.root = decodeTrust(this.options.trustAnchor, "root")
        const stored = await this.readTrust(SettingKey.TrustRoot, "root")
        if (stored && stored.version > this.root.version) this.root = stored
        this.keyList = await this.readTrust(SettingKey.KeyList, "keys")
        const running = await this.options.runningDigest()
        this.running = running
        const { slotA, slotB } = this
        this.image =
            slotB && constantTimeEqual(slotB.digest, running)
                ? slotB
                : slotA && constantTimeEqual(slotA.digest, running)
                  ? slotA
                  : undefined
        const image = running.toString("hex").slice(0, 16)
        const sequence = this.image ? this.image.sequence : "unknown"
        console.log(
            `update: running ${image}, sequence ${sequence}, security counter ${this.state.securityCounter}, phase ${this.state.phase}`
        )
        // deployed outside the update path (by hand, or at the factory): said at every boot until an update names it
        if (!this.image) await this.options.events.record("image-unknown", image)
        const decision = decideAtBoot(this.state, slotA, slotB, running)
        // a power cut fell inside a confirmation (slot A already holds the candidate): finish it
        if (decision.action === "finish-confirm") await this.confirmCandidate()
        else if (decision.action === "rolled-back") {
            if (slotB) {
                await this.options.events.record("update-rolled-back", `sequence ${slotB.sequence} rolled back; running ${sequence}`)
                await this.tell(slotB, "rolled-back", "the previous image runs again")
            }
            await this.finish()
        } else if (decision.action === "trial") {
            // counted before anything else runs, so a candidate that crashes early still uses up its boots
            await this.enter(UpdatePhase.Trial, { trialBoots: decision.trialBoots })
        }
        return decision
    }

    /**
     * Carries out what `boot` decided, with the sensors running and the socket
     * free. Resolves when the uplink may start: at once for a normal boot, after
     * a confirmed trial, or after a window that closed without a deploy; a boot
     * that asked for rollback waits until the service replaces this program
     * (or answers that it had taken the candidate's confirmation after all).
     */
    async resumeAtBoot(decision: BootDecision, health: TrialHealth) {
        const action = decision.action
        try {
            if (action === "announce") {
                if ((await this.announce()) === "window-open") await this.awaitDeploy()
            } else if (action === "await-deploy") {
                // a power cut may have come after the state was written but before the runtime stored its
                // connection string: set it again (harmless when it is there)
                await this.openWindow()
                await this.awaitDeploy()
            } else if (action === "trial") {
                if (!(await this.trial(health))) await this.awaitRollback()
            } else if (action === "request-rollback") {
                if (!(await this.requestRollback("no confirmation in its trial boots"))) await this.awaitRollback()
            }
        } finally {
            await this.https.close()
        }
    }

    /** With the socket lent by the uplink: checks the release the owner named (`target`), if any, and if a window opens, waits in it. */
    async checkAndWait() {
        const target = this.target
        if (!target) return
        let outcome: CheckOutcome
        try {
            outcome = await this.check(target)
        } finally {
            await this.https.close()
        }
        if (outcome !== "unreachable") this.target = undefined
        console.log(`update: check: ${outcome}`)
        if (outcome === "window-open") await this.awaitDeploy()
    }

    /** A trust record (`trust.ts`); one that fails its check is logged and dropped (the anchor, or the next key list, takes over). */
    private async readTrust(key: string, kind: string): Promise<TrustDocument> {
        try {
            const value = await this.store.readRecord(key)
            if (value) return decodeTrust(value, kind)
        } catch (e: any) {
            if (!(e instanceof ManifestError)) throw e
            await this.options.events.record("storage-corrupt", `${key}: ${e.message}`)
            await deleteKey(key)
        }
        return undefined
    }

    /**
     * Brings root and key list up to the versions the update service names
     * (a hint: everything fetched is checked), roots one version at a time,
     * then the key list. Each document is verified (`trust.ts`) and kept: the
     * record first, in one write, then in RAM. Throws `ManifestError`, with
     * what came before still in force.
     */
    private async updateTrust(newestRoot: number, newestList: number) {
        for (;;) {
            const list = this.keyList
            const root = this.root.version < newestRoot
            // a newer root resets the floor: its key list may start anywhere
            const floor = list && list.n === this.root.version ? list.version : 0
            if (!root && newestList < floor) throw new ManifestError("rollback", `key list ${newestList} below the floor ${floor}`)
            if (!root && newestList === floor) return
            const kind = root ? "root" : "keys"
            const path = `trust/${kind}/${root ? this.root.version + 1 : newestList}/`
            const payload = await verifyThreshold(this, path, kind, this.root, floor)
            await this.store.writeRecord(root ? SettingKey.TrustRoot : SettingKey.KeyList, payload)
            if (root) this.root = decodeTrust(payload, kind)
            else this.keyList = decodeTrust(payload, kind)
        }
    }

    /** Seals a report of `step` for the release `m` names (`report.ts`: the CBOR map below) and queues it. */
    private async tell(m: UpdateTarget, step: UpdateStep, reason?: string) {
        const r = new CborMap().set("digest", m.digest).set("sequence", m.sequence).set("step", step)
        if (reason !== undefined) r.set("reason", reason.slice(0, 64))
        await this.options.report(encodeCbor(r))
    }

    private async load() {
        try {
            this.state = await this.store.readState()
            this.slotA = await this.store.readSlot(SettingKey.SlotA)
            this.slotB = await this.store.readSlot(SettingKey.SlotB)
        } catch (e: any) {
            if (!(e instanceof ManifestError)) throw e
            await this.options.events.record("storage-corrupt", e.message)
            // keep what can be trusted: the security counter never drops below the confirmed slot A
            let slotA: FirmwareManifest = undefined
            try {
                slotA = await this.store.readSlot(SettingKey.SlotA)
            } catch (e2: any) {
                await this.store.clearSlot(SettingKey.SlotA)
            }
            this.slotA = slotA
            // idle, no candidate, the window closed
            await this.finish({ securityCounter: slotA ? slotA.sequence : 0 })
        }
        if (this.slotA && this.slotA.sequence > this.state.securityCounter) this.state.securityCounter = this.slotA.sequence
    }

    /** Moves to `phase`, keeping the security counter unless `change` says otherwise; trial boots restart at 0 unless given. */
    private async enter(phase: UpdatePhase, change: StateChange = {}) {
        const s = { phase, securityCounter: change.securityCounter ?? this.state.securityCounter, trialBoots: change.trialBoots ?? 0 }
        await this.store.writeState(s)
        this.state = s
    }

    /** Ends an update: the idle state first (one write decides), then the candidate slot and the window. */
    private async finish(change: StateChange = {}) {
        await this.enter(UpdatePhase.Idle, change)
        await this.store.clearSlot(SettingKey.SlotB)
        this.slotB = undefined
        await closeUpdateWindow()
    }

    /** A registry exchange carrying `update` (and our WSSK master key until the service holds it). */
    private async tellService(update: any): Promise<RegistrySession> {
        const { identity, events } = this.options
        const report: any = { update }
        // the record names the identity: after a factory reset the new identity's key is handed over too
        const heldFor = await readBytes(SettingKey.WsskKeyHeldFor)
        const serviceHoldsKey = !!heldFor && heldFor.toString("hex") === identity.deviceId
        if (!serviceHoldsKey) report.wssk = base64Encode(wsskMasterKey(identity.secret, identity.deviceId))
        const session = await registryExchange(identity, this.https, events, this.cache, JSON.stringify(report))
        if (!serviceHoldsKey && session.reply && session.reply.wsskKeyStored)
            await writeBytes(SettingKey.WsskKeyHeldFor, Buffer.from(identity.deviceId, "hex"))
        if (session.updates) {
            const u = session.updates
            await writeBytes(SettingKey.UpdateService, encodeCbor([u.host, u.port, u.windowMs]))
        }
        return session
    }

    /** The update service as last named by the registry (flash is checked like any input). */
    private async serviceEndpoint(): Promise<UpdateServiceInfo> {
        const v = (await this.readCbor(await readBytes(SettingKey.UpdateService))) as any[]
        if (!Array.isArray(v) || typeof v[0] !== "string" || !(v[1] > 0 && v[1] < 65536) || typeof v[2] !== "number" || !(v[2] > 0))
            return undefined
        return { host: v[0], port: v[1], windowMs: v[2] }
    }

    /** A small CBOR value (a stored record, the trust index), or undefined for anything else (no value, not CBOR). */
    private async readCbor(b: Buffer): Promise<CborValue> {
        try {
            return decodeCbor(b, { maxBytes: 160, maxDepth: 1, maxItems: 4 })
        } catch (e: any) {
            return undefined
        }
    }

    /** Sleeps for as long as a window stays open: as the service said, or the default. */
    private async sleepWindow() {
        const service = await this.serviceEndpoint()
        await ds.sleep(service ? service.windowMs : DEFAULT_WINDOW_MS)
    }

    /** Opens the window to the update service the registry named last, if it named one (the answer it gave to our report shows it did). */
    private async openWindow() {
        const endpoint = await this.serviceEndpoint()
        if (!endpoint) return
        const { secret, deviceId } = this.options.identity
        // the runtime's WSSK client takes the socket
        await this.https.close()
        await openUpdateWindow(endpoint, deviceId, wsskMasterKey(secret, deviceId))
    }

    /** GETs a signed document (path under /v1/) and decodes its parts: undefined for a 404 (`trust.ts` fetches with it). */
    async fetchSigned(path: string): Promise<SignedParts> {
        const r = await this.https.request({ method: "GET", path: `/v1/${path}`, maxBodyBytes: MAX_SIGNED_BYTES, inPlace: true })
        if (r.status === 404) return undefined
        if (r.status !== 200) throw new HttpsError("protocol", path)
        // the parts keep the reply (their signature lies in it): the one ~8 KB block of this fetch
        return decodeSigned(r.body, r.bodyAt)
    }

    /** Logs a refusal and reports it to the owner. */
    private async refuse(target: UpdateTarget, reason: string, detail: string): Promise<CheckOutcome> {
        const why = `${reason}: ${detail}`
        await this.options.events.record("update-refused", why)
        await this.tell(target, "refused", why)
        return "refused"
    }

    /**
     * Checks the release the owner named: first the roots and key list the
     * registry holds that are newer than ours (`/v1/trust` names their
     * versions), then its manifest, which one key of the key list must have
     * signed. Approves it, tells the service and opens the window; the image
     * that already runs is only confirmed. Needs the socket; after
     * "window-open" the caller keeps it free (`awaitDeploy`) until the new
     * program replaces this one.
     */
    private async check(target: UpdateTarget): Promise<CheckOutcome> {
        const phase = this.state.phase
        // approved, but the service was never told (it was unreachable): tell it now
        if (phase === UpdatePhase.Approved && constantTimeEqual(this.slotB.digest, target.digest)) return await this.announce()
        let manifest: FirmwareManifest
        try {
            if (phase !== UpdatePhase.Idle) throw new ManifestError("precondition", "another update is in progress")
            // the versions are a hint (what they lead to is verified): nothing usable there leaves the key list as it is
            const r = await this.https.request({ method: "GET", path: "/v1/trust", maxBodyBytes: 32 })
            const index = (await this.readCbor(r.body)) as number[]
            if (Array.isArray(index) && typeof index[0] === "number" && typeof index[1] === "number")
                await this.updateTrust(index[0], index[1])
            const path = `firmware/${CLASS_ID.toString("hex")}/${target.digest.toString("hex")}`
            const list = this.keyList
            // one copy, signed by one key of the key list for the current root (a revoked key is not in it)
            const releaseKeys = { version: 0, n: 1, keys: list && list.n === this.root.version ? list.keys : [] }
            manifest = decodeManifest(await verifyThreshold(this, path, "", releaseKeys, 0))
            if (!constantTimeEqual(manifest.digest, target.digest) || manifest.sequence !== target.sequence)
                throw new ManifestError("malformed", "manifest names another release")
            if (constantTimeEqual(manifest.digest, this.running)) {
                // the owner named the image that runs: its verified manifest becomes slot A, so the device knows what it
                // runs (the security counter follows slot A, as `load` raises it at every boot), and it is confirmed as it is
                await this.store.writeSlot(SettingKey.SlotA, manifest)
                this.slotA = manifest
                this.image = manifest
                if (manifest.sequence > this.state.securityCounter) this.state.securityCounter = manifest.sequence
                await this.tell(manifest, "confirmed", "running it already")
                return "up-to-date"
            }
            checkManifestPolicy(manifest, { vendorId: VENDOR_ID, classId: CLASS_ID, securityCounter: this.state.securityCounter })
        } catch (e: any) {
            if (e instanceof HttpsError) {
                if (e.failure === "tls") await this.options.events.record("tls-refused", e.message)
                return "unreachable"
            }
            if (!(e instanceof ManifestError)) throw e
            return await this.refuse(target, e.reason, e.message)
        }
        await this.store.writeSlot(SettingKey.SlotB, manifest)
        this.slotB = manifest
        await this.enter(UpdatePhase.Approved)
        await this.options.events.record("update-approved", `sequence ${manifest.sequence}, ${manifest.size} B`)
        await this.tell(manifest, "approved")
        return await this.announce()
    }

    /** Tells the service which digest we approved and opens the window. */
    private async announce(): Promise<CheckOutcome> {
        const b = this.slotB
        let session: RegistrySession
        try {
            session = await this.tellService({
                approve: b.digest.toString("hex"),
                sequence: b.sequence,
                running: this.running.toString("hex"),
            })
        } catch (e: any) {
            if (!(e instanceof RegistryError)) throw e
            return "unreachable" // still approved: the next check or boot announces again
        }
        const answer = session.reply ? session.reply.update : undefined
        if (answer !== "accepted") {
            // the service refuses it (e.g. it failed its trial here)
            await this.finish()
            return await this.refuse(b, "service", `update service answered ${answer || "nothing"}`)
        }
        await this.enter(UpdatePhase.Deploying)
        await this.openWindow()
        console.log(`update: window open for sequence ${b.sequence}`)
        return "window-open"
    }
    /**
     * Waits with the window open for the service to replace this program. If it
     * has not within the window the service named, closes it and abandons the update.
     */
    private async awaitDeploy() {
        await this.sleepWindow()
        // deploying: slot B holds the candidate (`load` leaves no update in progress without it)
        const b = this.slotB
        await this.finish()
        // also what a candidate that crashed at start leaves behind once the service has put this program back
        await this.options.events.record("update-abandoned", `sequence ${b.sequence}: not deployed in the window`)
        await this.tell(b, "rolled-back", "not deployed in the window")
    }

    /**
     * The candidate's trial: with the window closed, a valid sensor reading
     * must come and the uplink's probe pass; then the service must accept the
     * confirmation. Confirms and returns true, or asks for rollback and returns false.
     */
    private async trial(health: TrialHealth): Promise<boolean> {
        const b = this.slotB
        console.log(`update: trial of sequence ${b.sequence}, boot ${this.state.trialBoots}`)
        await closeUpdateWindow()
        await this.tell(b, "trial")
        const until = ds.millis() + TRIAL_SENSOR_WAIT_MS
        while (health.sensors.readingsTaken() === 0 && ds.millis() < until) await ds.sleep(250)
        let failure = "no valid sensor reading"
        if (health.sensors.readingsTaken() > 0) {
            // the uplink's probe takes the socket
            await this.https.close()
            failure = await health.uplink.probe()
        }
        if (!failure) {
            try {
                const session = await this.tellService({ confirm: b.digest.toString("hex") })
                const answer = session.reply ? session.reply.update : undefined
                if (answer !== "accepted") failure = `service answered ${answer || "nothing"} to the confirmation`
            } catch (e: any) {
                if (!(e instanceof RegistryError)) throw e
                failure = `confirmation not delivered: ${e.kind}`
            }
        }
        if (!failure) {
            await this.confirmCandidate()
            return true
        }
        await this.options.events.record("update-unhealthy", `sequence ${b.sequence}: ${failure}`)
        await this.tell(b, "unhealthy", failure)
        return await this.requestRollback(failure)
    }

    /** The candidate becomes slot A and the security counter rises to its sequence. */
    private async confirmCandidate() {
        const b = this.slotB
        await this.store.writeSlot(SettingKey.SlotA, b)
        await this.finish({ securityCounter: b.sequence })
        this.slotA = b
        this.image = b
        await this.options.events.record("update-confirmed", `sequence ${b.sequence} confirmed; security counter raised`)
        await this.tell(b, "confirmed")
    }

    /**
     * Asks the service to put slot A back: tells it if it can, and reopens the
     * window. Returns true, with the candidate confirmed, if the service
     * answers that it already took our confirmation (its answer was lost to a
     * power cut or a dropped connection, and slot A is gone there).
     */
    private async requestRollback(reason: string): Promise<boolean> {
        const b = this.slotB
        console.log(`update: asking for rollback of sequence ${b.sequence}: ${reason}`)
        if (this.state.phase !== UpdatePhase.Rollback) await this.enter(UpdatePhase.Rollback, { trialBoots: this.state.trialBoots })
        await closeUpdateWindow() // the report needs the socket
        try {
            const session = await this.tellService({ failed: b.digest.toString("hex"), reason: reason.slice(0, 64) })
            if (session.reply && session.reply.update === "confirmed") {
                await this.confirmCandidate()
                return true
            }
        } catch (e: any) {
            if (!(e instanceof RegistryError)) throw e
            // the service rolls back on its deadline anyway
        }
        await this.openWindow()
        return false
    }

    /**
     * Waits with the window open for the service to replace this program with
     * slot A. Asks again every window length, in case the request or its answer
     * was lost. Returns only if the service says the candidate was confirmed after all.
     */
    private async awaitRollback() {
        for (;;) {
            await this.sleepWindow()
            if (await this.requestRollback("no rollback within the window")) return
        }
    }
}
