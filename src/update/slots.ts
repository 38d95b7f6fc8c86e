/**
 * Firmware slot records and the update state machine, in flash.
 *
 *   slot A  (`SettingKey.SlotA`): manifest of the confirmed image the device runs; absent for the factory image
 *   slot B  (`SettingKey.SlotB`): manifest of the candidate being installed
 *   state   (`SettingKey.UpdateState`): phase, security counter, trial boot count
 *   (and the root and key list of `trust.ts`, as records of the same kind)
 *
 *   idle -> approved -> deploying -> trial -> (confirmed) idle
 *                                       \-> rollback -> (rolled back) idle
 *
 * The image bytes are not here: the update service holds them and the
 * runtime's program store runs them. The device knows which slot it runs by
 * comparing the SHA-256 of its running program with the slot digests, so
 * after a power cut at any step `decideAtBoot` tells what to do next.
 *
 * Each record is one settings value, written in one step, authenticated with
 * HMAC-SHA-256 under a key derived from the device secret and bound to its
 * settings key, so a corrupted or swapped record is detected (and logged by
 * the caller, as storage-corrupt) instead of trusted. The SLH-DSA signature (7856 bytes) is
 * checked once, when the manifest arrives; storing it would take 50 settings
 * values per slot, and a record only the device can authenticate is as good
 * for the device's own later reads.
 */
