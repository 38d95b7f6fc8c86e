/**
 * Updates over the air end to end: the real firmware in the simulator with
 * persistent flash (`devs run IMAGE`, then `devs vm` after each power cut,
 * beside a devtools server), the real registry, Mosquitto and update service,
 * and the runtime's own WSSK client deploying over wss://. The owner names
 * each release in a sealed `update` command and reads the device's sealed
 * reports on up/update. The images trust a root the test makes (2 of 3 keys).
 *
 * 1. v1 runs an image no trusted manifest names, and says so; once its owner
 *    names v1's own release, it knows its sequence.
 * 2. What the device must refuse, served as a compromised or broken registry
 *    would: a tampered manifest, one signed by a key not in the key list, a
 *    truncated signature, a manifest of another release; and an image the
 *    store altered after signing (the service refuses to deploy it).
 * 3. v1 -> v2 with a power cut at every step: once the service has taken the
 *    approval (the device never hears the answer), as the window opens, in
 *    the middle of the deploy (no valid program left: the runtime still
 *    reconnects natively and the service deploys again), as the trial
 *    begins, and twice once the service has taken the confirmation (out of
 *    trial boots, the device asks for rollback and is told it is confirmed).
 *    Ends confirmed, reported approved, trial and confirmed, with no
 *    auth-failure once it is back on MQTT.
 * 4. A downgrade (old, validly signed manifest) is refused.
 * 5. A release key rotated (the old one revoked) with a power cut while the
 *    device verifies the new key list: the old list stays in force, the new
 *    one is taken on the next try, and a manifest signed by the revoked key
 *    is refused; a key list below the device's floor is refused.
 * 6. A candidate that crashes at start is rolled back by the service's deadline.
 * 7. A root replaced by one its predecessor's threshold did not sign, or with a repeated signer, is
 *    refused; the real root rotation is taken.
 * 8. A candidate that fails its health check (broker down) asks for rollback, gets it, and reports it from the old program.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { decode, encode, Tag } from "cbor2"
import { OTA_ANCHOR_PATH } from "../../devs/project.ts"
import type { Verified } from "../../devs/owner/verifier.ts"
import type { FirmwareUpdates } from "../../devs/registry/firmware-updates.ts"
import { startLocalStack, type LocalStack } from "../../devs/stack/local.ts"
import { buildImage, startDevtools, type Devtools } from "../../devs/sim/devs-cli.ts"
import { SimulatedDevice } from "../../devs/sim/simulated-device.ts"
import { until } from "../../devs/sim/until.ts"
import { bstr, generateSigningKey, keyId, signCose } from "../../devs/updates/cose-sign1.ts"
import { publishDocuments, writeTrustAnchor } from "../../devs/updates/keyring.ts"
import { CLASS_ID, manifestFor, signManifest } from "../../devs/updates/manifest.ts"
import type { UpdateService } from "../../devs/updates/service.ts"
import { encodeRoot } from "../../devs/updates/trust.ts"
import { sha256Hex } from "./support/digest.ts"
import { testKeyring } from "./support/keyring.ts"

const dir = mkdtempSync(join(tmpdir(), "ota-test-"))
const transcript: string[] = []
const TRIAL_DEADLINE_MS = 45_000
const WINDOW_MS = 20_000
let stack: LocalStack
let devtools: Devtools
/** The next power cut: made when `when` first holds for a service log line, deploy progress or a request the registry serves. */
let pendingCut: { when: (what: string) => boolean; made: boolean } | undefined
const owner = testKeyring()
const otherKey = generateSigningKey()
const images: Record<string, Buffer> = {}
/** What the registry serves instead of what the service holds, as a compromised or broken server would; empty for none. */
const forged: { manifest?: Buffer; trustIndex?: Buffer; trustCopy?: (kind: string, version: number, copy: number) => Buffer | undefined } =
    {}

let device: SimulatedDevice

/**
 * Arms a power cut for the moment `when` holds for what the services do
 * (their log lines, `deploy WRITTEN/TOTAL`, and `GET trust/KIND/VERSION/COPY`);
 * returns whether it was made. The kill is issued before the answer is sent.
 */
function cutPowerWhen(when: (what: string) => boolean): () => boolean {
    const cut = { when, made: false }
    pendingCut = cut
    return () => cut.made
}

