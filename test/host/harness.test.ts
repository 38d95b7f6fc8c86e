/**
 * The harness two runs can share: the port map that moves the ports fixed in
 * the firmware and the DeviceScript CLI, the process groups that take a test
 * file's children with it, a stack that cleans up when it cannot start, and
 * the filter that knows files by their tests' titles.
 */
import assert from "node:assert/strict"
import { execFile, execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { after, describe, test } from "node:test"
import { freePort } from "../../devs/net/ports.ts"
import { startLocalStack } from "../../devs/stack/local.ts"
import { runInGroup } from "../../devs/test-runner/process-group.ts"
import { listTests, titlesOf } from "../../devs/test-runner/select.ts"

const PRELOAD = fileURLToPath(new URL("../../devs/sim/port-map.cjs", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "harness-test-"))
after(() => rmSync(dir, { recursive: true, force: true }))

/** Runs a node script with the port-map preload and `map`; resolves with what it printed. */
function withPortMap(map: string, script: string): Promise<string> {
    return new Promise((resolve, reject) =>
        execFile(
            process.execPath,
            ["--require", PRELOAD, "-e", script],
            { env: { ...process.env, SENTINEL_PORT_MAP: map } },
            (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout.trim()))
        )
    )
}

/** A server on a free loopback port that answers each connection with `name`. */
async function namedServer(name: string): Promise<{ server: Server; port: number }> {
    const server = createServer(s => s.end(name))
    await new Promise<void>(r => server.listen(0, "127.0.0.1", () => r()))
    return { server, port: (server.address() as { port: number }).port }
}

/** Whether a process is alive: it exists and is not a zombie waiting for a parent that may never reap it. */
function alive(pid: number): boolean {
    try {
        // /proc/<pid>/stat: "pid (name) state …"
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
        return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
    } catch {
        return false
    }
}

describe("the port map (devs/sim/port-map.cjs)", () => {
    test("connections to a fixed loopback port reach the port it is moved to; other ports and hosts are untouched", async () => {
        const moved = await namedServer("moved")
        const other = await namedServer("other")
        const fixed = await freePort()
        try {
            const read = (port: number, host: string) =>
                `new Promise(r => { const s = require("net").connect(${port}, "${host}"); let d = "";` +
                ` s.on("data", c => d += c); s.on("end", () => r(d)); s.on("error", e => r(e.code)) })`
            const script =
                `Promise.all([${read(fixed, "localhost")}, ${read(fixed, "127.0.0.1")}, ${read(other.port, "127.0.0.1")},` +
                ` new Promise(r => { const s = require("tls").connect({ port: ${fixed}, host: "127.0.0.1" });` +
                ` s.on("error", e => r(e.code)) })])` +
                `.then(v => console.log(v.join(" ")))`
            // the TLS client reaches the plain server, which hangs up: the handshake fails, but not with ECONNREFUSED
            const out = await withPortMap(`${fixed}:${moved.port}`, script)
            const [viaName, viaAddress, untouched, tls] = out.split(" ")
            assert.deepEqual([viaName, viaAddress, untouched], ["moved", "moved", "other"])
            assert.notEqual(tls, "ECONNREFUSED")
        } finally {
            moved.server.close()
            other.server.close()
        }
    })

    test("a server listening on a fixed port listens on the port it is moved to", async () => {
        const [fixed, actual] = [await freePort(), await freePort()]
        const script =
            `const s = require("net").createServer(c => c.end("here")).listen(${fixed}, "127.0.0.1", () => {` +
            ` console.log(s.address().port); s.close() })`
        assert.equal(await withPortMap(`${fixed}:${actual}`, script), String(actual))
    })

    test("a malformed map is refused at start", async () => {
        await assert.rejects(withPortMap("8443=1", "0"), /SENTINEL_PORT_MAP: "8443=1" is not fixed:actual/)
    })
})

describe("a test file's process group (devs/test-runner/process-group.ts)", () => {
    // a leader that starts a grandchild holding a port, prints its pid and then exits or hangs
    const leader = (then: string) =>
        `const c = require("child_process").spawn(process.execPath,` +
        ` ["-e", "require('net').createServer().listen(0); setInterval(() => {}, 1000)"],` +
        ` { stdio: "ignore" }); console.log(c.pid); ${then}`

    test("what a file started dies with it when it ends", async () => {
        const r = await runInGroup(process.execPath, ["-e", leader("setTimeout(() => process.exit(0), 300)")], {
            cwd: dir,
            timeoutMs: 30_000,
        })
        const pid = Number(r.output.trim())
        assert.equal(r.code, 0)
        assert.ok(pid > 0, r.output)
        await new Promise(resolve => setTimeout(resolve, 100))
        assert.equal(alive(pid), false, "the grandchild outlived its file")
    })

    test("a file over its time limit is killed with what it started", async () => {
        const started = Date.now()
        const r = await runInGroup(process.execPath, ["-e", leader("setInterval(() => {}, 1000)")], { cwd: dir, timeoutMs: 1500 })
        assert.equal(r.timedOut, true)
        assert.ok(Date.now() - started < 10_000)
        const pid = Number(r.output.split("\n")[0])
        await new Promise(resolve => setTimeout(resolve, 100))
        assert.equal(alive(pid), false, "the grandchild outlived its file")
        assert.match(r.output, /killed with its process group after 1.5 s/)
    })
})

describe("a local stack that cannot start", () => {
    test("stops the Mosquitto it started and rejects, instead of hanging with it", async () => {
        const taken = createServer()
        await new Promise<void>(r => taken.listen(0, "127.0.0.1", () => r()))
        const port = (taken.address() as { port: number }).port
        const stackDir = join(dir, "stack")
        try {
            await assert.rejects(startLocalStack({ dir: stackDir, updatesPort: port, onLog: () => {} }), /EADDRINUSE/)
        } finally {
            taken.close()
        }
        // no Mosquitto left that reads this stack's configuration
        const conf = join(stackDir, "mosquitto", "mosquitto.conf")
        const left = readdirSync("/proc")
            .filter(p => /^\d+$/.test(p))
            .filter(p => {
                try {
                    return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(conf)
                } catch {
                    return false
                }
            })
        assert.deepEqual(
            left,
            [],
            `mosquitto still running: ${left.map(p => execFileSync("ps", ["-o", "cmd=", "-p", p]).toString()).join("")}`
        )
    })
})

describe("the name filter (devs/test-runner/select.ts)", () => {
    test("finds the titles of suites and tests", () => {
        assert.deepEqual(titlesOf(`describe("a \\"b\\"", () => { test('c', () => {}); it(\`d\`, x) })`), ['a \\"b\\"', "c", "d"])
    })

    test("cbor takes the cbor2 cross-check, whose path does not say cbor", () => {
        const files = listTests("test/host", ["cbor"])
        assert.ok(files.includes("test/host/codec-crosscheck.test.ts"), files.join(" "))
        assert.ok(!files.includes("test/host/cli.test.ts"), files.join(" "))
        assert.deepEqual(listTests("test/host", ["CODEC-CROSS"]), ["test/host/codec-crosscheck.test.ts"])
    })
})
