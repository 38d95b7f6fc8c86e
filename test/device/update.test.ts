import { describe, expect, test } from "@devicescript/test"
import { digest } from "@devicescript/crypto"
import { CborMap, CborValue, encodeCbor } from "../../src/codec/cbor"
import { readBytes, SettingKey, writeBytes } from "../../src/storage/settings"
import {
    checkManifestPolicy,
    CLASS_ID,
    decodeManifest,
    encodeManifest,
    FirmwareManifest,
    ManifestError,
    VENDOR_ID,
} from "../../src/update/manifest"
import {
    SLH_D,
    SLH_H,
    SLH_H_PRIME,
    SLH_IDX_LEAF_BYTES,
    SLH_IDX_TREE_BYTES,
    SLH_M,
    SLH_MD_BYTES,
    SLH_PK_BYTES,
    SLH_SIG_BYTES,
} from "../../src/update/slh-dsa"
import { decideAtBoot, MAX_TRIAL_BOOTS, SlotStore, UpdatePhase, UpdateState } from "../../src/update/slots"
import { decodeTrust } from "../../src/update/trust"
import { asyncRefusal, thrown } from "./support"

function manifest(sequence: number, image: string): FirmwareManifest {
    return { sequence, vendorId: VENDOR_ID, classId: CLASS_ID, digest: digest("sha256", Buffer.from(image)), size: 1024, minSequence: 0 }
}

/** Why `f` refuses a manifest: the reason of the ManifestError it must throw. */
function reason(f: () => void): string {
    return thrown(ManifestError, f).reason
}

function state(phase: UpdatePhase, trialBoots = 0): UpdateState {
    return { phase, securityCounter: 1, trialBoots }
}

const A = manifest(1, "v1")
const B = manifest(2, "v2")
const OTHER = digest("sha256", Buffer.from("something else"))

describe("firmware manifest", () => {
    test("round-trips through CBOR", () => {
        const m = decodeManifest(
            encodeManifest({ sequence: 70000, vendorId: VENDOR_ID, classId: CLASS_ID, digest: B.digest, size: 4096, minSequence: 3 })
        )
        expect(m.sequence).toBe(70000)
        expect(m.size).toBe(4096)
        expect(m.minSequence).toBe(3)
        expect(m.digest.toString("hex")).toBe(B.digest.toString("hex"))
    })
    test("refuses malformed manifests", () => {
        const base = () => new CborMap().set(1, 1).set(2, 5).set(3, VENDOR_ID).set(4, CLASS_ID).set(5, B.digest).set(6, 1024)
        expect(decodeManifest(encodeCbor(base())).sequence).toBe(5)
        expect(reason(() => decodeManifest(encodeCbor(base().set(1, 2))))).toBe("malformed") // unknown format
        expect(reason(() => decodeManifest(encodeCbor(base().set(5, B.digest.slice(0, 31)))))).toBe("malformed")
        expect(reason(() => decodeManifest(encodeCbor(base().set(6, 1000))))).toBe("malformed") // not a multiple of 32
        expect(reason(() => decodeManifest(encodeCbor(base().set(2, -1))))).toBe("malformed")
        expect(reason(() => decodeManifest(encodeCbor(base().set(9, 1))))).toBe("malformed") // unknown element
        expect(reason(() => decodeManifest(hex`a1`))).toBe("malformed") // truncated CBOR
        expect(reason(() => decodeManifest(encodeCbor([1, 2])))).toBe("malformed")
    })
    test("policy: our vendor and class only, above the security counter, preconditions met", () => {
        const policy = { vendorId: VENDOR_ID, classId: CLASS_ID, securityCounter: 4 }
        checkManifestPolicy(manifest(5, "x"), policy) // throws if refused
        expect(reason(() => checkManifestPolicy(manifest(4, "x"), policy))).toBe("rollback")
        expect(reason(() => checkManifestPolicy(manifest(1, "x"), policy))).toBe("rollback")
        const foreign = manifest(5, "x")
        foreign.classId = VENDOR_ID
        expect(reason(() => checkManifestPolicy(foreign, policy))).toBe("wrong-device")
        const needsNewer = manifest(6, "x")
        needsNewer.minSequence = 5
        expect(reason(() => checkManifestPolicy(needsNewer, policy))).toBe("precondition")
    })
})

