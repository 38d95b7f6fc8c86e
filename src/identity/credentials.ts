/**
 * The device's own credentials, made on first boot from the hardware random
 * source: there is no factory default, and no two devices share anything
 * (seed: "Guessing the credentials", "Usernames and passwords").
 *
 * - secret: 32 random bytes; the SCRAM password. Never printed, logged or sent.
 * - device id: 16 random bytes as hex; the public name in the registry and topics.
 * - claim code: 20 random bytes (160 bits) as grouped base32, printed once on
 *   the console for the owner. Only the salted PBKDF2 verifier of its claim
 *   proof is stored, and the owner envelope it seals (owner-envelope.ts), so
 *   the code itself never rests in flash.
 *
 * The identity record is one settings value, written in one step after the
 * envelope: a power cut leaves either no identity (the next boot makes one,
 * overwriting a stray envelope) or a whole one.
 */
import { randomBytes } from "../bytes/natives"
import { base32Encode, groupCode } from "../codec/base32"
import { CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { claimProof, ownerRoot, SECRET_BYTES } from "../secure/keys"
import { deleteKey, readBytes, SettingKey, writeBytes } from "../storage/settings"
import { sealOwnerEnvelope } from "./owner-envelope"
import { pbkdf2Sha256, SCRAM_MIN_ITERATIONS } from "./scram"

const RECORD_VERSION = 1
const DEVICE_ID_BYTES = 16
const CLAIM_CODE_BYTES = 20
const SALT_BYTES = 16

/** Salted slow hash of the claim code: what the registry gets to check a claim. */
export interface ClaimVerifier {
    salt: Buffer
    iterations: number
    /** PBKDF2-HMAC-SHA-256(code, salt, iterations), 32 bytes. */
    hash: Buffer
}

/** The credentials a device made for itself. */
export interface DeviceIdentity {
    /** 32 lowercase hex characters. */
    deviceId: string
    /** The SCRAM password. Never leaves the device. */
    secret: Buffer
    claim: ClaimVerifier
}

/** Raised when the stored identity cannot be trusted; only a factory reset recovers. */
export class IdentityError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "IdentityError"
    }
}

/** Computes the verifier of a claim code's proof with a fresh salt. */
export async function makeClaimVerifier(code: string): Promise<ClaimVerifier> {
    const salt = randomBytes(SALT_BYTES)
    const hash = await pbkdf2Sha256(Buffer.from(claimProof(code)), salt, SCRAM_MIN_ITERATIONS)
    return { salt, iterations: SCRAM_MIN_ITERATIONS, hash }
}

function encodeIdentity(id: DeviceIdentity): Buffer {
    return encodeCbor([RECORD_VERSION, Buffer.from(id.deviceId, "hex"), id.secret, id.claim.salt, id.claim.iterations, id.claim.hash])
}

function isBytes(v: CborValue, n: number): boolean {
    return v instanceof Buffer && v.length === n
}

/** Parses a stored record; anything unexpected is an `IdentityError`, never a partial identity. */
export function decodeIdentity(b: Buffer): DeviceIdentity {
    let v: CborValue
    try {
        v = decodeCbor(b, { maxBytes: 200, maxDepth: 1, maxItems: 8 })
    } catch (e: any) {
        throw new IdentityError(`stored identity is not valid CBOR: ${e.message}`)
    }
    if (!Array.isArray(v) || v.length !== 6 || v[0] !== RECORD_VERSION) throw new IdentityError("stored identity has an unknown layout")
    const [, id, secret, salt, iterations, hash] = v
    if (
        !isBytes(id, DEVICE_ID_BYTES) ||
        !isBytes(secret, SECRET_BYTES) ||
        !isBytes(salt, SALT_BYTES) ||
        !isBytes(hash, 32) ||
        typeof iterations !== "number" ||
        iterations < SCRAM_MIN_ITERATIONS
    )
        throw new IdentityError("stored identity has invalid fields")
    return {
        deviceId: (id as Buffer).toString("hex"),
        secret: secret as Buffer,
        claim: { salt: salt as Buffer, iterations, hash: hash as Buffer },
    }
}

/** What `loadOrCreateIdentity` found or made. */
export interface IdentityResult {
    identity: DeviceIdentity
    /** True on the boot that made it. */
    created: boolean
}

/** Options of `loadOrCreateIdentity`. */
export interface IdentityOptions {
    /**
     * Shown the grouped claim code once, on the boot that makes the identity;
     * it is not stored and cannot be shown again.
     */
    showClaimCode: (groupedCode: string) => void
}

/**
 * Loads the stored identity, or makes one on first boot. A stored record that
 * does not parse is not replaced: that would let anyone who can corrupt flash
 * mint a fresh, unclaimed identity. It throws `IdentityError` instead.
 */
export async function loadOrCreateIdentity(options: IdentityOptions): Promise<IdentityResult> {
    const stored = await readBytes(SettingKey.Identity)
    if (stored) return { identity: decodeIdentity(stored), created: false }
    const code = base32Encode(randomBytes(CLAIM_CODE_BYTES))
    const identity: DeviceIdentity = {
        deviceId: randomBytes(DEVICE_ID_BYTES).toString("hex"),
        secret: randomBytes(SECRET_BYTES),
        claim: await makeClaimVerifier(code),
    }
    const envelope = await sealOwnerEnvelope(ownerRoot(identity.secret, identity.deviceId), code, identity.deviceId)
    await writeBytes(SettingKey.OwnerEnvelope, envelope)
    await writeBytes(SettingKey.Identity, encodeIdentity(identity))
    // shown only once it is stored, so a printed code always matches a stored identity
    options.showClaimCode(groupCode(code))
    return { identity, created: true }
}

/** Whether a factory reset was requested (`SettingKey.ResetRequest` is present). */
export async function factoryResetRequested(): Promise<boolean> {
    return !!(await readBytes(SettingKey.ResetRequest))
}

/** Wipes the identity, its enrollment mark and the reset request; the next `loadOrCreateIdentity` makes new credentials. */
export async function wipeIdentity() {
    await deleteKey(SettingKey.Identity)
    await deleteKey(SettingKey.Enrolled)
    await deleteKey(SettingKey.OwnerEnvelope)
    await deleteKey(SettingKey.ResetRequest)
}

/** Whether the registry has accepted this identity's enrollment. */
export async function isEnrolled(identity: DeviceIdentity): Promise<boolean> {
    const b = await readBytes(SettingKey.Enrolled)
    return !!b && b.toString("hex") === identity.deviceId
}

/** Records that the registry accepted this identity. */
export async function markEnrolled(identity: DeviceIdentity) {
    await writeBytes(SettingKey.Enrolled, Buffer.from(identity.deviceId, "hex"))
}

/** The sealed owner envelope made at first boot, if still stored. */
export async function readOwnerEnvelope(): Promise<Buffer> {
    return await readBytes(SettingKey.OwnerEnvelope)
}
