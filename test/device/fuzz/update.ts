/**
 * Fuzz campaigns of the update records: the manifest map, the COSE_Sign1
 * envelope around it, and the slot and state records in flash.
 *
 * Manifest, wrong acceptance: a manifest that does not re-encode to the bytes
 * received (deterministic CBOR, RFC 8949 §4.2.1; an explicit minimum
 * sequence of 0 is the one encoding left out), or whose fields break the
 * format (16-byte ids, 32-byte digest, a size that is a non-zero multiple of
 * 32, sequences that fit 32 bits). Envelope: parts that are not the
 * protected header, payload and signature the message carries, or a
 * protected header naming anything but SLH-DSA-SHA2-128s. (Whether a mutated
 * signed manifest verifies is `manifestVerifyCampaign`'s question.)
 *
 * Verification (SLH-DSA on the VM, about half a second each), wrong
 * acceptance: a manifest verifies whose protected header, payload or
 * signature differ from the ones the owner signed, or it verifies to another manifest.
 *
 * Root document and key list (`decodeTrust`), wrong acceptance: a document
 * that is not the deterministic encoding of [kind, version, third, key…] with
 * the kind asked for, whole numbers 1..2^32-1, 1..3 distinct 32-byte keys and,
 * in a root, a threshold no larger than its keys: the rules the owner's tools
 * apply (devs/updates/trust.ts). (Whether its signatures count is the OTA test's question.)
 *
 * Records, wrong acceptance: a slot or state record the device did not
 * write, byte for byte, is ever read back (each carries an HMAC bound to its
 * settings key). And a state record the device did write, with any content,
 * must read back as a state the boot table can act on, and write again as itself.
 */
import { digest, hmac } from "@devicescript/crypto"
import { CborMap, CborTag, CborValue, decodeCbor, encodeCbor } from "../../../src/codec/cbor"
import { slotRecordKey } from "../../../src/secure/keys"
import { readBytes, SettingKey, writeBytes } from "../../../src/storage/settings"
import {
    CLASS_ID,
    decodeManifest,
    decodeSigned,
    encodeManifest,
    FirmwareManifest,
    MANIFEST_ALG,
    ManifestError,
    SignedParts,
    VENDOR_ID,
    verifyManifestParts,
} from "../../../src/update/manifest"
import { decideAtBoot, SlotStore, UpdatePhase, UpdateState } from "../../../src/update/slots"
import { decodeTrust, TrustDocument } from "../../../src/update/trust"
import { counting, pattern } from "../support"
import { Campaign, Verdict } from "./fuzzer"

/**
 * By their SHA-256 (native): a signature is 7856 bytes, two hex copies of it do not fit the VM's heap,
 * and a loop over it takes most of a fiber's step budget.
 */
function sameBytes(a: Buffer, b: Buffer): boolean {
    return a.length === b.length && digest("sha256", a).toString("hex") === digest("sha256", b).toString("hex")
}

function sameManifest(a: FirmwareManifest, b: FirmwareManifest): boolean {
    return (
        a.sequence === b.sequence &&
        a.size === b.size &&
        a.minSequence === b.minSequence &&
        sameBytes(a.vendorId, b.vendorId) &&
        sameBytes(a.classId, b.classId) &&
        sameBytes(a.digest, b.digest)
    )
}

const MANIFESTS: FirmwareManifest[] = [
    { sequence: 1, vendorId: VENDOR_ID, classId: CLASS_ID, digest: pattern(32, 7), size: 86016, minSequence: 0 },
    { sequence: 70000, vendorId: VENDOR_ID, classId: CLASS_ID, digest: counting(32, 1), size: 32, minSequence: 3 },
    {
        sequence: 4294967295,
        vendorId: counting(16, 9),
        classId: counting(16, 99),
        digest: pattern(32, 3),
        size: 4294967264,
        minSequence: 4294967295,
    },
]

function isUint32(n: number): boolean {
    return typeof n === "number" && n >= 0 && n <= 4294967295 && n === Math.floor(n)
}

