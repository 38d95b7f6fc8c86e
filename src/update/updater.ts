/**
 * Updates over the air, device side: the flow of ARCHITECTURE.md's update
 * window, driven by the records of `slots.ts`.
 *
 *   check:  fetch the signed manifest from the registry -> verify (SLH-DSA) ->
 *           vendor, class, sequence above the security counter -> slot B, approved ->
 *           tell the service (SCRAM-authenticated) -> open the window (WSSK)
 *   the service deploys; the runtime restarts with the new program, which
 *   boots into `trial`: it runs its health checks with the window closed, and
 *   confirms (slot A := B, security counter raised) or asks for rollback (window reopened,
 *   the service puts slot A back). A candidate that crashes never closes the
 *   window, so the service, which runs natively beside it, rolls it back on its deadline.
 *
 * The firmware calls three methods: `boot` before the sensors start (it reads
 * the records and decides what this boot is), `resumeAtBoot` once they run
 * and before the uplink takes the socket (it carries on with an update that a
 * restart interrupted, or runs a candidate's trial), and `checkAndWait` whenever
 * the uplink lends it the socket. Every step that talks to the network needs the socket free.
 */
import * as ds from "@devicescript/core"
import { constantTimeEqual } from "../bytes/constant-time"
import { base64Encode } from "../codec/base64"
import { CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { EventLog } from "../events/log"
import { DeviceIdentity } from "../identity/credentials"
import { registryExchange, RegistryError, RegistrySession, UpdateServiceInfo } from "../identity/registry-client"
import { ScramKeyCache } from "../identity/scram"
import { Endpoint } from "../net/endpoint"
import { HttpsConnection, HttpsError } from "../net/https"
import { wsskMasterKey } from "../secure/keys"
import { readBytes, SettingKey, writeBytes } from "../storage/settings"
import {
    checkManifestPolicy,
    CLASS_ID,
    decodeSignedManifest,
    FirmwareManifest,
    ManifestError,
    MAX_SIGNED_MANIFEST_BYTES,
    SignedManifestParts,
    VENDOR_ID,
    verifyManifestParts,
} from "./manifest"
import { BootDecision, decideAtBoot, SlotRecordError, SlotStore, UpdatePhase, UpdateState } from "./slots"
import { closeUpdateWindow, openUpdateWindow } from "./window"

/** Options of the updater. */
export interface UpdaterOptions {
    identity: DeviceIdentity
    events: EventLog
    registry: Endpoint
    /** The firmware signing key (SLH-DSA-SHA2-128s public key). */
    publicKey: Buffer
    /** SHA-256 of the running program. */
    runningDigest: () => Promise<Buffer>
}

/** Fields of the state record a transition changes (see `Updater.enter`). */
interface StateChange {
    securityCounter?: number
    trialBoots?: number
    refused?: number
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

/** What the updater says about the device's firmware. */
export interface UpdateStatus {
    /** SHA-256 of the running program. */
    digest: Buffer
    /** Its sequence number, or 0 when no slot names it (the image flashed at the factory). */
    sequence: number
    phase: UpdatePhase
}

/** What `check` did. */
type CheckOutcome = "up-to-date" | "window-open" | "refused" | "unreachable"

/** Drives the update state machine. */
export class Updater {
    private readonly store: SlotStore
    private readonly cache: ScramKeyCache = {}
    /** The registry: the manifest fetch and the SCRAM exchanges after it share one TLS connection, closed when the socket goes back. */
    private readonly https: HttpsConnection
    private state: UpdateState = undefined
    private slotA: FirmwareManifest = undefined
    private slotB: FirmwareManifest = undefined
    /** SHA-256 of the running program, read at boot. */
    private running: Buffer = undefined

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
        const running = await this.options.runningDigest()
        this.running = running
        const sequence = this.slotA ? this.slotA.sequence : 0
        const { securityCounter, phase } = this.state
        const image = running.toString("hex").slice(0, 16)
        console.log(`update: running ${image}, sequence ${sequence}, security counter ${securityCounter}, phase ${phase}`)
        const decision = decideAtBoot(this.state, this.slotA, this.slotB, running)
        if (decision.action === "finish-confirm") await this.finishConfirm()
        else if (decision.action === "rolled-back") {
            const candidate = this.slotB ? this.slotB.sequence : 0
            await this.options.events.record("update-rolled-back", `sequence ${candidate} rolled back; running ${sequence}`)
            await this.finish({ refused: this.slotB ? this.slotB.sequence : this.state.refused })
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
        try {
            await this.resume(decision, health)
        } finally {
            await this.https.close()
        }
    }

    private async resume(decision: BootDecision, health: TrialHealth) {
        if (decision.action === "announce") {
            if ((await this.announce()) === "window-open") await this.awaitDeploy()
        } else if (decision.action === "await-deploy") {
            await this.reopenWindow()
            await this.awaitDeploy()
        } else if (decision.action === "trial") {
            if (!(await this.trial(health))) await this.awaitRollback()
        } else if (decision.action === "request-rollback") {
            if (!(await this.requestRollback("no confirmation in its trial boots"))) await this.awaitRollback()
        }
    }

    /** The running image (its digest and, when a slot names it, its sequence) and the update's phase, for the state report. */
    status(): UpdateStatus {
        const running = this.running
        let sequence = 0
        if (this.slotB && constantTimeEqual(this.slotB.digest, running)) sequence = this.slotB.sequence
        else if (this.slotA && constantTimeEqual(this.slotA.digest, running)) sequence = this.slotA.sequence
        return { digest: running, sequence, phase: this.state.phase }
    }

    /** With the socket lent by the uplink: looks for an update and, if a window opens, waits in it. */
    async checkAndWait() {
        let outcome: CheckOutcome
        try {
            outcome = await this.check()
        } finally {
            await this.https.close()
        }
        console.log(`update: check: ${outcome}`)
        if (outcome === "window-open") await this.awaitDeploy()
    }

    private async load() {
        try {
            this.state = await this.store.readState()
            this.slotA = await this.store.readSlot(SettingKey.SlotA)
            this.slotB = await this.store.readSlot(SettingKey.SlotB)
        } catch (e: any) {
            if (!(e instanceof SlotRecordError)) throw e
            await this.options.events.record("storage-corrupt", e.message)
            // keep what can be trusted: the security counter never drops below the confirmed slot A
            let slotA: FirmwareManifest = undefined
            try {
                slotA = await this.store.readSlot(SettingKey.SlotA)
            } catch (e2: any) {
                await this.store.clearSlot(SettingKey.SlotA)
            }
            this.slotA = slotA
            this.slotB = undefined
            await this.store.clearSlot(SettingKey.SlotB)
            await this.setState({ phase: UpdatePhase.Idle, securityCounter: slotA ? slotA.sequence : 0, trialBoots: 0, refused: 0 })
        }
        if (this.slotA && this.slotA.sequence > this.state.securityCounter) this.state.securityCounter = this.slotA.sequence
    }

    private async setState(s: UpdateState) {
        await this.store.writeState(s)
        this.state = s
    }

    /**
     * Moves to `phase`, keeping security counter and refused sequence unless
     * `change` says otherwise; trial boots restart at 0 unless given.
     */
    private async enter(phase: UpdatePhase, change: StateChange = {}) {
        const s = this.state
        await this.setState({
            phase,
            securityCounter: change.securityCounter !== undefined ? change.securityCounter : s.securityCounter,
            trialBoots: change.trialBoots !== undefined ? change.trialBoots : 0,
            refused: change.refused !== undefined ? change.refused : s.refused,
        })
    }

    /** Ends an update: the idle state first (one write decides), then the candidate slot and the window. */
    private async finish(change: StateChange = {}) {
        await this.enter(UpdatePhase.Idle, change)
        await this.store.clearSlot(SettingKey.SlotB)
        this.slotB = undefined
        await closeUpdateWindow()
    }

    private async finishConfirm() {
        const b = this.slotB
        await this.finish({ securityCounter: b.sequence })
        this.slotA = b
        await this.options.events.record("update-confirmed", `sequence ${b.sequence} confirmed; security counter raised`)
    }

    /** A registry exchange carrying `update` (and our WSSK master key until the service holds it). */
    private async report(update: any): Promise<RegistrySession> {
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
        const stored = await readBytes(SettingKey.UpdateService)
        if (!stored) return undefined
        let v: CborValue
        try {
            v = decodeCbor(stored, { maxBytes: 160, maxDepth: 1, maxItems: 4 })
        } catch (e: any) {
            return undefined
        }
        if (!Array.isArray(v) || v.length !== 3) return undefined
        const host = v[0]
        const port = v[1]
        const windowMs = v[2]
        if (typeof host !== "string" || typeof port !== "number" || !(port > 0 && port < 65536)) return undefined
        if (typeof windowMs !== "number" || !(windowMs > 0)) return undefined
        return { host, port, windowMs }
    }

    /** How long a window stays open: as the service said, or the default. */
    private async windowMs(): Promise<number> {
        const service = await this.serviceEndpoint()
        return service ? service.windowMs : DEFAULT_WINDOW_MS
    }

    private async openWindow(): Promise<boolean> {
        const endpoint = await this.serviceEndpoint()
        if (!endpoint) return false
        const { secret, deviceId } = this.options.identity
        // the runtime's WSSK client takes the socket
        await this.https.close()
        await openUpdateWindow(endpoint, deviceId, wsskMasterKey(secret, deviceId))
        return true
    }

    /** Fetches the newest signed manifest for our class and decodes its parts: undefined when there is none. */
    private async fetchManifestParts(): Promise<SignedManifestParts> {
        const path = `/v1/firmware/${CLASS_ID.toString("hex")}/latest`
        const r = await this.https.request({ method: "GET", path, maxBodyBytes: MAX_SIGNED_MANIFEST_BYTES })
        if (r.status === 404) return undefined
        if (r.status !== 200) throw new HttpsError("protocol", `manifest fetch: HTTP ${r.status}`)
        // decoded here: a caller's local would keep the ~8 KB body alive through the long verification
        return decodeSignedManifest(r.body)
    }

    private async refuse(reason: string, detail: string): Promise<CheckOutcome> {
        console.log(`update: refused (${reason}): ${detail}`)
        await this.options.events.record("update-refused", `${reason}: ${detail}`)
        return "refused"
    }

    /**
     * Looks for an update and, if a valid one is offered, approves it, tells
     * the service and opens the window. Needs the socket; after "window-open"
     * the caller keeps it free (`awaitDeploy`) until the new program replaces this one.
     */
    private async check(): Promise<CheckOutcome> {
        if (this.state.phase !== UpdatePhase.Idle) return "refused"
        let parts: SignedManifestParts
        try {
            parts = await this.fetchManifestParts()
            if (!parts) return "up-to-date"
        } catch (e: any) {
            if (e instanceof HttpsError) {
                if (e.failure === "tls") await this.options.events.record("tls-refused", e.message)
                return "unreachable"
            }
            if (!(e instanceof ManifestError)) throw e
            return await this.refuse(e.reason, e.message)
        }
        let manifest: FirmwareManifest
        try {
            manifest = await verifyManifestParts(parts, this.options.publicKey)
            parts = undefined
            // the newest image may be the one we run, or one that failed its trial here before
            const running = await this.options.runningDigest()
            if (constantTimeEqual(manifest.digest, running) || manifest.sequence === this.state.refused) return "up-to-date"
            checkManifestPolicy(manifest, { vendorId: VENDOR_ID, classId: CLASS_ID, securityCounter: this.state.securityCounter })
        } catch (e: any) {
            if (!(e instanceof ManifestError)) throw e
            return await this.refuse(e.reason, e.message)
        }
        await this.store.writeSlot(SettingKey.SlotB, manifest)
        this.slotB = manifest
        await this.enter(UpdatePhase.Approved)
        await this.options.events.record("update-approved", `sequence ${manifest.sequence}, ${manifest.size} B`)
        return await this.announce()
    }

    /** Tells the service which digest we approved and opens the window. */
    private async announce(): Promise<CheckOutcome> {
        const b = this.slotB
        let session: RegistrySession
        try {
            const running = await this.options.runningDigest()
            session = await this.report({ approve: b.digest.toString("hex"), sequence: b.sequence, running: running.toString("hex") })
        } catch (e: any) {
            if (!(e instanceof RegistryError)) throw e
            return "unreachable" // still approved: the next check or boot announces again
        }
        const answer = session.reply ? session.reply.update : undefined
        if (answer !== "accepted") {
            // not approved again: the service would refuse it again (e.g. it failed its trial here)
            await this.finish({ refused: b.sequence })
            return await this.refuse("service", `update service answered ${answer || "nothing"}`)
        }
        await this.enter(UpdatePhase.Deploying)
        if (!(await this.openWindow())) {
            await this.finish()
            return await this.refuse("service", "registry named no update service")
        }
        console.log(`update: window open for sequence ${b.sequence}`)
        return "window-open"
    }

    /**
     * Opens the window again after a reboot in the middle of an update: a power
     * cut may have come after the state was written but before the runtime
     * stored its connection string. Setting it twice is harmless.
     */
    private async reopenWindow() {
        if (!(await this.openWindow())) console.log("update: no update service; waiting")
    }

    /**
     * Waits with the window open for the service to replace this program. If it
     * has not within the window the service named, closes it and abandons the update.
     */
    private async awaitDeploy() {
        await ds.sleep(await this.windowMs())
        const seq = this.slotB ? this.slotB.sequence : 0
        await this.finish()
        // also what a candidate that crashed at start leaves behind once the service has put this program back
        await this.options.events.record("update-abandoned", `sequence ${seq}: not deployed in the window`)
        console.log("update: window closed, update abandoned")
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
        let failure = await this.healthFailure(health)
        if (!failure) {
            try {
                const session = await this.report({ confirm: b.digest.toString("hex") })
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
        return await this.requestRollback(failure)
    }

    /** What fails in a candidate's health, or undefined when it is healthy. */
    private async healthFailure(health: TrialHealth): Promise<string> {
        const until = ds.millis() + TRIAL_SENSOR_WAIT_MS
        while (health.sensors.readingsTaken() === 0 && ds.millis() < until) await ds.sleep(250)
        if (health.sensors.readingsTaken() === 0) return "no valid sensor reading"
        // the uplink's probe takes the socket
        await this.https.close()
        return await health.uplink.probe()
    }

    /** The candidate becomes slot A and the security counter rises to its sequence. */
    private async confirmCandidate() {
        const b = this.slotB
        await this.store.writeSlot(SettingKey.SlotA, b)
        await this.finishConfirm()
        console.log(`update: sequence ${b.sequence} confirmed`)
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
            const session = await this.report({ failed: b.digest.toString("hex"), reason: reason.slice(0, 64) })
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
        console.log("update: waiting for rollback")
        for (;;) {
            await ds.sleep(await this.windowMs())
            if (await this.requestRollback("no rollback within the window")) return
        }
    }
}
