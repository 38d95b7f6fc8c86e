/**
 * The owner store: down counters reserved in blocks (two processes never
 * send the same counter, a killed one never has its counters reused), replay
 * windows stored with the content that moved them, each device's latest update
 * step, file modes, the encrypted
 * export and its import elsewhere, and the migration of a keystore of the
 * CLIs before the owner service.
 */
import assert from "node:assert/strict"
import { execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, describe, test } from "node:test"
import { ExportError, exportStore, IMPORT_COUNTER_JUMP, importStore } from "../../devs/owner/export.ts"
import { LEGACY_LOGIN_SETTING, MIGRATION_COUNTER_JUMP, migrateKeystore, MigrationError } from "../../devs/owner/keystore-migration.ts"
import { DOWN_COUNTER_BLOCK } from "../../devs/owner/service.ts"
import { OwnerStore } from "../../devs/owner/store.ts"
import type { UpdateStep } from "../../devs/owner/update-report.ts"
import { ReplayWindow, type Verified } from "../../devs/owner/verifier.ts"
import { PROJECT_ROOT } from "../../devs/project.ts"

const dir = mkdtempSync(join(tmpdir(), "owner-store-test-"))
after(() => rmSync(dir, { recursive: true, force: true }))

const RESERVE = join(PROJECT_ROOT, "test", "host", "support", "reserve-counters.ts")

function newStore(name: string, devices = 1) {
    const store = new OwnerStore(join(dir, name, "owner.db"))
    const ids = Array.from({ length: devices }, () => randomBytes(16).toString("hex"))
    for (const id of ids) store.addDevice({ id, name: id.slice(0, 8), root: randomBytes(32), claimedAt: 1 })
    return { store, ids }
}

/** Runs the reserving process to its end; resolves with the counters it printed. */
function reserve(path: string, id: string, blocks: number): Promise<number[]> {
    return new Promise((resolve, reject) =>
        execFile(process.execPath, ["--import", "tsx", RESERVE, path, id, String(blocks)], { cwd: PROJECT_ROOT }, (e, stdout) =>
            e ? reject(e) : resolve(stdout.trim().split("\n").map(Number))
        )
    )
}