import { constantTimeEqual } from "../bytes/constant-time"
import { hmacSha256 } from "../bytes/natives"
import { CborMap, CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { slotRecordKey } from "../secure/keys"
import { deleteKey, readBytes, SettingKey, writeBytes } from "../storage/settings"
import { decodeManifest, encodeManifest, FirmwareManifest, ManifestError } from "./manifest"

/** Where an update stands. */
export const enum UpdatePhase {
    /** Nothing in progress. */
    Idle = 0,
    /** Slot B holds a verified manifest; the service has not been told yet. */
    Approved = 1,
    /** The service knows; the update window (WSSK) is open for the deploy. */
    Deploying = 2,
    /** The candidate runs and must prove healthy. */
    Trial = 3,
    /** The candidate failed; the window is open for the service to put slot A back. */
    Rollback = 4,
}

/** The phases' names, by `UpdatePhase`, as the state report gives them. */
export const UPDATE_PHASE_NAMES = ["idle", "approved", "deploying", "trial", "rollback"]

/** The state record. */
export interface UpdateState {
    phase: UpdatePhase
    /**
     * Anti-rollback: the highest sequence number (RFC 9124 §3.2) ever
     * confirmed, MCUboot's security counter. Nothing at or below it is installed again.
     */
    securityCounter: number
    /** Boots of the candidate so far in this trial. */
    trialBoots: number
}

const MAC_BYTES = 16
/** 2^53 - 1: past it a number no longer counts by ones. */
const MAX_COUNT = 9007199254740991

/** A whole number 0..`max`: what each field of the state record is (never fractional, negative, NaN or infinite). */
function isCount(x: CborValue, max: number): boolean {
    return typeof x === "number" && x >= 0 && x <= max && Math.floor(x) === x
}

/** Reads and writes the records of one device. */
export class SlotStore {
    private readonly macKey: Buffer

    /** `secret` is the device secret; the record key is derived from it and used for nothing else. */
    constructor(secret: Buffer, deviceId: string) {
        this.macKey = slotRecordKey(secret, deviceId)
    }

    private mac(key: string, value: Buffer): Buffer {
        return hmacSha256(this.macKey, [key, value]).slice(0, MAC_BYTES)
    }

    /** The value of an authenticated record, or `undefined` when absent. Throws `ManifestError("malformed")`. */
    async readRecord(key: string): Promise<Buffer> {
        const stored = await readBytes(key)
        if (!stored) return undefined
        if (stored.length <= MAC_BYTES) throw new ManifestError("malformed", `${key}: record too short`)
        const value = stored.slice(0, stored.length - MAC_BYTES)
        if (!constantTimeEqual(stored.slice(stored.length - MAC_BYTES, stored.length), this.mac(key, value)))
            throw new ManifestError("malformed", `${key}: record fails its check`)
        return value
    }

    /** Writes an authenticated record in one settings write (a power cut leaves the old or the new one). */
    async writeRecord(key: string, value: Buffer) {
        await writeBytes(key, value.concat(this.mac(key, value)))
    }

    /** The manifest in a slot, or `undefined` when empty. Throws `ManifestError("malformed")`. */
    async readSlot(key: string): Promise<FirmwareManifest> {
        const value = await this.readRecord(key)
        return value ? decodeManifest(value) : undefined
    }

    /** Stores a manifest in a slot. */
    async writeSlot(key: string, manifest: FirmwareManifest) {
        await this.writeRecord(key, encodeManifest(manifest))
    }

    /** Empties a slot. */
    async clearSlot(key: string) {
        await deleteKey(key)
    }

    /** The state record; idle with security counter 0 when absent. Throws `ManifestError("malformed")`. */
    async readState(): Promise<UpdateState> {
        const value = await this.readRecord(SettingKey.UpdateState)
        if (!value) return { phase: UpdatePhase.Idle, securityCounter: 0, trialBoots: 0 }
        let v: CborValue = undefined
        try {
            v = decodeCbor(value, { maxBytes: 64, maxDepth: 1, maxItems: 10 })
        } catch (e: any) {
            // refused below
        }
        const m = v instanceof CborMap ? v : new CborMap()
        const phase = m.get(1)
        const securityCounter = m.get(2)
        const trialBoots = m.get(3)
        // a key 4 (the last refused sequence, which the device no longer keeps) may still be there: it is ignored
        if (!isCount(phase, UpdatePhase.Rollback) || !isCount(securityCounter, MAX_COUNT) || !isCount(trialBoots, MAX_COUNT))
            throw new ManifestError("malformed", `${SettingKey.UpdateState}: bad record`)
        return { phase: phase as UpdatePhase, securityCounter: securityCounter as number, trialBoots: trialBoots as number }
    }

    /**
     * Writes the state record (one settings write: a power cut leaves the old or the new record):
     * a CBOR map {1: phase, 2: security counter, 3: trial boots}.
     */
    async writeState(s: UpdateState) {
        await this.writeRecord(
            SettingKey.UpdateState,
            encodeCbor(new CborMap().set(1, s.phase).set(2, s.securityCounter).set(3, s.trialBoots))
        )
    }
}

/** What the firmware must do at boot. */
export type BootAction =
    /** Run normally. */
    | "run"
    /** Approved but the service was not told: tell it and open the window. */
    | "announce"
    /** The window is open and the candidate not deployed yet: keep waiting (with a deadline). */
    | "await-deploy"
    /** The candidate runs: check it and confirm or ask for rollback. */
    | "trial"
    /** The candidate booted too often without confirming, or failed: ask the service to put slot A back. */
    | "request-rollback"
    /** Confirmed before a power cut cut the bookkeeping short: finish it. */
    | "finish-confirm"
    /** The candidate no longer runs, or there is none: record the rollback and end the update. */
    | "rolled-back"

/** The decision at boot. */
export interface BootDecision {
    action: BootAction
    /** For "trial": the candidate's boots in this trial, this one included; 0 otherwise. */
    trialBoots: number
}

/** Boots a candidate may take to confirm before the device asks for rollback by itself. */
export const MAX_TRIAL_BOOTS = 3

/** Which image runs, as far as the records can tell. */
const enum Running {
    /** Slot B is empty: there is no candidate. */
    NoCandidate = 0,
    /** Slot B's candidate does not run: slot A, or an image neither slot names. */
    NotCandidate = 1,
    /** The candidate runs. */
    Candidate = 2,
    /** The candidate runs and is already slot A: a power cut fell inside its confirmation. */
    ConfirmedCandidate = 3,
}

/**
 * The boot table, one row per phase (`UpdatePhase` order) and one column per
 * `Running` value, as MCUboot's `boot_swap_tables` maps the slots' states to
 * a swap type. A "trial" past `MAX_TRIAL_BOOTS` becomes "request-rollback".
 */
// prettier-ignore
const BOOT_TABLE: BootAction[][] = [
    //               no candidate    not the candidate  the candidate       the candidate, confirmed
    /* Idle      */ ["run",         "run",             "run",              "run"],
    /* Approved  */ ["rolled-back", "announce",        "trial",            "trial"],
    /* Deploying */ ["rolled-back", "await-deploy",    "trial",            "trial"],
    /* Trial     */ ["rolled-back", "rolled-back",     "trial",            "finish-confirm"],
    /* Rollback  */ ["rolled-back", "rolled-back",     "request-rollback", "request-rollback"],
]

/**
 * Decides the next step after a boot. `running` is the SHA-256 of the running
 * program. Pure: the caller performs the decision and writes the records.
 */
export function decideAtBoot(state: UpdateState, slotA: FirmwareManifest, slotB: FirmwareManifest, running: Buffer): BootDecision {
    let image = Running.NoCandidate
    if (slotB !== undefined) {
        if (!constantTimeEqual(running, slotB.digest)) image = Running.NotCandidate
        else if (slotA !== undefined && constantTimeEqual(slotA.digest, slotB.digest)) image = Running.ConfirmedCandidate
        else image = Running.Candidate
    }
    const action = BOOT_TABLE[state.phase][image]
    if (action !== "trial") return { action, trialBoots: 0 }
    // a trial counts its boots from the first boot of the candidate
    const trialBoots = (state.phase === UpdatePhase.Trial ? state.trialBoots : 0) + 1
    return trialBoots > MAX_TRIAL_BOOTS ? { action: "request-rollback", trialBoots: 0 } : { action, trialBoots }
}
