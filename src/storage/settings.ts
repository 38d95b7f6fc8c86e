/**
 * Raw byte values in the device's settings store (flash), with the limits the
 * runtime does not enforce itself checked before every write.
 *
 * Measured on this runtime: keys longer than 13 characters are refused, and a
 * value whose stored form passes about 220 bytes aborts the whole VM with no
 * catchable error. Values here are capped well below that.
 *
 * The settings service hides nothing: any Jacdac client on the device's bus
 * can read any key it knows, `$`-prefixed ones included (jacdac-c
 * services/settings.c answers GET for every key). Secrets at rest rely on the
 * ESP32's flash encryption; see the README.
 *
 * Every key the firmware uses is named in `SettingKey` or `SettingPrefix`
 * below, so no two concerns can take the same key by accident, and the
 * device tests check that each fits.
 */
import * as ds from "@devicescript/core"
import { settings } from "@devicescript/settings"
import { constantTimeEqual } from "../bytes/constant-time"

/** Longest key the settings service accepts. */
export const MAX_KEY_LENGTH = 13
/** Largest value written; keeps the stored form far from the ~220-byte abort. */
export const MAX_VALUE_BYTES = 160

/** The firmware's settings keys, each at most `MAX_KEY_LENGTH` characters. */
export const enum SettingKey {
    /** The boot counter (`events/log.ts`). */
    Boots = "sn_boots",
    /** The device's credentials, one record (`identity/credentials.ts`). */
    Identity = "sn_identity",
    /** Present at boot: a factory reset is asked for. */
    ResetRequest = "sn_reset",
    /** The device id the registry accepted. */
    Enrolled = "sn_enrolled",
    /** The sealed owner envelope, kept until the registry has it. */
    OwnerEnvelope = "sn_envelope",
    /** The end of the reserved block of the uplink's message counter (`secure/counter.ts`). */
    MessageCounter = "sn_piv",
    /** The highest downlink counter accepted (`uplink/downlink.ts`). */
    DownlinkCounter = "sn_dnpiv",
    /** The confirmed image's manifest (`update/slots.ts`). */
    SlotA = "sn_slotA",
    /** The candidate image's manifest. */
    SlotB = "sn_slotB",
    /** The update state record. */
    UpdateState = "sn_update",
    /** The newest root document verified, when newer than the image's trust anchor (`update/trust.ts`). */
    TrustRoot = "sn_root",
    /** The key list verified under it: the release keys, and the floor of key list versions. */
    KeyList = "sn_keys",
    /** The update service's endpoint and window length, to reopen the window offline (`update/updater.ts`). */
    UpdateService = "sn_updsrv",
    /** The device id whose WSSK master key the update service holds. */
    WsskKeyHeldFor = "sn_wsskheld",
    /** Sampling intervals the owner set by command (`pipeline/intervals.ts`). */
    SensorIntervals = "sn_intervals",
}

/**
 * Key prefixes of the rings of slots: a slot's key is the prefix and two
 * digits, and a queue slot's chunks add one more digit.
 */
export const enum SettingPrefix {
    /** The security event log (`events/log.ts`). */
    EventLog = "ev",
    /** The outbound queue's flash slots (`uplink/queue.ts`). */
    OutboundQueue = "oq",
}

/** Raised before a write that the store could not take safely. */
export class StorageError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "StorageError"
    }
}

function checkKey(key: string) {
    if (!key || key.length > MAX_KEY_LENGTH) throw new StorageError(`setting key "${key}" must be 1..${MAX_KEY_LENGTH} characters`)
}

/** How long a read waits for the settings service's answer, and how often it asks. */
const GET_TIMEOUT_MS = 1000
const GET_ATTEMPTS = 5

/**
 * Asks the settings service for `key` once; resolves with its answer, or
 * undefined if none came in time. (`ds.actionReport` waits forever: an answer
 * that never comes, as seen after long computations in the simulator, would
 * hang the caller for good.) An answer may arrive before this fiber suspends
 * (while `settings.get` is still sending: another fiber's read of the same
 * key was answered): it is kept, and the fiber does not suspend at all, since
 * resuming a fiber that is not suspended throws inside the event handler and
 * panics the VM.
 */
async function askOnce(key: string): Promise<ds.Packet> {
    const code = settings.spec.lookup("get").code
    const fiber = ds.Fiber.self()
    let done = false
    let suspended = false
    let answer: ds.Packet = undefined
    const finish = (pkt: ds.Packet) => {
        if (done) return
        done = true
        answer = pkt
        if (suspended) fiber.resume(pkt)
    }
    const unsubscribe = settings.report().subscribe(pkt => {
        if (pkt.serviceCommand === code && pkt.decode()[0] === key) finish(pkt)
    })
    const timer = setTimeout(() => finish(undefined), GET_TIMEOUT_MS)
    await settings.get(key)
    if (!done) {
        suspended = true
        answer = await ds.suspend<ds.Packet>()
    }
    clearTimeout(timer)
    unsubscribe()
    return answer
}

/** Reads a value; `undefined` when the key is absent or empty. Throws `StorageError` if the store never answers. */
export async function readBytes(key: string): Promise<Buffer> {
    checkKey(key)
    for (let attempt = 0; attempt < GET_ATTEMPTS; ++attempt) {
        const pkt = await askOnce(key)
        if (!pkt) continue
        const value = pkt.decode()[1] as Buffer
        return value && value.length > 0 ? value : undefined
    }
    throw new StorageError(`setting "${key}": no answer`)
}

/** Answers read before a value that differs from the one written is taken for a refusal (see `confirmStored`). */
const CONFIRM_READS = 4

/**
 * Reads `key` back until the settings service has handled the write before it.
 * `set` and `delete` are commands the service never acknowledges: the promise
 * resolves when the packet is queued, and the flash is written when the
 * service gets to it. A power cut in between lost the write (measured in the
 * simulator: 3 of 5 writes lost when the VM was killed as the next line
 * printed). The service handles packets in order and syncs the flash before it
 * answers the read, so an answer with the new value means the write is stored.
 *
 * Answers name their key, not their read, so the first may be stale: the late
 * answer to an earlier read of the key that gave up waiting (a burst of writes
 * keeps the service busier than `GET_TIMEOUT_MS`; seen under 100 commands at
 * once, whose counter writes then looked refused). Each earlier read is
 * answered once, and before ours, so reading again reaches ours; a value
 * still different after `CONFIRM_READS` answers means the service refused the
 * write (a full store, for one).
 */
async function confirmStored(key: string, value: Buffer) {
    for (let i = 0; i < CONFIRM_READS; ++i) {
        const stored = await readBytes(key)
        if (value ? constantTimeEqual(stored, value) : stored === undefined) return
    }
    throw new StorageError(`setting "${key}": ${value ? "write" : "deletion"} not taken`)
}

/**
 * Writes a value after checking key and size, and resolves once it is in
 * flash; throws `StorageError` instead of writing too much, or if the store
 * did not take it.
 */
export async function writeBytes(key: string, value: Buffer): Promise<void> {
    checkKey(key)
    if (!(value instanceof Buffer) || value.length === 0) throw new StorageError(`setting "${key}": empty value`)
    if (value.length > MAX_VALUE_BYTES) throw new StorageError(`setting "${key}": ${value.length} bytes exceeds ${MAX_VALUE_BYTES}`)
    await settings.set(key, value)
    await confirmStored(key, value)
}

/** Deletes a key (absent keys are fine) and resolves once the deletion is in flash. */
export async function deleteKey(key: string): Promise<void> {
    checkKey(key)
    await settings.delete(key)
    await confirmStored(key, undefined)
}