describe("owner store", () => {
    test("two processes reserving down counters at once never get the same one", async () => {
        const { store, ids } = newStore("two-processes")
        const [a, b] = await Promise.all([reserve(store.path, ids[0], 40), reserve(store.path, ids[0], 40)])
        assert.equal(a.length, 40 * DOWN_COUNTER_BLOCK)
        assert.equal(b.length, 40 * DOWN_COUNTER_BLOCK)
        const all = [...a, ...b].sort((x, y) => x - y)
        assert.equal(new Set(all).size, all.length, "a counter handed to both processes")
        // and nothing was skipped: the blocks tile 1..N
        assert.deepEqual(
            all,
            Array.from({ length: all.length }, (_, i) => i + 1)
        )
        store.close()
    })

    test("a process killed in the middle of its block: its counters are never handed out again", async () => {
        const { store, ids } = newStore("killed")
        const child = spawn(process.execPath, ["--import", "tsx", RESERVE, store.path, ids[0], "1", "50"], { cwd: PROJECT_ROOT })
        const sent: number[] = []
        await new Promise<void>(resolve =>
            child.stdout.on("data", (chunk: Buffer) => {
                sent.push(...chunk.toString().trim().split("\n").map(Number))
                if (sent.length >= 3 && child.exitCode === null) {
                    child.kill("SIGKILL")
                    resolve()
                }
            })
        )
        await new Promise(r => child.once("exit", r))
        assert.ok(sent.length < DOWN_COUNTER_BLOCK)
        const next = store.reserveDownCounters(ids[0], DOWN_COUNTER_BLOCK)
        assert.equal(next.first, DOWN_COUNTER_BLOCK + 1, "the rest of the killed process's block is skipped")
        assert.ok(next.first > Math.max(...sent))
        store.close()
    })

    test("a replay window is stored with the content that moved it, in one transaction", () => {
        const { store, ids } = newStore("window")
        const [id] = ids
        const window = new ReplayWindow()
        const message = (counter: number): Verified => ({
            deviceId: id,
            counter,
            kind: "readings",
            readings: [{ name: "urn:dev:x:s/temperature", unit: "Cel", value: 20 + counter, time: -1 }],
        })
        for (const c of [3, 1, 7]) window.accept(c)
        store.commitIngest({
            verified: [3, 1, 7].map(c => ({ message: message(c), receivedAt: 1_000_000 })),
            rejections: [{ deviceId: id, topic: "t", reason: "replayed", detail: "d", at: 5 }],
            windows: new Map([[id, window]]),
        })
        const stored = store.upWindow(id)!
        const back = ReplayWindow.fromStore(stored.highest, stored.seen)
        assert.equal(back.highest, 7)
        assert.deepEqual(
            [7, 6, 3, 1, 0].map(c => back.isReplay(c)),
            [true, false, true, true, false]
        )
        assert.deepEqual(
            store.readings(id).map(r => [r.name, r.value, r.timeMs]),
            [1, 3, 7].map(c => ["s/temperature", 20 + c, 999_000])
        )
        assert.deepEqual(store.rejectionCounts(), [{ deviceId: id, reason: "replayed", count: 1, lastAt: 5 }])
        // a batch that fails (a device the store does not hold) keeps neither its content nor its window
        const stranger = randomBytes(16).toString("hex")
        const w2 = new ReplayWindow()
        w2.accept(9)
        assert.throws(() =>
            store.commitIngest({
                verified: [
                    { message: { ...message(9), deviceId: stranger }, receivedAt: 1 },
                    { message: message(9), receivedAt: 1 },
                ],
                rejections: [],
                windows: new Map([[id, w2]]),
            })
        )
        assert.equal(store.upWindow(id)!.highest, 7)
        assert.equal(store.readings(id).length, 3)
        // retention: readings measured before the limit go, the others stay
        assert.equal(store.deleteReadingsBefore(999_000), 0)
        assert.equal(store.deleteReadingsBefore(999_001), 3)
        assert.equal(store.readings(id).length, 0)
        store.close()
    })

    test("a device that runs an image no release names is flagged until a state naming a sequence or a confirmation", () => {
        const { store, ids } = newStore("unknown-image")
        const [id] = ids
        const digest = randomBytes(32).toString("hex")
        let counter = 0
        const commit = (receivedAt: number, m: Record<string, unknown>) =>
            store.commitIngest({
                verified: [{ message: { deviceId: id, counter: ++counter, ...m } as Verified, receivedAt }],
                rejections: [],
                windows: new Map(),
            })
        const state = (boot: number, seq: number) => ({ kind: "state", state: { boot, seq, image: "0123456789abcdef", phase: "idle" } })
        const unknownEvent = (boot: number) => ({
            kind: "events",
            events: [{ seq: boot * 10, boot, uptimeMs: 5, kind: "image-unknown", detail: "0123456789abcdef" }],
        })
        assert.equal(store.unknownImage(id), undefined, "nothing said yet")
        // boot 3 runs an image no trusted manifest names: its event log says so, and its state names sequence 0
        commit(1000, unknownEvent(3))
        assert.deepEqual(store.unknownImage(id), { image: "0123456789abcdef", since: 1000 })
        commit(1100, state(3, 0))
        assert.deepEqual(store.unknownImage(id), { image: "0123456789abcdef", since: 1100 })
        // the owner names the release of the image that runs: confirmed, "running it already"
        commit(1200, { kind: "update", report: { digest, sequence: 4, step: "confirmed", reason: "running it already" } })
        assert.equal(store.unknownImage(id), undefined)
        commit(1300, state(3, 4))
        assert.equal(store.unknownImage(id), undefined)
        // the event of a later boot (older source started by hand) flags it again; an older state does not clear it
        commit(1400, unknownEvent(5))
        assert.deepEqual(store.unknownImage(id), { image: "0123456789abcdef", since: 1400 })
        // a state of that boot naming a sequence clears it
        commit(1500, state(5, 6))
        assert.equal(store.unknownImage(id), undefined)
        // a state naming sequence 0 alone flags it (the event log comes only when asked for)
        commit(1600, state(6, 0))
        assert.deepEqual(store.unknownImage(id), { image: "0123456789abcdef", since: 1600 })
        store.close()
    })

    test("each device's update steps are kept: the latest is the highest counter, a late copy does not hide it", () => {
        const { store, ids } = newStore("update-steps")
        const [id] = ids
        const digest = randomBytes(32).toString("hex")
        const step = (counter: number, s: UpdateStep, reason?: string): { message: Verified; receivedAt: number } => ({
            message: { deviceId: id, counter, kind: "update", report: { digest, sequence: 8, step: s, ...(reason ? { reason } : {}) } },
            receivedAt: 1000 + counter,
        })
        assert.equal(store.updateReport(id), undefined)
        store.commitIngest({ verified: [step(4, "approved"), step(6, "trial")], rejections: [], windows: new Map() })
        assert.deepEqual(store.updateReport(id), { counter: 6, digest, sequence: 8, step: "trial", receivedAt: 1006 })
        // the approval again (a copy the device's flash queue sent after a power cut), then the confirmation
        store.commitIngest({ verified: [step(4, "approved")], rejections: [], windows: new Map() })
        assert.equal(store.updateReport(id)?.step, "trial")
        store.commitIngest({ verified: [step(9, "rolled-back", "the previous image runs again")], rejections: [], windows: new Map() })
        assert.deepEqual(store.updateReport(id), {
            counter: 9,
            digest,
            sequence: 8,
            step: "rolled-back",
            reason: "the previous image runs again",
            receivedAt: 1009,
        })
        // the history keeps each step once, newest first (the rollouts read it)
        assert.deepEqual(
            store.updateReports(id).map(r => [r.counter, r.step]),
            [
                [9, "rolled-back"],
                [6, "trial"],
                [4, "approved"],
            ]
        )
        // it goes with the device
        assert.equal(store.removeDevice(id), true)
        assert.equal(store.updateReport(id), undefined)
        store.close()
    })

    test("the store file is mode 0600 in a folder of mode 0700, and so are its WAL files", () => {
        const { store } = newStore("modes")
        store.reserveDownCounters(store.devices()[0].id, 1)
        for (const suffix of ["", "-wal", "-shm"]) assert.equal(statSync(store.path + suffix).mode & 0o777, 0o600, suffix || "db")
        assert.equal(statSync(join(dir, "modes")).mode & 0o777, 0o700)
        store.close()
    })

    test("an export opens only with its passphrase, and imports elsewhere with keys, account and counters moved ahead", () => {
        const { store, ids } = newStore("export", 2)
        store.setAccount({ name: "alice", registry: "https://registry", password: randomBytes(32) }, 1)
        store.addSession(Buffer.alloc(32, 1), "csrf", Date.now() + 60_000)
        store.setApiToken(Buffer.alloc(32, 2), 1)
        const before = store.reserveDownCounters(ids[0], DOWN_COUNTER_BLOCK)
        const passphrase = "correct horse battery staple"
        const exported = exportStore(store, passphrase)
        // nothing secret is readable in the file
        for (const secret of [store.account()!.password, ...store.devices().map(d => d.root)]) assert.equal(exported.indexOf(secret), -1)
        assert.throws(() => importStore(exported, "wrong passphrase!", join(dir, "elsewhere", "a.db")), ExportError)
        const damaged = Buffer.from(exported)
        damaged[damaged.length - 40] ^= 1
        assert.throws(() => importStore(damaged, passphrase, join(dir, "elsewhere", "b.db")), /wrong passphrase, or the file is damaged/)
        const header = Buffer.from(exported)
        header[12] ^= 1 // the salt: authenticated as additional data
        assert.throws(() => importStore(header, passphrase, join(dir, "elsewhere", "c.db")), ExportError)
        assert.throws(() => importStore(randomBytes(100), passphrase, join(dir, "elsewhere", "d.db")), /not an owner store export/)
        const imported = importStore(exported, passphrase, join(dir, "elsewhere", "owner.db"))
        assert.deepEqual(imported.account(), store.account())
        assert.deepEqual(imported.devices(), store.devices())
        const after = imported.reserveDownCounters(ids[0], DOWN_COUNTER_BLOCK)
        assert.equal(after.first, before.last + 1 + IMPORT_COUNTER_JUMP)
        // the old machine's sessions and token stay behind
        assert.equal(imported.session(Buffer.alloc(32, 1), Date.now()), undefined)
        assert.equal(imported.hasApiToken(Buffer.alloc(32, 2)), false)
        assert.equal(statSync(imported.path).mode & 0o777, 0o600)
        assert.throws(() => importStore(exported, passphrase, imported.path), /exists/)
        imported.close()
        store.close()
    })

    test("a keystore of the CLIs before the service moves in with its counters moved ahead and its legacy login kept", () => {
        const { store } = newStore("migrate", 0)
        const id = randomBytes(16).toString("hex")
        const root = randomBytes(32)
        const path = join(dir, "local.json")
        const keystore = {
            owner: "local",
            broker: { username: "owner-local", password: "legacy" },
            devices: { [id]: { root: root.toString("hex"), downCounter: 7, upHighest: 41 } },
        }
        writeFileSync(path, JSON.stringify(keystore))
        assert.deepEqual(migrateKeystore(path, store), { owner: "local", devices: [id] })
        assert.deepEqual(store.device(id)!.root, root)
        assert.equal(store.reserveDownCounters(id, 1).first, 7 + MIGRATION_COUNTER_JUMP + 1)
        const w = store.upWindow(id)!
        const window = ReplayWindow.fromStore(w.highest, w.seen)
        assert.ok(window.isReplay(41) && window.isReplay(40) && !window.isReplay(42))
        assert.equal(store.setting(LEGACY_LOGIN_SETTING), "legacy")
        assert.equal(store.setting("owner-name"), "local")
        // a second run moves nothing twice; a broken file is one clear error
        assert.deepEqual(migrateKeystore(path, store).devices, [])
        writeFileSync(path, JSON.stringify({ ...keystore, devices: { [id]: { root: "zz", downCounter: 1, upHighest: 1 } } }))
        assert.throws(() => migrateKeystore(path, store), MigrationError)
        writeFileSync(path, "{")
        assert.throws(() => migrateKeystore(path, store), /is not a keystore/)
        assert.equal(readFileSync(path, "utf8"), "{")
        store.close()
    })

    test("npm run owner-export and owner-import carry a store to another machine's folder, and refuse a wrong passphrase", async () => {
        const { store, ids } = newStore("cli-export", 1)
        store.setAccount({ name: "carol", registry: "https://registry", password: randomBytes(32) }, 1)
        store.close()
        const pass = join(dir, "cli-passphrase")
        writeFileSync(pass, "a passphrase of some length\n", { mode: 0o600 })
        const out = join(dir, "cli.export")
        const run = (program: string, args: string[]) =>
            new Promise<{ code: number; stdout: string; stderr: string }>(resolve =>
                execFile(
                    process.execPath,
                    ["--import", "tsx", join("devs", "bin", `${program}.ts`), ...args],
                    { cwd: PROJECT_ROOT },
                    (e, stdout, stderr) => resolve({ code: e ? Number(e.code) : 0, stdout, stderr })
                )
            )
        const exported = await run("owner-export", ["--out", out, "--passphrase-file", pass, "--store", store.path])
        assert.equal(exported.code, 0, exported.stderr)
        assert.equal(statSync(out).mode & 0o777, 0o600)
        const wrong = join(dir, "cli-wrong")
        writeFileSync(wrong, "not the passphrase at all")
        const target = join(dir, "cli-elsewhere", "owner.db")
        const refused = await run("owner-import", [out, "--passphrase-file", wrong, "--store", target])
        assert.equal(refused.code, 1)
        assert.equal(refused.stderr, "owner-import: wrong passphrase, or the file is damaged\n")
        const imported = await run("owner-import", [out, "--passphrase-file", pass, "--store", target])
        assert.equal(imported.code, 0, imported.stderr)
        assert.match(imported.stdout, /owner store of carol with 1 device\(s\) restored/)
        const back = new OwnerStore(target)
        assert.deepEqual(
            back.devices().map(d => d.id),
            ids
        )
        back.close()
    })
})