/** The manifest map (src/update/manifest.ts `decodeManifest`). */
export const manifestCampaign: Campaign = {
    name: "manifest",
    seeds: MANIFESTS.map(encodeManifest),
    maxBytes: 160,
    check: async input => {
        let m: FirmwareManifest
        try {
            m = decodeManifest(input)
        } catch (e: any) {
            if (e instanceof ManifestError) return "refused"
            throw e
        }
        if (!isUint32(m.sequence) || !isUint32(m.minSequence) || !isUint32(m.size)) return { invalid: "a number outside 0..2^32-1" }
        if (m.size === 0 || m.size % 32 !== 0) return { invalid: `image size ${m.size}` }
        if (m.vendorId.length !== 16 || m.classId.length !== 16 || m.digest.length !== 32)
            return { invalid: "an id or digest of the wrong length" }
        const again = encodeManifest(m)
        if (!sameManifest(decodeManifest(again), m)) return { invalid: "does not survive re-encoding" }
        if (!sameBytes(again, input)) {
            // the one other encoding of the same manifest: the minimum sequence written out as 0
            const written = decodeCbor(input)
            if (!(written instanceof CborMap) || written.get(7) !== 0 || m.minSequence !== 0)
                return { invalid: `not the deterministic encoding of its manifest, ${again.toString("hex")}` }
        }
        return "accepted"
    },
}

/** A COSE_Sign1 around `payload`; the signature here is filler: the envelope is what this campaign reads. */
function envelope(payload: Buffer, signature: Buffer, unprotected: CborMap): Buffer {
    const protectedHeader = encodeCbor(new CborMap().set(1, MANIFEST_ALG).set(4, counting(8, 3)))
    return encodeCbor(new CborTag(18, [protectedHeader, unprotected, payload, signature]))
}

/** The signature decoded parts name (it lies in the buffer they keep). */
function signatureOf(parts: SignedParts): Buffer {
    return parts.signature.slice(parts.signatureAt, parts.signature.length)
}

/** The envelope of a signed manifest (`decodeSigned`), up to the signature check. */
export const signedManifestCampaign: Campaign = {
    name: "signed-manifest",
    seeds: [
        envelope(encodeManifest(MANIFESTS[0]), pattern(48, 5), new CborMap().set(4, counting(16, 0))),
        envelope(encodeManifest(MANIFESTS[1]), pattern(300, 3), new CborMap()),
    ],
    maxBytes: 420,
    check: async input => {
        let parts
        try {
            parts = decodeSigned(input)
        } catch (e: any) {
            if (e instanceof ManifestError) return "refused"
            throw e
        }
        const v: CborValue = decodeCbor(input, { deterministic: false, maxBytes: 8192 })
        const items = v instanceof CborTag && v.tag === 18 && Array.isArray(v.value) ? v.value : undefined
        if (!items || items.length !== 4) return { invalid: "accepted something that is not a tagged COSE_Sign1" }
        const p = items[0]
        const payload = items[2]
        const signature = items[3]
        if (!(p instanceof Buffer) || !(payload instanceof Buffer) || !(signature instanceof Buffer))
            return { invalid: "fields of the wrong type" }
        if (!sameBytes(parts.protectedHeader, p) || !sameBytes(parts.payload, payload) || !sameBytes(signatureOf(parts), signature))
            return { invalid: "returned parts the message does not carry" }
        const header = decodeCbor(p, { deterministic: false })
        if (!(header instanceof CborMap) || header.size() !== 2 || header.get(1) !== MANIFEST_ALG || !(header.get(4) instanceof Buffer))
            return { invalid: "accepted a protected header that names more or other than the algorithm and a kid" }
        if (!sameBytes(parts.kid, header.get(4) as Buffer)) return { invalid: "returned a kid the header does not name" }
        return "accepted"
    },
}

/**
 * A signed manifest made on the host with the owner's kind of key (`signed`, `publicKey`: from
 * test/host/manifest-fuzz.test.ts, through a generated module), mutated and verified as the updater does.
 */
