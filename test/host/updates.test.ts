/**
 * The update service's side, in-process: signed manifests (SLH-DSA via
 * @noble/post-quantum, COSE_Sign1 read back with cbor2), the owner's keyring
 * through rotations of its release key and its root, the key vault, and
 * the service's decisions through the registry's authenticated reports: what
 * it deploys, when it rolls back, what it refuses. The deploy target here
 * records calls; test/host/ota.test.ts runs the same service against the
 * simulator over real WSSK.
 */
import assert from "node:assert/strict"
import { createHash, randomBytes } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { after, describe, test } from "node:test"
import { decode, encode, Tag } from "cbor2"
import { Registry } from "../../devs/registry/app.ts"
import { enroll, inProcessTransport, login } from "../../devs/registry/client.ts"
import type { RegistryStore } from "../../devs/registry/store.ts"
import { makeHostDevice } from "../../devs/sim/host-device.ts"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { KeyVault } from "../../devs/updates/key-vault.ts"
import { bstr, generateSigningKey, keyId, signCose, verifyCose } from "../../devs/updates/cose-sign1.ts"
import { KeyringError } from "../../devs/updates/keyring.ts"
import {
    CLASS_ID,
    ManifestError,
    manifestFor,
    MAX_IMAGE_BYTES,
    readSignedManifest,
    signManifest,
    VENDOR_ID,
} from "../../devs/updates/manifest.ts"
import { UpdateService, type DeployTarget } from "../../devs/updates/service.ts"
import { testKeyring, trustAll } from "./support/keyring.ts"
import { ManualClock } from "./support/clock.ts"
import { storeBackends, type StoreBackend } from "./support/stores.ts"
import { sha256Hex } from "./support/digest.ts"

const { keyring, release: key, remove } = testKeyring()
after(remove)
const otherKey = generateSigningKey()

/** A verified manifest, or a ManifestError: the signature by `publicKey`, then what the manifest says. */
function verifySignedManifest(signed: Buffer, publicKey: Uint8Array) {
    const { parts, manifest } = readSignedManifest(signed)
    if (!verifyCose(parts, publicKey)) throw new ManifestError("signature does not verify")
    return manifest
}

/** An update service on `store` that holds the test keyring's root and key list. */
async function serviceOn(store: RegistryStore, options: Partial<ConstructorParameters<typeof UpdateService>[0]> = {}) {
    const service = new UpdateService({ store, vault: KeyVault.ephemeral(), event: () => {}, ...options })
    await trustAll(service, keyring)
    return service
}
const image = (n: number) => Buffer.concat([Buffer.from(`image ${n} `), randomBytes(32 * 8)]).subarray(0, 32 * 8)

