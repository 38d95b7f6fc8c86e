/**
 * Updates over the air end to end: the real firmware in the simulator with
 * persistent flash (`devs run IMAGE`, then `devs vm` after each power cut,
 * beside a devtools server), the real registry, Mosquitto and update service,
 * and the runtime's own WSSK client deploying over wss://.
 *
 * 1. Offers the device must refuse: tampered manifest, wrong signing key,
 *    truncated signature, and an image the store altered after signing (the
 *    service refuses to deploy it); each logged, the running program untouched.
 * 2. v1 -> v2 with a power cut at every step: once the service has taken the
 *    approval (the device never hears the answer), as the window opens, in
 *    the middle of the deploy (no valid program left: the runtime still
 *    reconnects natively and the service deploys again), as the trial
 *    begins, and twice once the service has taken the confirmation (out of
 *    trial boots, the device asks for rollback and is told it is confirmed).
 *    Ends confirmed.
 * 3. A downgrade (old, validly signed manifest) is refused.
 * 4. A candidate that crashes at start is rolled back on the service's deadline.
 * 5. A candidate that fails its health check (broker down) asks for rollback and gets it.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { decode, encode, Tag } from "cbor2"
import { startLocalStack, type LocalStack } from "../../devs/stack/local.ts"
import { buildImage, startDevtools, type Devtools } from "../../devs/sim/devs-cli.ts"
import { SimulatedDevice } from "../../devs/sim/simulated-device.ts"
import { until } from "../../devs/sim/until.ts"
import { bstr, manifestFor, signManifest } from "../../devs/updates/manifest.ts"
import { ensureSigningKey, generateSigningKey } from "../../devs/updates/signing-key.ts"
import { sha256Hex } from "./support/digest.ts"

const dir = mkdtempSync(join(tmpdir(), "ota-test-"))
const transcript: string[] = []
const TRIAL_DEADLINE_MS = 45_000
const WINDOW_MS = 20_000
let stack: LocalStack
let devtools: Devtools
/** What the service offers instead of the newest published manifest, when set. */
let offered: Buffer | undefined
/** The next power cut: made when `when` first holds for a service log line or deploy progress. */
let pendingCut: { when: (what: string) => boolean; made: boolean } | undefined
const key = ensureSigningKey()
const otherKey = generateSigningKey()
const images: Record<string, Buffer> = {}

let device: SimulatedDevice

/**
 * Arms a power cut for the moment `when` holds for what the services do
 * (their log lines, and `deploy WRITTEN/TOTAL`); returns whether it was made.
 * The kill is issued inside the service's handler, before its answer is sent.
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

/** Makes the service offer `signed` as the newest manifest, as a compromised or broken server would; undefined ends it. */
function offer(signed: Buffer | undefined) {
    offered = signed
}

async function publish(name: string, sequence: number): Promise<Buffer> {
    const signed = signManifest(manifestFor(images[name], sequence), key.secretKey, key.publicKey)
    await stack.updates.publish(signed, images[name])
    return signed
}

/** Registry-side events of a kind for the device. */
const registryEvents = (kind: string) => stack.registry.store.events({ kind, identity: device.id })

before(async () => {
    images.v1 = await buildImage("src/main.ts", join(dir, "v1.devs"))
    images.v2 = await buildImage("test/device/fixtures/ota-v2.ts", join(dir, "v2.devs"))
    images.v3 = await buildImage("test/device/fixtures/ota-v3.ts", join(dir, "v3.devs"))
    images.crash = await buildImage("test/device/fixtures/ota-crash.ts", join(dir, "crash.devs"))
    stack = await startLocalStack({
        dir,
        trialDeadlineMs: TRIAL_DEADLINE_MS,
        updateWindowMs: WINDOW_MS,
        signingKeys: [key.publicKey],
        onDeployProgress: (_id, written, total) => cutIfDue(`deploy ${written}/${total}`),
        offerManifest: newest => offered ?? newest,
        onLog: (service, line) => {
            transcript.push(`${Date.now()} ${service}: ${line}`)
            cutIfDue(line)
        },
    })
    await publish("v1", 1)
    devtools = await startDevtools(dir)
    device = new SimulatedDevice({ stack, dir, devtools, transcript })
})

after(async () => {
    await device?.stop()
    devtools?.stop()
    await stack?.stop()
    if (process.env.FIRMWARE_LOG) writeFileSync(process.env.FIRMWARE_LOG, transcript.join("\n"))
    rmSync(dir, { recursive: true, force: true })
})

