/**
 * Identity across reboots, in the simulator with persistent flash
 * (`devs run` beside a devtools server keeps .devicescript/flash/sim.bin
 * under its folder, here a temporary one):
 * a restart keeps the identity, a factory reset replaces all of it, and a
 * power cut (killing the VM process) keeps what was stored. And the promise
 * every power-cut-safe record rests on: a settings write has reached flash
 * once `writeBytes` resolves.
 */
import assert from "node:assert/strict"
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { buildImage, deviceLine, powerCutEnv, runDevs, startDevtools, type Devtools } from "../../devs/sim/devs-cli.ts"

const dir = mkdtempSync(join(tmpdir(), "device-reboot-"))
let devtools: Devtools

/**
 * Runs `devs ARGS` in `cwd` until the device prints a line matching `stopAt`,
 * then kills it at once (a power cut when it is still running); resolves,
 * once the process is gone, with what the device printed.
 */
async function runUntil(stopAt: RegExp, args: string[], cwd: string): Promise<string[]> {
    const lines: string[] = []
    const cut = new AbortController()
    const { code, output } = await runDevs(args, {
        cwd,
        env: powerCutEnv(),
        ports: devtools.ports,
        timeoutMs: 90_000,
        signal: cut.signal,
        onLine: line => {
            const text = deviceLine(line)
            if (text === undefined || cut.signal.aborted) return
            lines.push(text)
            if (stopAt.test(text)) cut.abort()
        },
    })
    if (!cut.signal.aborted) throw new Error(`ended (exit ${code}) before printing ${stopAt}:\n${output}`)
    return lines
}

const boots = (lines: string[]) =>
    lines
        .map(l => /^boot (\d+) id ([0-9a-f]{32}) fp ([0-9a-f]{16}) events (.*)$/.exec(l))
        .filter(m => m !== null)
        .map(m => ({ boot: +m[1], id: m[2], fp: m[3], events: m[4] }))

before(async () => {
    devtools = await startDevtools(dir)
})

after(() => {
    devtools?.stop()
    rmSync(dir, { recursive: true, force: true })
})

describe("identity across reboots and power cuts", () => {
    test("restart keeps the identity, reset replaces it, a power cut keeps it", async () => {
        const folder = join(dir, "reboot")
        const image = join(dir, "reboot.devs")
        await buildImage("test/device/fixtures/reboot.ts", image)
        mkdirSync(folder)
        const first = boots(await runUntil(/step: waiting for the power cut/, ["run", image], folder))
        assert.deepEqual(
            first.map(b => b.boot),
            [0, 1, 2]
        )
        const [b0, b1, b2] = first
        assert.equal(b1.id, b0.id)
        assert.equal(b1.fp, b0.fp)
        // the factory reset made new credentials and restarted the event log with the reset itself
        assert.notEqual(b2.id, b0.id)
        assert.notEqual(b2.fp, b0.fp)
        assert.equal(b2.events, "factory-reset,identity-created")
        // power cut: the VM process is killed; the next boot finds everything as stored
        const second = boots(await runUntil(/step: done/, ["run", image], folder))
        assert.equal(second.length, 1)
        assert.equal(second[0].boot, 3)
        assert.equal(second[0].id, b2.id)
        assert.equal(second[0].fp, b2.fp)
        assert.equal(second[0].events, "factory-reset,identity-created")
    })
})

describe("settings writes and power cuts", () => {
    test("a write is in flash once writeBytes resolves: the power is cut as the next line prints, 8 times", async () => {
        // `set` is not acknowledged by the settings service: before writeBytes
        // read the value back, 3 of 5 writes were lost this way
        const folder = join(dir, "durable-write")
        const image = join(dir, "durable-write.devs")
        await buildImage("test/device/fixtures/durable-write.ts", image)
        mkdirSync(folder)
        for (let boot = 0; boot < 8; ++boot) {
            const lines = await runUntil(/durable: wrote/, boot === 0 ? ["run", image] : ["vm"], folder)
            assert.ok(
                lines.includes(`durable: boot ${boot}`),
                `boot ${boot} read back: ${lines.filter(l => l.startsWith("durable:")).join("; ")}`
            )
        }
    })
})