describe("signed manifests", () => {
    test("vendor and class ids are the UUIDv5 values the firmware carries", () => {
        const firmware = readFileSync(join(PROJECT_ROOT, "src/update/manifest.ts"), "utf8")
        assert.match(firmware, new RegExp(`VENDOR_ID = hex\`${VENDOR_ID.toString("hex")}\``))
        assert.match(firmware, new RegExp(`CLASS_ID = hex\`${CLASS_ID.toString("hex")}\``))
        // RFC 4122 version 5, variant 10
        assert.equal(VENDOR_ID[6] >> 4, 5)
        assert.equal(CLASS_ID[8] >> 6, 2)
    })

    test("CBOR that does not decode is refused in the module's own error, naming what: a manifest's payload, a trust file", () => {
        for (const payload of [Buffer.from([0xff]), Buffer.from([0x1f]), Buffer.from([0x5a, 0xff, 0xff, 0xff, 0xff, 0x00])])
            assert.throws(() => readSignedManifest(signCose(payload, key)), /^ManifestError: payload is not CBOR$/)
        const own = testKeyring()
        try {
            const file = join(own.keyring.dir, "trust", "keys-1.cbor")
            const good = readFileSync(file)
            for (const bad of [good.subarray(0, good.length - 1), Buffer.from([0xff, 0x00]), Buffer.from([0x01])]) {
                writeFileSync(file, bad)
                assert.throws(
                    () => own.keyring.documents(),
                    (e: Error) => {
                        assert.ok(e instanceof KeyringError, `${e.name}: ${e.message}`)
                        assert.equal(e.message, `${file}: not a list of signatures (a CBOR array of COSE_Sign1 byte strings)`)
                        return true
                    }
                )
            }
        } finally {
            own.remove()
        }
    })

    test("a signed manifest is a COSE_Sign1 naming SLH-DSA-SHA2-128s and its signer's kid, and verifies", () => {
        const img = image(1)
        const signed = signManifest(manifestFor(img, 7), key)
        const cose = decode(signed) as Tag
        assert.equal(Number(cose.tag), 18)
        const [prot, , , sig] = cose.contents as Uint8Array[]
        const header = decode(prot) as Map<number, unknown>
        assert.equal(header.get(1), "SLH-DSA-SHA2-128s")
        assert.deepEqual(Buffer.from(header.get(4) as Uint8Array), keyId(key.publicKey))
        assert.equal(header.size, 2)
        assert.equal(sig.length, 7856)
        const m = verifySignedManifest(signed, key.publicKey)
        assert.equal(m.sequence, 7)
        assert.deepEqual(m.digest, createHash("sha256").update(img).digest())
        assert.equal(m.size, img.length)
    })

    test("wrong key, altered payload, altered signature and another algorithm are refused", () => {
        const signed = signManifest(manifestFor(image(2), 3), key)
        assert.throws(() => verifySignedManifest(signed, otherKey.publicKey), ManifestError)
        const cose = decode(signed) as Tag
        const [prot, unprot, payload, sig] = cose.contents as [Uint8Array, Map<number, unknown>, Uint8Array, Uint8Array]
        const reencode = (p: Uint8Array, pl: Uint8Array, s: Uint8Array) =>
            Buffer.from(encode(new Tag(18, [bstr(p), unprot, bstr(pl), bstr(s)])))
        const payload2 = Buffer.from(payload)
        payload2[payload2.length - 1] ^= 1
        assert.throws(() => verifySignedManifest(reencode(prot, payload2, sig), key.publicKey), ManifestError)
        const sig2 = Buffer.from(sig)
        sig2[100] ^= 0x80
        assert.throws(() => verifySignedManifest(reencode(prot, payload, sig2), key.publicKey), ManifestError)
        const otherAlg = Buffer.from(encode(new Map([[1, -7]])))
        assert.throws(() => verifySignedManifest(reencode(otherAlg, payload, sig), key.publicKey), /protected header/)
    })
})

describe("key vault", () => {
    test("seals per device; another device id or a flipped bit does not open", () => {
        const vault = KeyVault.ephemeral()
        const secret = randomBytes(32)
        const sealed = vault.seal("a".repeat(32), secret)
        assert.deepEqual(vault.open("a".repeat(32), sealed), secret)
        assert.ok(!sealed.includes(secret))
        assert.throws(() => vault.open("b".repeat(32), sealed))
        const bad = Buffer.from(sealed)
        bad[20] ^= 1
        assert.throws(() => vault.open("a".repeat(32), bad))
    })
})

/** Records what the service asks of a connected device. */
class RecordingTarget implements DeployTarget {
    deployed: string[] = []
    constructor(
        readonly deviceId: string,
        public running: Buffer
    ) {}
    async getHash() {
        return createHash("sha256").update(this.running).digest()
    }
    async deploy(img: Buffer) {
        this.deployed.push(sha256Hex(img))
        this.running = img
    }
}

// signing takes ~2 s each: one v1 and one v2 for every service test
const V1 = image(1)
const V2 = image(2)
const SIGNED_V1 = signManifest(manifestFor(V1, 1), key)
const SIGNED_V2 = signManifest(manifestFor(V2, 2), key)
const OTHER_V2 = image(3)
const SIGNED_OTHER_V2 = signManifest(manifestFor(OTHER_V2, 2), key)

/** Signed once, for the suite on each store (SLH-DSA signing takes seconds). */
const V5 = image(5)
const SIGNED_V5 = signManifest(manifestFor(V5, 5), key)
const SIGNED_V5_BY_OTHER = signManifest(manifestFor(V5, 5), otherKey)

for (const backend of storeBackends()) {
    after(() => backend.close())
    updateServiceSuite(backend)
}

