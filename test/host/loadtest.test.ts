/**
 * `npm run loadtest` at a small size: 20 emulated devices against both
 * setups (Mosquitto + SQLite + one registry; a three-node RabbitMQ cluster +
 * PostgreSQL + two registries), publishing for a few seconds. Every message
 * a device sealed (its state report and its readings) is verified at the
 * owner service exactly once in each setup; the table has both setups and
 * their ratios; and once it exits, nothing it started is left running. The
 * figures themselves are not asserted (they belong to the run, not the test).
 *
 * The program runs in a process group of its own, so "left behind" means
 * any process still in that group: every server it starts (Mosquitto, the
 * RabbitMQ nodes and their epmd, PostgreSQL, the second registry) stays in
 * its group.
 */
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, describe, test } from "node:test"
import type { SetupReport } from "../../devs/load/run.ts"

const dir = mkdtempSync(join(tmpdir(), "loadtest-test-"))
let group: number | undefined

after(() => {
    // a failed or timed-out run: its whole group goes
    if (group !== undefined && inGroup(group).length)
        try {
            process.kill(-group, "SIGKILL")
        } catch {
            // gone meanwhile
        }
    rmSync(dir, { recursive: true, force: true })
})

/** Pids of the processes in process group `pgid`, from /proc. */
function inGroup(pgid: number): number[] {
    const pids: number[] = []
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue
        try {
            const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
            // "pid (comm) state ppid pgrp …", read after the last ')'
            const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
            if (Number(fields[2]) === pgid && fields[0] !== "Z") pids.push(Number(entry))
        } catch {
            // gone meanwhile
        }
    }
    return pids
}

describe("npm run loadtest", () => {
    test("20 devices on both setups: every sealed message verified once, a table with ratios, nothing left running", async () => {
        const json = join(dir, "figures.json")
        const child = spawn(
            process.execPath,
            ["--import", "tsx", "devs/bin/loadtest.ts", "--devices", "20", "--duration", "4", "--every", "1", "--json", json],
            { detached: true, stdio: ["ignore", "pipe", "pipe"] }
        )
        group = child.pid
        let output = ""
        child.stdout!.on("data", c => (output += c))
        child.stderr!.on("data", c => (output += c))
        const code = await new Promise<number | null>(resolve => child.once("exit", c => resolve(c)))
        assert.equal(code, 0, output.slice(-3000))

        const { reports } = JSON.parse(readFileSync(json, "utf8")) as { reports: SetupReport[] }
        assert.deepEqual(
            reports.map(r => r.setup),
            ["embedded", "cluster"]
        )
        for (const r of reports) {
            assert.equal(r.stoppedBecause, undefined, `${r.setup}: ${r.stoppedBecause}`)
            assert.equal(r.steps.length, 1)
            const [s] = r.steps
            assert.equal(s.connected, 20, r.setup)
            // a state report per device and readings for 4 s at one a second each
            assert.ok(s.sealed >= 20 + 20 * 3, `${r.setup}: ${s.sealed} sealed`)
            assert.deepEqual([s.verifiedOnce, s.duplicates, s.missing], [s.sealed, 0, 0], `${r.setup}: every sealed message verified once`)
            assert.ok(s.loginsPerS > 0 && s.verifiedPerS > 0 && s.p50Ms > 0 && s.p99Ms >= s.p50Ms, JSON.stringify(s))
        }

        const table = output.slice(output.lastIndexOf("setup "))
        assert.match(table, /^setup +devices +logins\/s +connected +verified msg\/s +p50 ms +p99 ms +broker KiB\/conn +emulator KiB\/conn/)
        assert.match(table, /\nembedded +20 /)
        assert.match(table, /\ncluster +20 /)
        assert.match(table, /\ncluster\/embedded +20 +\d+\.\d\dx +1\.00x /, "the ratio row, connected equal in both")

        // tsx's esbuild service ends on its own once its parent has gone: a moment, not a process left behind
        const left = async () => {
            for (let i = 0; i < 50 && inGroup(child.pid!).length; i++) await new Promise(r => setTimeout(r, 100))
            return inGroup(child.pid!).flatMap(pid => {
                try {
                    return [`${pid} ${readFileSync(`/proc/${pid}/comm`, "utf8").trim()}`]
                } catch {
                    return [] // gone meanwhile
                }
            })
        }
        assert.deepEqual(await left(), [], "processes left running by the load test")
        group = undefined
    })
})