function cutIfDue(what: string) {
    if (!pendingCut?.when(what)) return
    pendingCut.made = true
    pendingCut = undefined
    void device.powerCut()
}

/** The registry's view of the update service, with `forged` in front. */
function served(service: UpdateService): FirmwareUpdates {
    return {
        signedManifest: async (classId, digest) => forged.manifest ?? (await service.signedManifest(classId, digest)),
        trustIndex: async () => forged.trustIndex ?? (await service.trustIndex()),
        trustCopy: async (kind, version, copy) => {
            cutIfDue(`GET trust/${kind}/${version}/${copy}`)
            return forged.trustCopy ? forged.trustCopy(kind, version, copy) : service.trustCopy(kind, version, copy)
        },
        handleReport: (id, report) => service.handleReport(id, report),
    }
}

async function publish(name: string, sequence: number): Promise<Buffer> {
    const signed = signManifest(manifestFor(images[name], sequence), owner.keyring.releaseKey())
    await stack.updates.publish(signed, images[name])
    return signed
}

/** Whether the device's MQTT session is up now: its last connection line is the uplink's (subscribed by then). */
function online(): boolean {
    const last = device.lines.filter(l => /^(uplink: connected to|connecting to |update: )/.test(l)).pop()
    return last?.startsWith("uplink: connected to") === true
}

/**
 * The owner names a release once the device is online, and names it again, as an owner would, when the device did
 * not take the command: commands go at QoS 0 on a clean session, so one sent while the device reconnects is lost
 * (a loaded machine drops the device's session now and then). Returns the index of the next device line and report.
 */
async function requestUpdate(image: Buffer, sequence: number): Promise<{ from: number; reports: number }> {
    const at = { from: device.lines.length, reports: device.updates.length }
    for (let attempt = 1; ; attempt++) {
        await until("the device online", online, 60_000)
        const sent = device.lines.length
        await device.requestUpdate(sha256Hex(image), sequence)
        try {
            await device.waitFor(/^uplink: command update$/, 30_000, sent)
            return at
        } catch (e) {
            if (attempt === 3) throw e
            transcript.push(`${Date.now()} test: the device did not take update ${sequence} (attempt ${attempt}); naming it again`)
        }
    }
}

/** Registry-side events of a kind for the device. */
const registryEvents = (kind: string) => stack.registry.store.events({ kind, identity: device.id })

before(async () => {
    writeTrustAnchor(owner.keyring.anchor(), OTA_ANCHOR_PATH)
    images.v1 = await buildImage("test/device/fixtures/ota-v1.ts", join(dir, "v1.devs"))
    images.v2 = await buildImage("test/device/fixtures/ota-v2.ts", join(dir, "v2.devs"))
    images.v3 = await buildImage("test/device/fixtures/ota-v3.ts", join(dir, "v3.devs"))
    images.crash = await buildImage("test/device/fixtures/ota-crash.ts", join(dir, "crash.devs"))
    stack = await startLocalStack({
        dir,
        trialDeadlineMs: TRIAL_DEADLINE_MS,
        updateWindowMs: WINDOW_MS,
        served,
        onDeployProgress: (_id, written, total) => cutIfDue(`deploy ${written}/${total}`),
        onLog: (service, line) => {
            transcript.push(`${Date.now()} ${service}: ${line}`)
            cutIfDue(line)
        },
    })
    await publishDocuments(stack.updates, owner.keyring.documents())
    await publish("v1", 1)
    devtools = await startDevtools(dir)
    device = new SimulatedDevice({ stack, dir, devtools, transcript })
})

after(async () => {
    await device?.stop()
    devtools?.stop()
    await stack?.stop()
    owner.remove()
    if (process.env.FIRMWARE_LOG) writeFileSync(process.env.FIRMWARE_LOG, transcript.join("\n"))
    rmSync(dir, { recursive: true, force: true })
})

/**
 * Asks the device for its state report; resolves with it as the owner verified it. Commands go at QoS 0, so one
 * sent while the device reconnects is lost: asked again every 15 s.
 */
async function askState(): Promise<Record<string, unknown>> {
    const at = device.verified.length
    const report = () => device.verified.slice(at).find(m => m.kind === "state") as Extract<Verified, { kind: "state" }> | undefined
    for (let ask = 0; ask < 4 && !report(); ask++) {
        await device.command({ cmd: "state" })
        await until("a state report", () => report() !== undefined, 15_000).catch(() => {})
    }
    assert.ok(report(), "no state report after 4 asks")
    return report()!.state
}