export function manifestVerifyCampaign(signed: Buffer, publicKey: Buffer): Campaign {
    // digests only: the heap is 64 KB, and the seed and each input take 8 KB already
    const fingerprint = (p: SignedParts) =>
        [p.protectedHeader, p.payload, signatureOf(p)].map(b => digest("sha256", b).toString("hex")).join(".")
    const genuine = decodeSigned(signed)
    const manifest = decodeManifest(genuine.payload)
    const signedParts = fingerprint(genuine)
    return {
        name: "manifest-verify",
        seeds: [signed],
        maxBytes: 8192,
        check: async input => {
            let m: FirmwareManifest
            let parts: SignedParts
            try {
                parts = decodeSigned(input)
                m = await verifyManifestParts(parts, publicKey)
            } catch (e: any) {
                if (e instanceof ManifestError) return "refused"
                throw e
            }
            if (fingerprint(parts) !== signedParts) return { invalid: "a signed manifest verified with parts the owner never signed" }
            if (!sameManifest(m, manifest)) return { invalid: "verified to another manifest" }
            return "accepted"
        },
    }
}

/** A root document or key list payload as the owner's tools write it. */
function trustPayload(kind: string, version: number, third: number, keys: Buffer[]): Buffer {
    const items: CborValue[] = [kind, version, third]
    for (const k of keys) items.push(k)
    return encodeCbor(items)
}

function trustCampaign(name: string, kind: string, seeds: Buffer[]): Campaign {
    return {
        name,
        seeds,
        maxBytes: 160,
        check: async input => {
            let d: TrustDocument
            try {
                d = decodeTrust(input, kind)
            } catch (e: any) {
                if (e instanceof ManifestError) return "refused"
                throw e
            }
            if (!isUint32(d.version) || !isUint32(d.n) || d.version === 0 || d.n === 0) return { invalid: "a number outside 1..2^32-1" }
            if (d.keys.length === 0 || d.keys.length > 3) return { invalid: `${d.keys.length} keys` }
            for (let i = 0; i < d.keys.length; ++i) {
                if (!(d.keys[i] instanceof Buffer) || d.keys[i].length !== 32) return { invalid: "a key that is not 32 bytes" }
                for (let j = 0; j < i; ++j) if (sameBytes(d.keys[i], d.keys[j])) return { invalid: "a key named twice" }
            }
            if (kind === "root" && d.n > d.keys.length) return { invalid: `a threshold of ${d.n} for ${d.keys.length} keys` }
            if (!sameBytes(trustPayload(kind, d.version, d.n, d.keys), input))
                return { invalid: "not the deterministic encoding of the document it was read as" }
            return "accepted"
        },
    }
}

/** Root documents (`decodeTrust(payload, "root")`): ["root", version, threshold, key…]. */
export const rootDocumentCampaign = trustCampaign("root-document", "root", [
    trustPayload("root", 1, 2, [pattern(32, 3), pattern(32, 5), pattern(32, 11)]),
    trustPayload("root", 4294967295, 1, [counting(32, 40)]),
])

/** Key lists (`decodeTrust(payload, "keys")`): ["keys", version, root version, release key…]. */
export const keyListCampaign = trustCampaign("key-list", "keys", [
    trustPayload("keys", 1, 1, [pattern(32, 9)]),
    trustPayload("keys", 70000, 4294967295, [counting(32, 1), pattern(32, 13), pattern(32, 17)]),
])

/** States the device writes. */
const STATES: UpdateState[] = [
    { phase: UpdatePhase.Idle, securityCounter: 0, trialBoots: 0 },
    { phase: UpdatePhase.Trial, securityCounter: 7, trialBoots: 2 },
    { phase: UpdatePhase.Rollback, securityCounter: 4294967295, trialBoots: 3 },
]

const SECRET = pattern(32, 13)
const DEVICE_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
const RUNNING = pattern(32, 7)

/**
 * Slot and state records as they are in flash (`SlotStore.readSlot`, `readState`): each input is written raw
 * under one of the keys and read back. Only records the device wrote may be read back.
 */