describe("root documents and key lists", () => {
    const k1 = digest("sha256", Buffer.from("k1"))
    const k2 = digest("sha256", Buffer.from("k2"))
    const k3 = digest("sha256", Buffer.from("k3"))
    const k4 = digest("sha256", Buffer.from("k4"))
    test("are read as the owner's tools write them", () => {
        const root = decodeTrust(encodeCbor(["root", 2, 2, k1, k2, k3]), "root")
        expect(root.version).toBe(2)
        expect(root.n).toBe(2)
        expect(root.keys.length).toBe(3)
        expect(root.keys[2].toString("hex")).toBe(k3.toString("hex"))
        const list = decodeTrust(encodeCbor(["keys", 4294967295, 7, k4]), "keys")
        expect(list.version).toBe(4294967295)
        expect(list.n).toBe(7)
    })
    test("refuse what the tools refuse (devs/updates/trust.ts)", () => {
        const refused: [string, CborValue[]][] = [
            ["root", ["keys", 1, 1, k1]],
            ["keys", ["keys", 3, 1]],
            ["keys", ["keys", 3, 1, k1, k2, k3, k4]],
            ["keys", ["keys", 3, 1, k1, k2, k1]],
            ["keys", ["keys", 3, 1, k1.slice(0, 31)]],
            ["keys", ["keys", 1.5, 1, k1]],
            ["keys", ["keys", 4294967296, 1, k1]],
            ["keys", ["keys", 0, 1, k1]],
            ["keys", ["keys", 3, 2.5, k1]],
            ["keys", ["keys", "3", 1, k1]],
            ["root", ["root", 1, 3, k1, k2]],
            ["root", ["root", 1, 0, k1]],
        ]
        refused.forEach(c => expect(reason(() => decodeTrust(encodeCbor(c[1]), c[0]))).toBe("malformed"))
    })
})

describe("SLH-DSA-SHA2-128s parameters", () => {
    test("the sizes computed from the FIPS 205 Table 2 row are the table's", () => {
        expect(SLH_H_PRIME * SLH_D).toBe(SLH_H)
        // Alg. 20's split of the digest fills m exactly: 21 + 7 + 2 bytes
        expect(SLH_MD_BYTES).toBe(21)
        expect(SLH_IDX_TREE_BYTES).toBe(7)
        expect(SLH_IDX_LEAF_BYTES).toBe(2)
        expect(SLH_MD_BYTES + SLH_IDX_TREE_BYTES + SLH_IDX_LEAF_BYTES).toBe(SLH_M)
        expect(SLH_PK_BYTES).toBe(32)
        expect(SLH_SIG_BYTES).toBe(7856)
    })
})

