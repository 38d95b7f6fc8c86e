/**
 * Rollouts end to end with real devices: five DeviceScript simulators running
 * the firmware (the OTA test's images, trusting a root of 2 of 3 keys made at
 * test time), each with its own flash, enrolled with the real registry and
 * claimed by one owner service, whose rollout driver sends each device the
 * sealed `update` command and counts only the device's own sealed reports on
 * up/update. The update service deploys over WSSK as it does for one device.
 *
 * What each device was told is read from its own console: the firmware
 * records a `command: update requested` security event for every update
 * command it opens, and prints the sequence it runs.
 *
 * 1. A good release goes through the canary and two more stages to all five,
 *    each stage offered only after the one before confirmed; a pause holds
 *    the next stage back, resume starts it; a device switched off before the
 *    rollout gets the release when it comes back.
 * 2. A release whose image crashes at start: the canary is rolled back by the
 *    service's deadline and says so in a sealed report, the rollout halts by
 *    itself, and no other device is ever told; abort skips the others.
 * 3. A device that refuses the release (the registry served it a tampered
 *    manifest) halts its stage while the others confirm; retry-failed offers
 *    the release again to that device alone, and the rollout completes.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, beforeEach, describe, test } from "node:test"
import { decode, encode, Tag } from "cbor2"
import { DeviceStep, RolloutStatus, type StagePlan } from "../../devs/owner/rollout/engine.ts"
import { OTA_ANCHOR_PATH } from "../../devs/project.ts"
import { buildImage } from "../../devs/sim/devs-cli.ts"
import type { SimulatedDevice } from "../../devs/sim/simulated-device.ts"
import { SimulatorFleet } from "../../devs/sim/simulator-fleet.ts"
import { until } from "../../devs/sim/until.ts"
import { startLocalStack, type LocalStack } from "../../devs/stack/local.ts"
import { bstr } from "../../devs/updates/cose-sign1.ts"
import { writeTrustAnchor } from "../../devs/updates/keyring.ts"
import { manifestFor, signManifest } from "../../devs/updates/manifest.ts"
import { sha256Hex } from "./support/digest.ts"
import { testKeyring, trustAll } from "./support/keyring.ts"

const N = 5
const dir = mkdtempSync(join(tmpdir(), "rollout-real-test-"))
const transcript: string[] = []
/** The firmware sends readings every 10 s: a device unheard for longer than this is offline. */
const ONLINE_MS = 25_000
const TRIAL_DEADLINE_MS = 45_000
const WINDOW_MS = 30_000
/** Every device's limits: generous beside a deploy to five simulators on two cores, far below the defaults. */
const TIMEOUTS = { deployMs: 180_000, trialMs: 120_000, reofferMs: 60_000 }
const keys = testKeyring()
const images: Record<string, Buffer> = {}
let stack: LocalStack
let fleet: SimulatorFleet
/** Set to a digest: the next manifest the registry serves for it is a tampered copy (as a broken registry would serve). */
let tamperNext: string | undefined

/** A stage reaching `upTo`, halting at the first failure, with a time limit a stage of real devices meets. */
const stage = (upTo: StagePlan["upTo"]): StagePlan => ({
    upTo,
    successPercent: 100,
    timeLimitMs: 300_000,
    maxFailures: 1,
    maxFailurePercent: 100,
})

/** The signed manifest with one byte of its payload flipped: its signature no longer holds. */
function tampered(signed: Buffer): Buffer {
    const [prot, unprot, payload, sig] = (decode(signed) as Tag).contents as [Uint8Array, Map<number, unknown>, Uint8Array, Uint8Array]
    const p = Buffer.from(payload)
    p[p.length - 5] ^= 0x01
    return Buffer.from(encode(new Tag(18, [bstr(prot), unprot, bstr(p), bstr(sig)])))
}

async function publish(name: string, sequence: number) {
    return await stack.updates.publish(signManifest(manifestFor(images[name], sequence), keys.keyring.releaseKey()), images[name])
}

/** Update commands the device opened at or after line `from`, as its own console says. */
const told = (d: SimulatedDevice, from: number) => d.events(from).filter(e => e === "command: update requested").length

/** Where each device's console is now. */
const marks = () => new Map(fleet.devices.map(d => [d, d.lines.length]))

/** Host times at which the owner sent each device an update command and verified each confirmed report, by digest. */
const sentAt = new Map<string, number[]>()
const confirmedAt = new Map<string, number>()