export async function slotRecordCampaign(): Promise<Campaign> {
    const slots = new SlotStore(SECRET, DEVICE_ID)
    const written: { key: string; record: Buffer }[] = []
    const manifests = MANIFESTS.slice(0, 2)
    for (let i = 0; i < manifests.length; ++i) {
        await slots.writeSlot(SettingKey.SlotA, manifests[i])
        written.push({ key: SettingKey.SlotA, record: await readBytes(SettingKey.SlotA) })
    }
    for (let i = 0; i < STATES.length; ++i) {
        await slots.writeState(STATES[i])
        written.push({ key: SettingKey.UpdateState, record: await readBytes(SettingKey.UpdateState) })
    }
    return {
        name: "slot-records",
        seeds: written.map(w => w.record),
        maxBytes: 150,
        check: async input => {
            if (input.length === 0) return "refused" // the store takes no empty value: nothing to read back
            // every input is tried as a slot record and as a state record
            let verdict: Verdict = "refused"
            const keys: string[] = [SettingKey.SlotA, SettingKey.UpdateState]
            for (let k = 0; k < keys.length; ++k) {
                const key = keys[k]
                await writeBytes(key, input)
                let read: FirmwareManifest | UpdateState
                try {
                    read = key === SettingKey.SlotA ? await slots.readSlot(key) : await slots.readState()
                } catch (e: any) {
                    if (e instanceof ManifestError) continue
                    throw e
                }
                let i = -1
                for (let w = 0; w < written.length; ++w) if (written[w].key === key && sameBytes(written[w].record, input)) i = w
                if (i < 0) return { invalid: `${key} read back a record the device never wrote` }
                if (key === SettingKey.SlotA && !sameManifest(read as FirmwareManifest, manifests[i]))
                    return { invalid: "another manifest" }
                verdict = "accepted"
            }
            return verdict
        },
    }
}

/**
 * State records the device wrote, with contents fuzzed: the HMAC is made here with the record key, so
 * every input passes the check and reaches the decoding (`readState`) and the boot table (`decideAtBoot`).
 */
export async function stateDecodeCampaign(): Promise<Campaign> {
    const slots = new SlotStore(SECRET, DEVICE_ID)
    const values: Buffer[] = []
    for (let i = 0; i < STATES.length; ++i) {
        await slots.writeState(STATES[i])
        const record = await readBytes(SettingKey.UpdateState)
        values.push(record.slice(0, record.length - 16))
    }
    const authentic = await macOf(slots)
    return {
        name: "state-record",
        seeds: values,
        maxBytes: 48,
        check: async input => {
            await writeBytes(SettingKey.UpdateState, input.concat(authentic(input)))
            let s: UpdateState
            try {
                s = await slots.readState()
            } catch (e: any) {
                if (e instanceof ManifestError) return "refused"
                throw e
            }
            const phase = s.phase as number
            if (phase !== UpdatePhase.Idle && phase !== UpdatePhase.Approved && phase !== UpdatePhase.Deploying)
                if (phase !== UpdatePhase.Trial && phase !== UpdatePhase.Rollback) return { invalid: `phase ${phase}` }
            // counters count: whole, 0..2^53-1 (a fractional one would also be false in any condition on the device)
            const counters = [s.securityCounter, s.trialBoots]
            for (let i = 0; i < counters.length; ++i) {
                const n = counters[i]
                if (!(n >= 0 && n <= 9007199254740991) || Math.floor(n) !== n) return { invalid: `counter ${n}` }
            }
            // the boot table acts on it, whatever the slots hold
            decideAtBoot(s, undefined, MANIFESTS[0], RUNNING)
            decideAtBoot(s, MANIFESTS[1], MANIFESTS[0], MANIFESTS[0].digest)
            await slots.writeState(s)
            const again = await slots.readState()
            if (again.phase !== s.phase || again.securityCounter !== s.securityCounter || again.trialBoots !== s.trialBoots)
                return { invalid: "does not write back as itself" }
            return "accepted"
        },
    }
}

/**
 * The record MAC as slots.ts makes it, learned from the store rather than re-derived: HMAC-SHA-256
 * under the record key, bound to the settings key, cut to 16 bytes. Checked against a record the store wrote.
 */
async function macOf(slots: SlotStore): Promise<(value: Buffer) => Buffer> {
    const key = slotRecordKey(SECRET, DEVICE_ID)
    const mac = (value: Buffer) => hmac(key, "sha256", SettingKey.UpdateState, value).slice(0, 16)
    await slots.writeState(STATES[1])
    const record = await readBytes(SettingKey.UpdateState)
    if (!sameBytes(mac(record.slice(0, record.length - 16)), record.slice(record.length - 16, record.length)))
        throw new Error("the record MAC is not HMAC-SHA-256(record key, settings key || value)[0..16]")
    return mac
}