describe("slot records", () => {
    const secret = digest("sha256", Buffer.from("test secret"))
    const store = new SlotStore(secret, "00112233445566778899aabbccddeeff")
    test("write and read back slots and state", async () => {
        await store.writeSlot(SettingKey.SlotA, A)
        await store.writeSlot(SettingKey.SlotB, B)
        await store.writeState({ phase: UpdatePhase.Trial, securityCounter: 1, trialBoots: 2 })
        expect((await store.readSlot(SettingKey.SlotA)).sequence).toBe(1)
        expect((await store.readSlot(SettingKey.SlotB)).sequence).toBe(2)
        const s = await store.readState()
        expect(s.phase).toBe(UpdatePhase.Trial)
        expect(s.trialBoots).toBe(2)
    })
    test("a flipped bit in flash is detected, not trusted", async () => {
        const bad = (await readBytes(SettingKey.SlotB)).slice(0)
        bad[10] = bad[10] ^ 1
        await writeBytes(SettingKey.SlotB, bad)
        const refusal = await asyncRefusal(ManifestError, async () => await store.readSlot(SettingKey.SlotB))
        expect(refusal).toBe(`${SettingKey.SlotB}: record fails its check`)
    })
    test("a record moved to another key is detected (slot A's bytes under slot B)", async () => {
        await writeBytes(SettingKey.SlotB, await readBytes(SettingKey.SlotA))
        const refusal = await asyncRefusal(ManifestError, async () => await store.readSlot(SettingKey.SlotB))
        expect(refusal).toBe(`${SettingKey.SlotB}: record fails its check`)
    })
    test("a state record that passes its check but holds a fractional phase or a negative counter is refused", async () => {
        const record = (phase: number, securityCounter: number, trialBoots: number) =>
            encodeCbor(new CborMap().set(1, phase).set(2, securityCounter).set(3, trialBoots))
        const bad = [record(1.5, 0, 0), record(-1, 0, 0), record(5, 0, 0), record(1, -1, 0), record(1, 2.5, 0), record(1, 0, -3)]
        bad.push(record(1, Infinity, 0), record(1, NaN, 0), record(3, 1, 0.5))
        for (const value of bad) {
            await store.writeRecord(SettingKey.UpdateState, value)
            const refusal = await asyncRefusal(ManifestError, async () => await store.readState())
            expect(refusal).toBe(`${SettingKey.UpdateState}: bad record`)
        }
        await store.writeRecord(SettingKey.UpdateState, record(UpdatePhase.Rollback, 7, 2))
        expect((await store.readState()).securityCounter).toBe(7)
    })
    test("another device's key does not accept the records", async () => {
        const other = new SlotStore(secret, "ffeeddccbbaa99887766554433221100")
        const refusal = await asyncRefusal(ManifestError, async () => await other.readState())
        expect(refusal).toBe(`${SettingKey.UpdateState}: record fails its check`)
    })
})

describe("what to do at boot", () => {
    test("idle runs", () => {
        expect(decideAtBoot(state(UpdatePhase.Idle), A, undefined, A.digest).action).toBe("run")
    })
    test("approved but not announced: announce; a candidate already running starts its trial", () => {
        expect(decideAtBoot(state(UpdatePhase.Approved), A, B, A.digest).action).toBe("announce")
        const d = decideAtBoot(state(UpdatePhase.Approved), A, B, B.digest)
        expect(d.action).toBe("trial")
        expect(d.trialBoots).toBe(1)
    })
    test("deploying: wait while slot A runs, trial once slot B runs", () => {
        expect(decideAtBoot(state(UpdatePhase.Deploying), A, B, A.digest).action).toBe("await-deploy")
        const d = decideAtBoot(state(UpdatePhase.Deploying), A, B, B.digest)
        expect(d.action).toBe("trial")
        expect(d.trialBoots).toBe(1)
    })
    test("trial: counts boots, asks for rollback after too many", () => {
        const d = decideAtBoot(state(UpdatePhase.Trial, 1), A, B, B.digest)
        expect(d.action).toBe("trial")
        expect(d.trialBoots).toBe(2)
        expect(decideAtBoot(state(UpdatePhase.Trial, MAX_TRIAL_BOOTS), A, B, B.digest).action).toBe("request-rollback")
    })
    test("trial with slot A running again: rolled back", () => {
        expect(decideAtBoot(state(UpdatePhase.Trial, 1), A, B, A.digest).action).toBe("rolled-back")
        expect(decideAtBoot(state(UpdatePhase.Trial, 1), undefined, B, OTHER).action).toBe("rolled-back")
    })
    test("power cut between writing slot A and the state: finish the confirmation", () => {
        expect(decideAtBoot(state(UpdatePhase.Trial, 1), B, B, B.digest).action).toBe("finish-confirm")
    })
    test("rollback requested: keep asking while slot B runs, done once it does not", () => {
        expect(decideAtBoot(state(UpdatePhase.Rollback, 1), A, B, B.digest).action).toBe("request-rollback")
        expect(decideAtBoot(state(UpdatePhase.Rollback, 1), A, B, A.digest).action).toBe("rolled-back")
    })
    test("an update without a candidate slot ends", () => {
        expect(decideAtBoot(state(UpdatePhase.Deploying), A, undefined, A.digest).action).toBe("rolled-back")
    })
})