before(
    async () => {
        writeTrustAnchor(keys.keyring.anchor(), OTA_ANCHOR_PATH)
        for (const name of ["v1", "v2", "v3", "crash"])
            images[name] = await buildImage(`test/device/fixtures/ota-${name}.ts`, join(dir, `${name}.devs`))
        stack = await startLocalStack({
            dir,
            trialDeadlineMs: TRIAL_DEADLINE_MS,
            updateWindowMs: WINDOW_MS,
            served: service => ({
                signedManifest: async (classId, digest) => {
                    const signed = await service.signedManifest(classId, digest)
                    if (signed === undefined || tamperNext !== digest) return signed
                    tamperNext = undefined
                    return tampered(signed)
                },
                trustIndex: () => service.trustIndex(),
                trustCopy: (kind, version, copy) => service.trustCopy(kind, version, copy),
                handleReport: (id, report) => service.handleReport(id, report),
            }),
            onLog: (service, line) => transcript.push(`${Date.now()} ${service}: ${line}`),
        })
        await trustAll(stack.updates, keys.keyring)
        await publish("v1", 1)
        fleet = await SimulatorFleet.start({ stack, dir, transcript, onlineMs: ONLINE_MS })
        fleet.owner.on("command", row => {
            if (row.command.cmd === "update")
                sentAt.set(`${row.deviceId} ${row.command.digest}`, [
                    ...(sentAt.get(`${row.deviceId} ${row.command.digest}`) ?? []),
                    Date.now(),
                ])
        })
        fleet.owner.on("update", u => {
            if (u.report.step === "confirmed") confirmedAt.set(`${u.deviceId} ${u.report.digest}`, Date.now())
        })
        await Promise.all(Array.from({ length: N }, () => fleet.add(join(dir, "v1.devs"))))
    },
    { timeout: 600_000 }
)

after(async () => {
    await fleet?.stop()
    await stack?.stop()
    keys.remove()
    if (process.env.FIRMWARE_LOG) writeFileSync(process.env.FIRMWARE_LOG, transcript.join("\n"))
    rmSync(dir, { recursive: true, force: true })
})

/** Waits until rollout `id` satisfies `done`, saying where it is if it never does. */
async function waitForRollout(id: number, what: string, done: () => boolean, timeoutMs: number) {
    const r = fleet.owner.rollouts.get(id)!
    await until(
        () =>
            `rollout ${id} ${what} (now ${r.record.status}, stage ${r.record.stage}: ` +
            `${JSON.stringify(r.summary().map(s => s.steps))} ${r.record.reason})`,
        done,
        timeoutMs
    )
}