/** What a state report says of the running image: its digest's first bytes (hex) and its sequence. */
const pick = (state: Record<string, unknown>) => ({ image: state.image, seq: state.seq })

describe("updates over the air", () => {
    test("v1 runs an image no trusted manifest names and says so; named by its owner, it knows its sequence", async () => {
        device.start(["run", join(dir, "v1.devs")])
        await device.waitFor(/^uplink: connected to/, 90_000)
        const v1 = sha256Hex(images.v1).slice(0, 16)
        const boot = device.lines.find(l => /^update: running /.test(l))!
        assert.match(boot, new RegExp(`^update: running ${v1}, sequence unknown, security counter 0, phase 0`))
        assert.ok(device.events().includes(`image-unknown: ${v1}`), `events ${device.events()}`)
        // its state report says the same: its image, and sequence 0 (no trusted manifest names it); the owner flags it
        assert.deepEqual(pick(await askState()), { image: v1, seq: 0 })
        assert.deepEqual(device.store.unknownImage(device.id)?.image, v1)
        const { from, reports } = await requestUpdate(images.v1, 1)
        await device.waitFor(/^update: check: up-to-date/, 60_000, from)
        const report = await device.waitForReport(sha256Hex(images.v1), "confirmed", 30_000, reports)
        assert.deepEqual(report, { digest: sha256Hex(images.v1), sequence: 1, step: "confirmed", reason: "running it already" })
        assert.equal(device.starts(from), 0)
        assert.deepEqual(pick(await askState()), { image: v1, seq: 1 }, "the sequence of the manifest that names the image it runs")
        assert.equal(device.store.unknownImage(device.id), undefined)
        // after a power cut, it still knows: slot A holds v1's manifest, and the security counter follows it
        await device.powerCut()
        const back = device.lines.length
        device.start(["vm"])
        await device.waitFor(new RegExp(`^update: running ${v1}, sequence 1, security counter 1, phase 0`), 60_000, back)
        await device.waitFor(/^uplink: connected to/, 60_000, back)
        assert.ok(!device.events(back).some(e => e.startsWith("image-unknown")), `events ${device.events(back)}`)
        assert.deepEqual(pick(await askState()), { image: v1, seq: 1 })
    })

    test("a tampered manifest, a signer not in the key list, a cut signature, another release: refused and reported", async () => {
        const good = signManifest(manifestFor(images.v2, 8), owner.release)
        const [prot, unprot, payload, sig] = (decode(good) as Tag).contents as [Uint8Array, Map<number, unknown>, Uint8Array, Uint8Array]
        const rebuild = (p: Uint8Array, sg: Uint8Array) => Buffer.from(encode(new Tag(18, [bstr(prot), unprot, bstr(p), bstr(sg)])))
        const tamperedPayload = Buffer.from(payload)
        tamperedPayload[tamperedPayload.length - 5] ^= 0x01
        const other = keyId(otherKey.publicKey).toString("hex")
        const offers: [string, Buffer, Buffer, RegExp][] = [
            ["tampered manifest", rebuild(tamperedPayload, sig), images.v2, /^bad-signature: /],
            [
                "signer not in the key list",
                signManifest(manifestFor(images.v2, 8), otherKey),
                images.v2,
                new RegExp(`^signers: signer ${other} does not count`),
            ],
            ["truncated signature", rebuild(payload, sig.subarray(0, sig.length - 1)), images.v2, /^bad-signature: /],
            ["another release", good, images.v3, /^malformed: manifest names another release/],
        ]
        for (const [what, signed, image, reason] of offers) {
            forged.manifest = signed
            const { from, reports } = await requestUpdate(image, 8)
            await device.waitFor(/^update: check: refused/, 60_000, from)
            await device.waitFor(/^uplink: connected to/, 60_000, from)
            const report = await device.waitForReport(sha256Hex(image), "refused", 30_000, reports)
            assert.match(report.reason ?? "", reason, what)
            assert.ok(
                device.events(from).some(e => e.startsWith("update-refused: ") && reason.test(e.slice("update-refused: ".length))),
                `${what}: events ${device.events(from)}`
            )
            assert.equal(device.starts(from), 0, `${what}: the program was restarted`)
        }
        delete forged.manifest
    })

    test("an image altered in the store after signing is never deployed; the window closes and v1 runs on", async () => {
        // a validly signed manifest whose stored image is not the one signed
        const signedImage = Buffer.concat([images.v1, Buffer.alloc(32)])
        const signed = signManifest(manifestFor(signedImage, 7), owner.release)
        const altered = Buffer.from(signedImage)
        altered[100] ^= 0xff
        await stack.registry.store.insertFirmwareImage({
            digest: sha256Hex(signedImage),
            sequence: 7,
            classId: CLASS_ID.toString("hex"),
            signedManifest: signed,
            image: altered,
            publishedAt: Date.now(),
        })
        const { from, reports } = await requestUpdate(signedImage, 7)
        await device.waitFor(/^update: window open for sequence 7/, 60_000, from)
        await device.waitFor(/^uplink: connected to/, WINDOW_MS + 60_000, from)
        assert.ok((await registryEvents("update-refused")).some(e => /does not match its signed digest/.test(e.detail)))
        assert.ok(
            device.events(from).some(e => /^update-abandoned: sequence 7/.test(e)),
            `events ${device.events(from)}`
        )
        await device.waitForReport(sha256Hex(signedImage), "approved", 30_000, reports)
        const back = await device.waitForReport(sha256Hex(signedImage), "rolled-back", 30_000, reports)
        assert.equal(back.reason, "not deployed in the window")
        assert.equal(device.starts(from), 0)
    })

    test("v1 -> v2 survives a power cut at every step, ends confirmed and reported, with no auth-failure after", async () => {
        await publish("v2", 8)
        const reports = device.updates.length
        // 1: the service has taken the approval; the device never hears its answer
        let cut = cutPowerWhen(line => /^registry event update-approved .*: sequence 8$/.test(line))
        await requestUpdate(images.v2, 8)
        await until("the power cut at the approval", cut, 60_000)
        let from = device.lines.length
        device.start(["vm"])
        await device.waitFor(/^update: window open for sequence 8/, 60_000, from) // announced again from the approved record
        await device.powerCut() // 2: the window has just opened (the deploy may have begun)

        // 3: cut when half the image is written, leaving no valid program in flash
        cut = cutPowerWhen(what => {
            const m = /^deploy (\d+)\/(\d+)$/.exec(what)
            return !!m && +m[1] >= +m[2] / 2
        })
        device.start(["vm"])
        await until("the power cut half-way through a deploy", cut, 90_000)
        await new Promise(r => setTimeout(r, 500))
        assert.ok((await registryEvents("update-deploy-failed")).length >= 1, "the cut deploy failed")

        // the runtime reconnects by itself with no program running; the service deploys again
        from = device.lines.length
        device.start(["vm"])
        await device.waitFor(/^ota fixture: firmware v2$/, 90_000, from)
        assert.equal(
            device.lines.slice(from).filter(l => /^start: /.test(l)).length,
            1,
            "only v2 started: no program ran before the deploy"
        )
        await device.waitFor(/^update: trial of sequence 8, boot 1/, 60_000, from)
        await device.powerCut() // 4: as the trial begins

        // 5, 6: the service has taken the confirmation; the device never hears its answer, twice
        for (const boot of [2, 3]) {
            cut = cutPowerWhen(line => /^registry event update-confirmed /.test(line))
            from = device.lines.length
            device.start(["vm"])
            await device.waitFor(new RegExp(`^update: trial of sequence 8, boot ${boot}`), 60_000, from)
            await until(`the power cut at the confirmation in trial boot ${boot}`, cut, 60_000)
        }

        // out of trial boots: it asks for rollback, and the service answers that it confirmed the candidate
        from = device.lines.length
        device.start(["vm"])
        await device.waitFor(/^update: asking for rollback of sequence 8/, 60_000, from)
        await device.waitFor(/^uplink: connected to/, 60_000, from)
        assert.equal(device.starts(from), 1, "no rollback deploy")
        assert.equal((await registryEvents("update-rolled-back")).length, 0)
        assert.ok(device.events(from).some(e => /^update-confirmed: sequence 8/.test(e)))
        assert.ok((await registryEvents("update-confirmed")).length >= 1)
        assert.equal((await stack.registry.store.getDeviceUpdate(device.id))?.rollbackDigest, sha256Hex(images.v2))
        // the owner reads what the device signed: approved, trial, confirmed (queued in flash while the window held the socket)
        const v2 = sha256Hex(images.v2)
        for (const step of ["approved", "trial", "confirmed"]) await device.waitForReport(v2, step, 60_000, reports)
        // a copy sent again after a power cut is a replay; nothing else on up/update is refused
        const refused = device.rejected.filter(r => r.topic.endsWith("/up/update") && r.rejection.reason !== "replayed")
        assert.deepEqual(
            refused.map(r => r.rejection.message),
            []
        )
        // the WSSK master key went to the service, sealed at rest, and into no log line
        const wsskKey = (await stack.updates.masterKeyFor(device.id))!
        assert.equal(wsskKey.length, 32)
        for (const form of [wsskKey.toString("hex"), wsskKey.toString("base64")])
            assert.ok(!transcript.some(l => l.includes(form)), "WSSK key in a log line")
        assert.ok(!(await stack.registry.store.getDeviceUpdate(device.id))!.sealedWsskKey!.includes(wsskKey))

        // a plain reboot: v2 runs as the confirmed slot A, security counter raised; its MQTT login is never refused
        from = device.lines.length
        await device.powerCut()
        device.start(["vm"])
        await device.waitFor(
            new RegExp(`^update: running ${sha256Hex(images.v2).slice(0, 16)}, sequence 8, security counter 8, phase 0`),
            60_000,
            from
        )
        await device.waitFor(/^uplink: connected to/, 60_000, from)
        // the state report names v2 and the sequence of the manifest it was installed from, not v1's
        assert.deepEqual(pick(await askState()), { image: sha256Hex(images.v2).slice(0, 16), seq: 8 })
        assert.equal(device.store.unknownImage(device.id), undefined)
        const sinceUpdate = device.lines.slice(device.lines.findIndex(l => /^ota fixture: firmware v2$/.test(l)))
        assert.ok(!sinceUpdate.some(l => /auth-failure|not authorized/.test(l)), "an auth-failure after the update")
    })

    test("a downgrade to an older, validly signed image is refused and reported", async () => {
        const { from, reports } = await requestUpdate(images.v1, 1)
        await device.waitFor(/^update: check: refused/, 60_000, from)
        assert.ok(
            device.events(from).some(e => /^update-refused: rollback: sequence 1 is not above the security counter 8/.test(e)),
            `events ${device.events(from)}`
        )
        assert.match((await device.waitForReport(sha256Hex(images.v1), "refused", 30_000, reports)).reason ?? "", /^rollback: /)
        assert.equal(device.starts(from), 0)
    })

    test("a release key rotated with a power cut mid-verification: old list in force, new one taken, the revoked key refused", async () => {
        const revoked = owner.keyring.releaseKey()
        const signers = owner.keyring.rootSigners()
        owner.keyring.rotateReleaseKey(signers, false)
        await publishDocuments(stack.updates, owner.keyring.documents())
        const byRevoked = signManifest(manifestFor(images.crash, 9), revoked)
        await assert.rejects(stack.updates.publish(byRevoked, images.crash), /not a release key of the current key list/)
        forged.manifest = byRevoked
        // the power goes while the device fetches the second signature of key list 2: nothing of it is written
        const cut = cutPowerWhen(what => what === "GET trust/keys/2/1")
        await requestUpdate(images.crash, 9)
        await until("the power cut during the key list's verification", cut, 60_000)
        let from = device.lines.length
        device.start(["vm"])
        await device.waitFor(/^uplink: connected to/, 60_000, from)
        assert.ok(!device.events(from).some(e => e.startsWith("storage-corrupt")), `events ${device.events(from)}`)
        // named again: key list 2 is verified and taken, and the manifest by the revoked key refused
        let at = await requestUpdate(images.crash, 9)
        await device.waitFor(/^update: check: refused/, 60_000, at.from)
        const kid = keyId(revoked.publicKey).toString("hex")
        assert.match(
            (await device.waitForReport(sha256Hex(images.crash), "refused", 30_000, at.reports)).reason ?? "",
            new RegExp(`^signers: signer ${kid} does not count`)
        )
        delete forged.manifest
        // a registry that points the device at key list 1 again: below its floor, refused
        forged.trustIndex = Buffer.from(encode([1, 1]))
        at = await requestUpdate(images.crash, 9)
        await device.waitFor(/^update: check: refused/, 60_000, at.from)
        assert.ok(
            device.events(at.from).some(e => /^update-refused: rollback: key list 1 below the floor 2/.test(e)),
            `events ${device.events(at.from)}`
        )
        delete forged.trustIndex
        from = device.lines.length
        assert.equal(device.starts(from), 0)
    })

    test("a candidate that crashes at start is rolled back by the service's deadline", async () => {
        await publish("crash", 9)
        const { from, reports } = await requestUpdate(images.crash, 9)
        await device.waitFor(/^update: window open for sequence 9/, 60_000, from)
        await until("the deadline rollback", async () => (await registryEvents("update-deadline")).length > 0, TRIAL_DEADLINE_MS + 60_000)
        const back = await device.waitFor(
            new RegExp(`^update: running ${sha256Hex(images.v2).slice(0, 16)}, sequence 8, security counter 8`),
            60_000,
            from
        )
        await device.waitFor(/^uplink: connected to/, WINDOW_MS + 60_000, back)
        assert.ok(
            device.lines.slice(from, back).some(l => /crash at start/.test(l)),
            "the candidate ran and crashed"
        )
        assert.ok((await registryEvents("update-rolled-back")).length >= 1, "the service rolled back")
        assert.ok(
            device.events(back).some(e => /^update-abandoned: sequence 9/.test(e)),
            `events ${device.events(back)}`
        )
        await device.waitForReport(sha256Hex(images.crash), "rolled-back", 60_000, reports)
    })

    test("a root its predecessor's threshold did not sign, or with a repeated signer, is refused; the rotated root is taken", async () => {
        const signers = owner.keyring.rootSigners()
        const [root] = owner.keyring.rotateRoot(signers)
        const fresh = owner.keyring.rootSigners()
        // forged root 2: fresh keys signing their own root, and one of the current root's signatures twice
        const payload = encodeRoot({ version: 2, threshold: 2, keys: fresh.map(k => k.publicKey) })
        const byNewOnly = fresh.map(k => signCose(payload, k))
        const twice = [signCose(payload, signers[0]), signCose(payload, signers[0])]
        try {
            for (const [what, copies, reason] of [
                ["signed by the new root alone", byNewOnly, /^signers: too few signatures/],
                ["a repeated signer", twice, /^signers: signer [0-9a-f]{16} does not count/],
            ] as const) {
                forged.trustIndex = Buffer.from(encode([2, 3]))
                forged.trustCopy = (kind, version, copy) => (kind === "root" && version === 2 ? copies[copy] : undefined)
                const at = await requestUpdate(images.v3, 10)
                await device.waitFor(/^update: check: refused/, 60_000, at.from)
                assert.match((await device.waitForReport(sha256Hex(images.v3), "refused", 30_000, at.reports)).reason ?? "", reason, what)
            }
        } finally {
            // the next test must not inherit the forgeries if this one fails
            delete forged.trustIndex
            delete forged.trustCopy
        }
        assert.equal(root.version, 2)
        await publishDocuments(stack.updates, owner.keyring.documents())
        assert.deepEqual(await stack.updates.trustVersions(), { root: 2, keyList: 3 })
    })

    test("a candidate that fails its health check asks for rollback, gets it, and the old program reports it", async () => {
        // signed with the release key under the rotated root: the device takes root 2 and key list 3 first
        await publish("v3", 10)
        const before = (await registryEvents("update-deploying")).length
        const { from, reports } = await requestUpdate(images.v3, 10)
        await until("the deploy of v3", async () => (await registryEvents("update-deploying")).length > before, 90_000)
        await stack.broker.stop() // the candidate cannot reach the broker
        await device.waitFor(/^ota fixture: firmware v3$/, 60_000, from)
        await device.waitFor(/^update: asking for rollback of sequence 10/, 90_000, from)
        await device.waitFor(/^ota fixture: firmware v2$/, 60_000, from)
        await stack.restartBroker()
        await device.waitFor(/^uplink: connected to/, 90_000, from)
        assert.ok(
            device.events(from).some(e => /^update-unhealthy: sequence 10/.test(e)),
            `events ${device.events(from)}`
        )
        assert.ok(
            device.events(from).some(e => /^update-rolled-back: sequence 10 rolled back; running 8/.test(e)),
            `events ${device.events(from)}`
        )
        const v3 = sha256Hex(images.v3)
        for (const step of ["approved", "trial", "unhealthy", "rolled-back"]) await device.waitForReport(v3, step, 60_000, reports)
    })
})
