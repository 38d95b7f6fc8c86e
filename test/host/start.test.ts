/**
 * `npm start` as a person runs it (npm, the bootstrap, the local stack, the
 * owner service, the devtools server, the firmware in the simulator), with
 * its state in a temporary folder (SENTINEL_STATE_DIR): a progress line per
 * stage with the time, the console's URL and the file (mode 0600) holding the first-run setup link, never the link itself, the first
 * verified reading, no `socket … open undefined` line; and however it is
 * stopped (SIGTERM to npm during the build, Ctrl-C to the whole process group
 * once the device runs, SIGTERM on a second run that reuses the build) no
 * process it started is left. `npm run reset-device` factory-resets the
 * simulated device through the running npm start (a new identity, claimed
 * again, the old one forgotten), and without it deletes the flash itself; the
 * firmware keys stay.
 */
import assert from "node:assert/strict"
import { spawn, type ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { after, describe, test } from "node:test"
import { freePort } from "../../devs/net/ports.ts"
import { SETUP_LINK_FILE } from "../../devs/owner/console-auth.ts"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { until } from "../../devs/sim/until.ts"

const state = mkdtempSync(join(tmpdir(), "start-test-"))
after(() => rmSync(state, { recursive: true, force: true }))

/** npm start's ports, free ones: two runs of the suite share a machine. */
const ports = {
    owner: await freePort(),
    registry: await freePort(),
    broker: await freePort(),
    updates: await freePort(),
    devtools: await freePort(),
}
const consoleUrl = `http://127.0.0.1:${ports.owner}`

/** Processes by id, with their parent: from /proc, zombies left out (they are gone but for their exit status). */
function processes(): Map<number, number> {
    const table = new Map<number, number>()
    for (const name of readdirSync("/proc").filter(n => /^\d+$/.test(n)))
        try {
            // pid (comm) state ppid …: comm may hold spaces and parentheses, so read from the last ")"
            const stat = readFileSync(`/proc/${name}/stat`, "utf8")
            const [procState, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
            if (procState !== "Z") table.set(Number(name), Number(ppid))
        } catch {
            // it ended while we looked
        }
    return table
}

/** `root` and every process below it. */
function tree(root: number): number[] {
    const table = processes()
    const found = [root]
    for (let i = 0; i < found.length; i++) for (const [pid, ppid] of table) if (ppid === found[i]) found.push(pid)
    return found.filter(pid => table.has(pid))
}

/** `npm start` in its own process group, with its state in the test's folder; its output collected. */
function npmStart(): ChildProcess & { output: string[] } {
    const args = Object.entries(ports).flatMap(([name, port]) => [`--${name}-port`, String(port)])
    const child = spawn("npm", ["start", "--", ...args], {
        cwd: PROJECT_ROOT,
        env: { ...process.env, SENTINEL_STATE_DIR: state },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
    })
    const output: string[] = []
    const collect = (c: Buffer) => output.push(...c.toString().split("\n").filter(Boolean))
    child.stdout!.on("data", collect)
    child.stderr!.on("data", collect)
    return Object.assign(child, { output })
}

/** Stops `npm start` with `signal` (to npm, or to its whole group as Ctrl-C does); every process it had must end. */
async function stopAndCheck(child: ChildProcess & { output: string[] }, signal: "SIGTERM" | "SIGINT", group: boolean) {
    const before = tree(child.pid!)
    assert.ok(before.length >= 4, `npm start runs ${before.length} processes`)
    const exited = new Promise<number | null>(resolve => child.once("exit", code => resolve(code)))
    process.kill(group ? -child.pid! : child.pid!, signal)
    const code = await exited
    const alive = () => {
        const table = processes()
        return before.filter(pid => table.has(pid))
    }
    await until(
        () => `every process to end (left: ${alive().join(", ")})`,
        () => alive().length === 0,
        20_000
    )
    return code
}

const line = (child: { output: string[] }, re: RegExp) => child.output.some(l => re.test(l))

/** `npm run reset-device` as a person runs it, against the test's state. */
function resetDevice(): Promise<{ code: number | null; output: string }> {
    return new Promise(resolve => {
        const child = spawn(process.execPath, [join("devs", "bin", "bootstrap.js"), "reset-device", "--service", consoleUrl], {
            cwd: PROJECT_ROOT,
            env: { ...process.env, SENTINEL_STATE_DIR: state },
        })
        let output = ""
        child.stdout.on("data", (c: Buffer) => (output += c.toString()))
        child.stderr.on("data", (c: Buffer) => (output += c.toString()))
        child.on("close", code => resolve({ code, output }))
    })
}

/** Waits for a line of `npm start`; fails at once, with its output, if it ends first. */
async function waitForLine(child: ChildProcess & { output: string[] }, re: RegExp, timeoutMs: number) {
    await until(
        () => `${re}:\n${child.output.slice(-30).join("\n")}`,
        () => line(child, re) || child.exitCode !== null,
        timeoutMs
    )
    assert.equal(child.exitCode, null, `npm start ended (${child.exitCode}) before ${re}:\n${child.output.join("\n")}`)
}

describe("npm start", () => {
    test("SIGTERM to npm during the firmware build stops everything, the build too", async () => {
        const child = npmStart()
        await waitForLine(child, /building the firmware/, 60_000)
        await waitForLine(child, /DeviceScript devtools server up/, 60_000)
        await stopAndCheck(child, "SIGTERM", false)
        assert.equal(existsSync(join(state, "stack", "local-build.devs.sources")), false, "a build that was stopped is not reused")
    })

    test("a first run: progress lines with times, how to log in, the first verified reading; Ctrl-C stops everything", async () => {
        const child = npmStart()
        await waitForLine(child, /first verified reading stored/, 240_000)
        const code = await stopAndCheck(child, "SIGINT", true)
        assert.equal(code, 0, child.output.join("\n"))
        const out = child.output
        for (const stage of [
            "local stack up",
            "DeviceScript devtools server up",
            "owner service up",
            "firmware built",
            "the device is claimed",
        ])
            assert.ok(
                out.some(l => new RegExp(`^\\d\\d:\\d\\d:\\d\\d \\[\\+\\d+\\.\\d s\\] .*${stage}`).test(l)),
                `no progress line for ${stage}`
            )
        assert.ok(out.some(l => l.endsWith(`the console is at ${consoleUrl}`)))
        // the setup link is a credential: in a file only the owner may read, named in the output, never printed
        const named = out.map(l => /first run: open the link in (\S+) to set the console password$/.exec(l)?.[1]).find(Boolean)
        assert.ok(named, "no line naming the setup link's file")
        const linkFile = join(state, "owner", SETUP_LINK_FILE)
        assert.equal(resolve(PROJECT_ROOT, named), linkFile)
        assert.equal(statSync(linkFile).mode & 0o777, 0o600)
        const link = readFileSync(linkFile, "utf8").trim()
        assert.match(link, new RegExp(`^${consoleUrl}/setup\\?token=[\\w-]{32}$`))
        const setupToken = new URL(link).searchParams.get("token")!
        assert.equal(out.join("\n").includes(setupToken), false, "the setup token in the output")
        assert.ok(out.some(l => /^\d\d:\d\d:\d\d device> uplink: connected/.test(l)))
        assert.deepEqual(
            out.filter(l => /socket \S+ (open|close) undefined/.test(l)),
            [],
            "the runtime's socket lines"
        )
        // every line of the program (npm's own header aside) carries a time
        const untimed = out.filter(l => !/^> |^\s*$/.test(l) && !/^\d\d:\d\d:\d\d /.test(l))
        assert.deepEqual(untimed, [])
    })

    test("a second run reuses the build; a factory reset from the script gives a new device, claimed again; SIGTERM ends all", async () => {
        const child = npmStart()
        await waitForLine(child, /first verified reading stored/, 120_000)
        assert.ok(line(child, /firmware unchanged since the last build/))
        assert.ok(!line(child, /the device is claimed|owner> claimed/), "the device was claimed on the first run")
        const deviceIds = () => child.output.map(l => /device> sentinel-node: boot \d+, device ([0-9a-f]{32})/.exec(l)?.[1]).filter(Boolean)
        const old = deviceIds()[0]!
        assert.match(old, /^[0-9a-f]{32}$/)

        const reset = await resetDevice()
        assert.equal(reset.code, 0, reset.output)
        assert.match(reset.output, /^the simulated device was reset/)
        await waitForLine(child, new RegExp(`factory reset: the simulator's flash is wiped \\(device ${old} forgotten\\)`), 30_000)
        await waitForLine(child, /the device is claimed/, 120_000)
        const fresh = deviceIds().at(-1)!
        assert.notEqual(fresh, old, "a new identity")
        const token = readFileSync(join(state, "owner", "api-token"), "utf8").trim()
        const list = (await (await fetch(`${consoleUrl}/api/devices`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
            devices: { id: string }[]
        }
        assert.deepEqual(
            list.devices.map(d => d.id),
            [fresh]
        )
        await stopAndCheck(child, "SIGTERM", false)

        // with nothing running, the script deletes the flash itself
        assert.ok(existsSync(join(state, "sim", ".devicescript", "flash", "sim.bin")))
        const offline = await resetDevice()
        assert.equal(offline.code, 0, offline.output)
        assert.match(offline.output, /^wiped .*sim\.bin: the next npm start boots a new device/)
        assert.equal(existsSync(join(state, "sim", ".devicescript", "flash", "sim.bin")), false)
        const keys = join(PROJECT_ROOT, "var", "keys")
        assert.ok(existsSync(join(keys, "trust", "root-1.cbor")), "the firmware root stays")
        assert.ok(
            readdirSync(keys).some(f => /^release-[0-9a-f]{16}\.json$/.test(f)),
            "the release key stays"
        )
    })
})