describe(`rollouts over ${N} real simulated devices`, () => {
    // one rollout at a time: one a failed test left active would keep the next test's from starting
    beforeEach(() => {
        for (const r of fleet.owner.rollouts.list())
            if ([RolloutStatus.Running, RolloutStatus.Paused, RolloutStatus.Halted].includes(r.status))
                fleet.owner.rollouts.act(r.id, "abort")
    })

    test(
        "a good release rolls through every stage, pauses and resumes, and reaches a device that was off when it returns",
        { timeout: 600_000 },
        async () => {
            const v2 = sha256Hex(images.v2)
            await publish("v2", 2)
            const away = fleet.devices[N - 1]
            await away.powerCut()
            await until("the owner to see the switched-off device offline", () => !fleet.online(away), ONLINE_MS + 30_000)
            await until("the others online", () => fleet.devices.slice(0, N - 1).every(d => fleet.online(d)), ONLINE_MS + 30_000)
            const from = marks()
            const rollout = fleet.owner.rollouts.create({
                release: { digest: v2, sequence: 2 },
                cohort: { all: true },
                stages: [stage({ devices: 1 }), stage({ devices: 3 }), stage({ percent: 100 })],
                timeouts: TIMEOUTS,
            })
            const id = rollout.record.id
            const stageOf = (d: SimulatedDevice) => rollout.devices.get(d.id)!.stage
            const inStage = (s: number) => fleet.devices.filter(d => stageOf(d) === s)
            assert.deepEqual(
                rollout.summary().map(s => s.size),
                [1, 2, 2]
            )
            assert.equal(stageOf(away), 2, "an offline device goes last")

            // the canary confirms, stage 2 is offered; paused there, the last stage is not started even once stage 2 is done
            await waitForRollout(id, "to start stage 2", () => rollout.record.stage >= 1, 300_000)
            fleet.owner.rollouts.act(id, "pause")
            assert.equal(rollout.record.status, RolloutStatus.Paused)
            await waitForRollout(
                id,
                "to confirm stage 2 while paused",
                () => inStage(1).every(d => rollout.devices.get(d.id)!.step === DeviceStep.Confirmed),
                300_000
            )
            await new Promise(r => setTimeout(r, 3000))
            assert.equal(rollout.record.status, RolloutStatus.Paused)
            assert.equal(rollout.record.stage, 1, "no stage starts while paused")
            for (const d of inStage(2)) {
                assert.equal(rollout.devices.get(d.id)!.step, DeviceStep.Pending)
                assert.equal(told(d, from.get(d)!), 0, "a device of the last stage was told while paused")
            }

            // resumed: the last stage starts; the device that was off gets the release once it is back
            fleet.owner.rollouts.act(id, "resume")
            await waitForRollout(id, "to start the last stage", () => rollout.record.stage === 2, 30_000)
            assert.equal(rollout.devices.get(away.id)!.step, DeviceStep.Pending, "not offered while off")
            away.start(["vm"])
            await waitForRollout(id, "to complete", () => rollout.record.status === RolloutStatus.Completed, 400_000)
            assert.equal(rollout.record.reason, "every device confirmed")

            // each device: told once, ran v2 in trial and confirmed it (its console), and sealed its confirmation (the owner verified it)
            const steps = new Map(fleet.owner.store.rolloutDevices(id).map(d => [d.id, d]))
            for (const d of fleet.devices) {
                const at = from.get(d)!
                assert.equal(told(d, at), 1, `${d.id} told once`)
                await d.waitFor(/^ota fixture: firmware v2$/, 1, at)
                await d.waitFor(/^update: trial of sequence 2, boot 1/, 1, at)
                assert.ok(
                    d.events(at).some(e => /^update-confirmed: sequence 2 /.test(e)),
                    `${d.id}: events ${d.events(at)}`
                )
                await d.waitFor(new RegExp(`^update: running ${v2.slice(0, 16)}, sequence 2,`), 1, at)
                assert.equal((await d.waitForReport(v2, "confirmed", 1)).sequence, 2)
                assert.equal(steps.get(d.id)?.step, DeviceStep.Confirmed, "the stored step")
            }
            // a stage is offered only once every device of the one before had sealed its confirmation
            for (let s = 1; s < 3; s++) {
                const lastConfirmed = Math.max(...inStage(s - 1).map(d => confirmedAt.get(`${d.id} ${v2}`)!))
                const firstOffer = Math.min(...inStage(s).map(d => sentAt.get(`${d.id} ${v2}`)![0]))
                assert.ok(firstOffer >= lastConfirmed, `stage ${s + 1} offered before stage ${s} confirmed`)
            }
        }
    )

    test(
        "a release that crashes at start is caught at the canary, which rolls back; the rollout halts; nobody else is told; abort",
        { timeout: 400_000 },
        async () => {
            const crash = sha256Hex(images.crash)
            await publish("crash", 3)
            await until("every device online", () => fleet.devices.every(d => fleet.online(d)), ONLINE_MS + 30_000)
            const from = marks()
            const rollout = fleet.owner.rollouts.create({
                release: { digest: crash, sequence: 3 },
                cohort: { all: true },
                stages: [stage({ devices: 1 }), stage({ devices: 3 }), stage({ percent: 100 })],
                timeouts: TIMEOUTS,
            })
            const id = rollout.record.id
            const canary = fleet.devices.find(d => rollout.devices.get(d.id)!.stage === 0)!
            const others = fleet.devices.filter(d => d !== canary)
            await waitForRollout(id, "to halt", () => rollout.record.status === RolloutStatus.Halted, TRIAL_DEADLINE_MS + 240_000)
            assert.match(rollout.record.reason!, /^canary: 1 of 1 devices failed/)
            // its deploy time limit may pass first (failed); its sealed report moves it on to rolled back
            await waitForRollout(
                id,
                "to see the canary rolled back",
                () => rollout.devices.get(canary.id)!.step === DeviceStep.RolledBack,
                120_000
            )
            // the canary's own account: told, ran the candidate, which crashed; back on v2; its sealed report says rolled back
            const at = from.get(canary)!
            assert.equal(told(canary, at), 1)
            await canary.waitFor(/crash at start/, 1, at)
            await canary.waitFor(new RegExp(`^update: running ${sha256Hex(images.v2).slice(0, 16)}, sequence 2`), 60_000, at)
            await canary.waitForReport(crash, "rolled-back", 60_000)
            assert.ok(
                canary.events(at).some(e => /^update-abandoned: sequence 3/.test(e)),
                `events ${canary.events(at)}`
            )
            // the halt holds: nobody else is ever told, and nothing else happens on their consoles
            await new Promise(r => setTimeout(r, 5000))
            assert.equal(rollout.record.status, RolloutStatus.Halted)
            fleet.owner.rollouts.act(id, "abort")
            assert.equal(rollout.record.status, RolloutStatus.Aborted)
            assert.throws(() => fleet.owner.rollouts.act(id, "resume"), /rollout \d+ is aborted/)
            await new Promise(r => setTimeout(r, 3000))
            for (const d of others) {
                assert.equal(told(d, from.get(d)!), 0, `${d.id} was told`)
                assert.ok(!d.lines.slice(from.get(d)!).some(l => /^update: (window open|check)/.test(l)), `${d.id} looked for an update`)
                assert.equal(d.updates.filter(u => u.digest === crash).length, 0)
                assert.equal(rollout.devices.get(d.id)!.step, DeviceStep.Skipped)
            }
            assert.deepEqual(
                [...sentAt.keys()].filter(k => k.endsWith(crash)),
                [`${canary.id} ${crash}`],
                "the owner sent it to the canary alone"
            )
        }
    )

    test(
        "a device that refuses the release halts its stage; retry-failed offers it again to that device alone and completes",
        { timeout: 600_000 },
        async () => {
            const v3 = sha256Hex(images.v3)
            await publish("v3", 4)
            await until("every device online", () => fleet.devices.every(d => fleet.online(d)), ONLINE_MS + 30_000)
            const from = marks()
            // the first device of stage 2 to fetch the manifest gets a tampered one: armed as the canary's confirmation starts stage 2
            const arm = (change: { stage: number }) => {
                if (change.stage !== 1 || tamperNext !== undefined || armed) return
                armed = true
                tamperNext = v3
            }
            let armed = false
            fleet.owner.on("rollout", arm)
            const rollout = fleet.owner.rollouts.create({
                release: { digest: v3, sequence: 4 },
                cohort: { all: true },
                stages: [stage({ devices: 1 }), stage({ percent: 100 })],
                timeouts: TIMEOUTS,
            })
            const id = rollout.record.id
            const stepOf = (d: SimulatedDevice) => rollout.devices.get(d.id)!.step
            try {
                await waitForRollout(id, "to halt in stage 2", () => rollout.record.status === RolloutStatus.Halted, 400_000)
            } finally {
                fleet.owner.off("rollout", arm)
            }
            assert.match(rollout.record.reason!, /^stage 2: 1 of 4 devices failed/)
            const failed = fleet.devices.filter(d => stepOf(d) === DeviceStep.Failed)
            assert.equal(failed.length, 1)
            const [refuser] = failed
            assert.match(rollout.devices.get(refuser.id)!.reason!, /^refused: bad-signature/)
            assert.match((await refuser.waitForReport(v3, "refused", 1)).reason ?? "", /^bad-signature/)
            await refuser.waitFor(/^update: check: refused/, 1, from.get(refuser)!)
            // the others of stage 2 had been offered before the halt: they finish
            await waitForRollout(
                id,
                "to confirm the others",
                () => fleet.devices.every(d => d === refuser || stepOf(d) === DeviceStep.Confirmed),
                400_000
            )
            assert.equal(rollout.record.status, RolloutStatus.Halted)
            assert.equal(told(refuser, from.get(refuser)!), 1)

            fleet.owner.rollouts.act(id, "retry-failed")
            assert.equal(rollout.record.status, RolloutStatus.Running)
            await waitForRollout(id, "to complete", () => rollout.record.status === RolloutStatus.Completed, 400_000)
            assert.equal(rollout.record.reason, "every device confirmed")
            for (const d of fleet.devices) {
                const at = from.get(d)!
                assert.equal(told(d, at), d === refuser ? 2 : 1, `${d.id}: update commands`)
                assert.ok(
                    d.events(at).some(e => /^update-confirmed: sequence 4 /.test(e)),
                    `${d.id}: events ${d.events(at)}`
                )
                await d.waitForReport(v3, "confirmed", 1)
            }
            assert.equal(rollout.devices.get(refuser.id)!.offers, 2)
        }
    )
})