function updateServiceSuite(backend: StoreBackend) {
    let databases = 0
    /** A fresh database for one test. */
    const freshStore = () => backend.open(`updates_${databases++}`)

    async function setup() {
        const clock = new ManualClock()
        const events: string[] = []
        const store = await freshStore()
        const service = await serviceOn(store, { trialDeadlineMs: 60_000, clock: clock.now, event: kind => events.push(kind) })
        const registry = new Registry({
            store,
            clock: clock.now,
            updates: { service, endpoint: { host: "localhost", port: 9443, windowMs: 60_000 } },
            log: () => {},
        })
        const t = inProcessTransport(registry, "10.0.0.1")
        const { device, enrollment } = await makeHostDevice()
        assert.equal((await enroll(t, enrollment)).status, 201)
        const v1 = V1
        const v2 = V2
        await service.publish(SIGNED_V1, v1)
        await service.publish(SIGNED_V2, v2)
        const report = async (r: unknown) => (await login(t, device.id, device.password, r)).body.reply as Record<string, string>
        return { store, service, registry, t, device, v1, v2, report, events, advance: (ms: number) => clock.advance(ms) }
    }

    describe(`the owner's keyring on ${backend.name}`, () => {
        test("a release key rotated and revoked, then the root replaced: the chain, the signers and the service follow", async () => {
            const own = testKeyring()
            try {
                const store = await freshStore()
                const service = new UpdateService({ store, vault: KeyVault.ephemeral(), event: () => {} })
                await trustAll(service, own.keyring)
                const first = own.keyring.releaseKey()
                const { key: second } = own.keyring.rotateReleaseKey(own.keyring.rootSigners(), true)
                own.keyring.revokeReleaseKey(keyId(first.publicKey).toString("hex"), own.keyring.rootSigners())
                await trustAll(service, own.keyring)
                assert.deepEqual(await service.trustVersions(), { root: 1, keyList: 3 })
                const img = image(3)
                await assert.rejects(
                    service.publish(signManifest(manifestFor(img, 3), first), img),
                    /not a release key of the current key list/
                )
                const oldSigners = own.keyring.rootSigners()
                const [root, list] = own.keyring.rotateRoot(oldSigners)
                assert.deepEqual([root.version, list.version], [2, 4])
                // the chain walks every root, then the key lists of the newest: the old root's keys sign no more
                const chain = own.keyring.chain()
                assert.deepEqual([chain.root?.version, chain.keyList?.version, chain.keyList?.rootVersion], [2, 4, 2])
                const newSigners = own.keyring.rootSigners()
                assert.equal(newSigners.length, 2)
                for (const k of newSigners) assert.ok(!oldSigners.some(o => Buffer.from(o.publicKey).equals(Buffer.from(k.publicKey))))
                assert.equal(Buffer.from(own.keyring.releaseKey().publicKey).toString("hex"), Buffer.from(second.publicKey).toString("hex"))
                await trustAll(service, own.keyring)
                assert.deepEqual(await service.trustVersions(), { root: 2, keyList: 4 })
                await service.publish(signManifest(manifestFor(img, 3), own.keyring.releaseKey()), img)
            } finally {
                own.remove()
            }
        })
    })

    describe(`update service on ${backend.name}`, () => {
        test("publication needs a release key of the current key list and the exact image", async () => {
            const store = await freshStore()
            // before the owner's root and key list reach the service, no key signs for it
            const bare = new UpdateService({ store, vault: KeyVault.ephemeral(), event: () => {} })
            await assert.rejects(bare.publish(SIGNED_V5, V5), /not a release key of the current key list/)
            const service = await serviceOn(store)
            await assert.rejects(service.publish(SIGNED_V5_BY_OTHER, V5), /not a release key of the current key list/)
            const other = Buffer.from(V5)
            other[0] ^= 1
            await assert.rejects(service.publish(SIGNED_V5, other), /does not match/)
            await service.publish(SIGNED_V5, V5)
            assert.equal((await store.latestFirmwareImage(CLASS_ID.toString("hex")))?.sequence, 5)
        })

        test("a second image with the sequence of a published one is refused; the first stays the one served", async () => {
            const store = await freshStore()
            const service = await serviceOn(store)
            await service.publish(SIGNED_V2, V2)
            await assert.rejects(service.publish(SIGNED_OTHER_V2, OTHER_V2), /sequence 2 is already published/)
            await assert.rejects(service.publish(SIGNED_V2, V2), /already published/)
            assert.deepEqual(await service.signedManifest(CLASS_ID.toString("hex"), sha256Hex(V2)), SIGNED_V2)
            assert.equal(await service.signedManifest(CLASS_ID.toString("hex"), sha256Hex(OTHER_V2)), undefined)
            assert.equal(await store.getFirmwareImage(sha256Hex(OTHER_V2)), undefined)
        })

        test("a root or key list published twice is refused, and the trust documents survive a new service on the store", async () => {
            const store = await freshStore()
            const service = await serviceOn(store)
            const [root] = keyring.documents()
            await assert.rejects(service.publishTrust(root.kind, root.copies), /root version 1 is not the next one, 2/)
            // another process (a second registry, the CLI) on the same store sees what was published
            const again = new UpdateService({ store, vault: KeyVault.ephemeral(), event: () => {} })
            assert.deepEqual(await again.trustVersions(), await service.trustVersions())
            assert.deepEqual(decode((await again.trustIndex())!), [1, 1])
        })

        // refused before the store is asked: once is enough
        if (backend.name === "sqlite")
            test("an image over what the device takes and a lowest sequence not below the sequence are refused, even signed", async () => {
                const service = await serviceOn(await freshStore())
                // an older signer, or a hand-made manifest, might sign them: the service checks what the manifest says
                const big = Buffer.alloc(MAX_IMAGE_BYTES + 32, 1)
                const bigManifest = { ...manifestFor(V1, 9), digest: createHash("sha256").update(big).digest(), size: big.length }
                await assert.rejects(service.publish(signManifest(bigManifest, key), big), /over the 110464 bytes/)
                const unreachable = { ...manifestFor(V1, 9), minSequence: 9 }
                await assert.rejects(service.publish(signManifest(unreachable, key), V1), /lowest sequence 9 is not below/)
            })

        test("a malformed protected header is reported as such, not as a missing key", async () => {
            const service = await serviceOn(await freshStore())
            const [, unprotected, payload, signature] = (decode(SIGNED_V1) as Tag).contents as [Uint8Array, unknown, Uint8Array, Uint8Array]
            for (const header of [Buffer.from([0xff, 0xff]), Buffer.from([0xa1, 0x01])]) {
                const bad = Buffer.from(encode(new Tag(18, [bstr(header), unprotected, bstr(payload), bstr(signature)])))
                await assert.rejects(service.publish(bad, V1), /^ManifestError: protected header is not CBOR$/)
            }
        })

        test("the WSSK key is taken once, sealed at rest; a different one later is refused and logged", async () => {
            const { store, service, device, report, events } = await setup()
            const wsskKey = randomBytes(32)
            assert.equal((await report({ wssk: wsskKey.toString("base64") })).wssk, "stored")
            assert.ok(!(await store.getDeviceUpdate(device.id))!.sealedWsskKey!.includes(wsskKey))
            assert.deepEqual(await service.masterKeyFor(device.id), wsskKey)
            assert.equal((await report({ wssk: randomBytes(32).toString("base64") })).wssk, undefined)
            assert.ok(events.includes("wssk-key-mismatch"))
            assert.deepEqual(await service.masterKeyFor(device.id), wsskKey)
        })

        test("a report without a valid SCRAM proof is never read", async () => {
            const { t, device, service } = await setup()
            const r = await login(t, device.id, randomBytes(32), { wssk: randomBytes(32).toString("base64") })
            assert.equal(r.status, 401)
            assert.equal(await service.masterKeyFor(device.id), undefined)
        })

        test("approve -> deploy of exactly that digest -> confirm", async () => {
            const { service, device, v1, v2, report } = await setup()
            await report({ wssk: randomBytes(32).toString("base64") })
            assert.match(
                (await report({ update: { approve: sha256Hex(image(9)), sequence: 9, running: sha256Hex(v1) } })).update,
                /not published/
            )
            assert.equal((await report({ update: { approve: sha256Hex(v2), sequence: 2, running: sha256Hex(v1) } })).update, "accepted")
            const target = new RecordingTarget(device.id, v1)
            await service.connected(target)
            assert.deepEqual(target.deployed, [sha256Hex(v2)])
            assert.equal((await report({ update: { confirm: sha256Hex(v2) } })).update, "accepted")
            service.disconnected(device.id)
            // confirmed: nothing more to deploy
            await service.connected(target)
            assert.deepEqual(target.deployed, [sha256Hex(v2)])
        })

        test("no confirmation before the deadline: slot A goes back; a late confirmation is refused", async () => {
            const { service, device, v1, v2, report, advance, events } = await setup()
            await report({ wssk: randomBytes(32).toString("base64") })
            await report({ update: { approve: sha256Hex(v2), sequence: 2, running: sha256Hex(v1) } })
            const target = new RecordingTarget(device.id, v1)
            await service.connected(target)
            advance(59_000)
            await service.connected(target)
            assert.deepEqual(target.deployed, [sha256Hex(v2)])
            advance(2_000)
            await service.connected(target)
            assert.deepEqual(target.deployed, [sha256Hex(v2), sha256Hex(v1)])
            assert.ok(events.includes("update-deadline") && events.includes("update-rolled-back"))
            assert.match((await report({ update: { confirm: sha256Hex(v2) } })).update, /refused/)
        })

        test("a failure report rolls back at once", async () => {
            const { service, device, v1, v2, report } = await setup()
            await report({ wssk: randomBytes(32).toString("base64") })
            await report({ update: { approve: sha256Hex(v2), sequence: 2, running: sha256Hex(v1) } })
            const target = new RecordingTarget(device.id, v1)
            await service.connected(target)
            service.disconnected(device.id)
            assert.equal((await report({ update: { failed: sha256Hex(v2), reason: "no sensor" } })).update, "accepted")
            // asked again while the rollback waits for the window: the same answer, not a refusal
            assert.equal((await report({ update: { failed: sha256Hex(v2), reason: "no sensor" } })).update, "accepted")
            await service.connected(target)
            assert.deepEqual(target.deployed, [sha256Hex(v2), sha256Hex(v1)])
        })

        test("answers the device never heard: a repeated confirmation accepted, a later failure report answered 'confirmed'", async () => {
            const { service, device, v1, v2, report, events } = await setup()
            await report({ wssk: randomBytes(32).toString("base64") })
            await report({ update: { approve: sha256Hex(v2), sequence: 2, running: sha256Hex(v1) } })
            const target = new RecordingTarget(device.id, v1)
            await service.connected(target)
            service.disconnected(device.id)
            assert.equal((await report({ update: { confirm: sha256Hex(v2) } })).update, "accepted")
            // a power cut took the answer: the candidate confirms again on its next boot...
            assert.equal((await report({ update: { confirm: sha256Hex(v2) } })).update, "accepted")
            // ...or, out of trial boots, asks for rollback, and is told it is confirmed: slot A is not deployed
            assert.equal((await report({ update: { failed: sha256Hex(v2), reason: "trial boots used up" } })).update, "confirmed")
            await service.connected(target)
            assert.deepEqual(target.deployed, [sha256Hex(v2)])
            assert.ok(!events.includes("update-refused"), `events ${events}`)
            // anything else is still refused
            assert.match((await report({ update: { confirm: sha256Hex(v1) } })).update, /refused/)
            assert.match((await report({ update: { failed: sha256Hex(v1) } })).update, /refused/)
        })

        test("a signed manifest is served by its image's digest as CBOR to anyone; there is no 'latest'", async () => {
            const { t, registry } = await setup()
            const cls = CLASS_ID.toString("hex")
            for (const [img, sequence] of [
                [V1, 1],
                [V2, 2],
            ] as const) {
                const r = await registry.handle("GET", `/v1/firmware/${cls}/${sha256Hex(img)}`, {}, Buffer.alloc(0), "x")
                assert.equal(r.status, 200)
                assert.ok(Buffer.isBuffer(r.body))
                assert.equal(verifySignedManifest(r.body as Buffer, key.publicKey).sequence, sequence)
            }
            for (const path of [
                `${cls}/latest`,
                `${cls}/${sha256Hex(image(9))}`,
                `${"0".repeat(32)}/${sha256Hex(V2)}`,
                `${cls}/${sha256Hex(V2)}x`,
            ])
                assert.equal((await t("GET", `/v1/firmware/${path}`, {})).status, 404, path)
        })

        test("the trust index and every signature of the root and key list are served; past the last is a 404", async () => {
            const { t, registry } = await setup()
            const get = async (path: string) => await registry.handle("GET", path, {}, Buffer.alloc(0), "x")
            assert.deepEqual(decode((await get("/v1/trust")).body as Buffer), [1, 1])
            const documents = keyring.documents()
            for (const d of documents)
                for (const [n, copy] of d.copies.entries())
                    assert.deepEqual((await get(`/v1/trust/${d.kind}/${d.version}/${n}`)).body, copy)
            assert.equal(documents.find(d => d.kind === "root")!.copies.length, 2)
            for (const path of ["/v1/trust/root/1/2", "/v1/trust/keys/2/0", "/v1/trust/other/1/0", "/v1/trust/root/x/0"])
                assert.equal((await t("GET", path, {})).status, 404, path)
        })
    })
}