describe("updates over the air", () => {
    test("v1 boots, enrolls, is claimed and connects", async () => {
        device.start(["run", join(dir, "v1.devs")])
        await device.waitFor(/^uplink: connected to/, 90_000)
        const boot = device.lines.find(l => /^update: running /.test(l))!
        assert.match(boot, new RegExp(`^update: running ${sha256Hex(images.v1).slice(0, 16)}, sequence 0, security counter 0, phase 0`))
    })

    test("tampered manifest, wrong key and truncated signature are refused and logged; v1 keeps running", async () => {
        const good = signManifest(manifestFor(images.v2, 8), key.secretKey, key.publicKey)
        const [prot, unprot, payload, sig] = (decode(good) as Tag).contents as [Uint8Array, Map<number, unknown>, Uint8Array, Uint8Array]
        const rebuild = (p: Uint8Array, s: Uint8Array) =>
            Buffer.from(encode(new Tag(18, [bstr(prot), new Map([[4, bstr(unprot.get(4) as Uint8Array)]]), bstr(p), bstr(s)])))
        const tamperedPayload = Buffer.from(payload)
        tamperedPayload[tamperedPayload.length - 5] ^= 0x01
        const offers: [string, Buffer, RegExp][] = [
            ["tampered manifest", rebuild(tamperedPayload, sig), /update-refused: bad-signature/],
            ["wrong key", signManifest(manifestFor(images.v2, 8), otherKey.secretKey, otherKey.publicKey), /update-refused: bad-signature/],
            ["truncated signature", rebuild(payload, sig.subarray(0, sig.length - 1)), /update-refused: bad-signature/],
        ]
        for (const [what, signed, event] of offers) {
            const from = device.lines.length
            offer(signed)
            await device.askForUpdateCheck()
            await device.waitFor(/^update: check: refused/, 60_000, from)
            await device.waitFor(/^uplink: connected to/, 60_000, from)
            assert.ok(
                device.events(from).some(e => event.test(e)),
                `${what}: events ${device.events(from)}`
            )
            assert.equal(device.starts(from), 0, `${what}: the program was restarted`)
        }
        offer(undefined)
    })

    test("an image altered in the store after signing is never deployed; the window closes and v1 runs on", async () => {
        // a validly signed manifest whose stored image is not the one signed
        const signedImage = Buffer.concat([images.v1, Buffer.alloc(32)])
        const signed = signManifest(manifestFor(signedImage, 7), key.secretKey, key.publicKey)
        const altered = Buffer.from(signedImage)
        altered[100] ^= 0xff
        await stack.registry.store.insertFirmwareImage({
            digest: sha256Hex(signedImage),
            sequence: 7,
            classId: manifestFor(signedImage, 7).classId.toString("hex"),
            signedManifest: signed,
            image: altered,
            publishedAt: Date.now(),
        })
        const from = device.lines.length
        await device.askForUpdateCheck()
        await device.waitFor(/^update: window open for sequence 7/, 60_000, from)
        await device.waitFor(/^uplink: connected to/, WINDOW_MS + 60_000, from)
        assert.ok((await registryEvents("update-refused")).some(e => /does not match its signed digest/.test(e.detail)))
        assert.ok(
            device.events(from).some(e => /^update-abandoned: sequence 7/.test(e)),
            `events ${device.events(from)}`
        )
        assert.equal(device.starts(from), 0)
    })

    test("v1 -> v2 survives a power cut at every step, and ends confirmed", async () => {
        await publish("v2", 8)
        // 1: the service has taken the approval; the device never hears its answer
        let cut = cutPowerWhen(line => /^registry event update-approved .*: sequence 8$/.test(line))
        await device.askForUpdateCheck()
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
        await device.waitFor(/^update: sequence 8 confirmed/, 60_000, from)
        await device.waitFor(/^uplink: connected to/, 60_000, from)
        assert.equal(device.starts(from), 1, "no rollback deploy")
        assert.equal((await registryEvents("update-rolled-back")).length, 0)
        assert.ok(device.events(from).some(e => /^update-confirmed: sequence 8/.test(e)))
        assert.ok((await registryEvents("update-confirmed")).length >= 1)
        assert.equal((await stack.registry.store.getDeviceUpdate(device.id))?.rollbackDigest, sha256Hex(images.v2))
        // the WSSK master key went to the service, sealed at rest, and into no log line
        const wsskKey = (await stack.updates.masterKeyFor(device.id))!
        assert.equal(wsskKey.length, 32)
        for (const form of [wsskKey.toString("hex"), wsskKey.toString("base64")])
            assert.ok(!transcript.some(l => l.includes(form)), "WSSK key in a log line")
        assert.ok(!(await stack.registry.store.getDeviceUpdate(device.id))!.sealedWsskKey!.includes(wsskKey))

        // a plain reboot: v2 runs as the confirmed slot A, security counter raised
        from = device.lines.length
        await device.powerCut()
        device.start(["vm"])
        await device.waitFor(
            new RegExp(`^update: running ${sha256Hex(images.v2).slice(0, 16)}, sequence 8, security counter 8, phase 0`),
            60_000,
            from
        )
        await device.waitFor(/^uplink: connected to/, 60_000, from)
    })

    test("a downgrade to an older, validly signed image is refused and logged", async () => {
        const from = device.lines.length
        offer(signManifest(manifestFor(images.v1, 1), key.secretKey, key.publicKey))
        await device.askForUpdateCheck()
        await device.waitFor(/^update: check: refused/, 60_000, from)
        offer(undefined)
        assert.ok(
            device.events(from).some(e => /^update-refused: rollback: sequence 1 is not above the security counter 8/.test(e)),
            `events ${device.events(from)}`
        )
        assert.equal(device.starts(from), 0)
    })

    test("a candidate that crashes at start is rolled back by the service's deadline", async () => {
        await publish("crash", 9)
        const from = device.lines.length
        await device.askForUpdateCheck()
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
    })

    test("a candidate that fails its health check asks for rollback and gets it", async () => {
        await publish("v3", 10)
        const from = device.lines.length
        const before = (await registryEvents("update-deploying")).length
        await device.askForUpdateCheck()
        await until("the deploy of v3", async () => (await registryEvents("update-deploying")).length > before, 60_000)
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
    })
})
