/**
 * The WSSK gateway (devs/updates/wssk.ts) against the runtime's own WSSK
 * client in the simulator, over TLS with a CA made for the test and trusted
 * through NODE_EXTRA_CA_CERTS:
 *
 * 1. a device the gateway has no key for is refused (401); one with the wrong
 *    key fails authentication and never becomes connected;
 * 2. with the right key the device connects, reports the hash of its program,
 *    a misaligned image is refused before anything is sent, and a deploy
 *    replaces the program with one that then runs;
 * 3. the runtime takes an image of MAX_IMAGE_BYTES, the cap the signer and
 *    the update service hold images to, and refuses one 32 bytes longer.
 *
 * The simulator runs in `--test --test-self-exit` mode: sockets work, flash
 * lives in memory (the project's .devicescript/flash is not touched), no
 * devtools server is needed, and a program replaced over WSSK does not end the
 * run (only a panic or `ds.restart()` would). The gateway's port and the
 * device's key reach the v1 fixture in a module generated at test time.
 */
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { buildImage, deviceLine, runDevs } from "../../devs/sim/devs-cli.ts"
import { until } from "../../devs/sim/until.ts"
import { ensurePki, type Pki } from "../../devs/stack/pki.ts"
import { MAX_IMAGE_BYTES } from "../../devs/updates/manifest.ts"
import { WsskGateway, type WsskEvent } from "../../devs/updates/wssk.ts"
import { sha256Hex } from "./support/digest.ts"

const dir = mkdtempSync(join(tmpdir(), "wssk-test-"))
/** The key the device holds (compiled into the v1 fixture). */
const DEVICE_KEY = randomBytes(32)
const events: WsskEvent[] = []
const transcript: string[] = []
let keyFor: (deviceId: string) => Buffer | undefined = () => undefined
let pki: Pki
let gateway: WsskGateway
let v1: Buffer
let v2: Buffer

/** Builds a fixture; returns the image, written to the test's folder as `<name>.devs`. */
function build(name: string): Promise<Buffer> {
    return buildImage(`test/device/fixtures/${name}.ts`, join(dir, `${name}.devs`))
}

/** A simulator run of a built image. */
interface Simulator {
    /** Lines the device printed (its console and the runtime's log), without the `WASM> ` prefix. */
    lines: string[]
    /** Host time (ms) at which each line arrived, parallel to `lines`. */
    times: number[]
    /** Resolves with the first printed line matching `pattern`, and its index in `lines`. */
    waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray & { line: number }>
    stop(): Promise<void>
}

/** Runs a built image in the simulator in test mode, in the test's folder (flash in memory, no devtools server). */
function simulate(name: string): Simulator {
    const lines: string[] = []
    const times: number[] = []
    const abort = new AbortController()
    const ended = runDevs(["run", `${name}.devs`, "--test", "--test-self-exit", "--test-timeout", "120000"], {
        cwd: dir,
        env: { NODE_EXTRA_CA_CERTS: pki.caCert },
        signal: abort.signal,
        onLine: line => {
            transcript.push(line)
            const text = deviceLine(line)
            if (text === undefined) return
            lines.push(text)
            times.push(Date.now())
        },
    })
    return {
        lines,
        times,
        waitFor: async (pattern, timeoutMs) => {
            let index = -1
            await until(
                () => `a line matching ${pattern}; the device printed:\n${lines.join("\n")}`,
                () => (index = lines.findIndex(l => pattern.test(l))) >= 0,
                timeoutMs
            )
            return Object.assign(pattern.exec(lines[index])!, { line: index })
        },
        stop: async () => {
            abort.abort()
            await ended
        },
    }
}

/** Resolves with the first gateway event of `kind` recorded from `from` on. */
async function eventOf(kind: string, from: number, timeoutMs: number): Promise<WsskEvent> {
    const found = () => events.slice(from).find(e => e.kind === kind)
    await until(
        () => `a ${kind} event; events: ${JSON.stringify(events)}`,
        () => found() !== undefined,
        timeoutMs
    )
    return found()!
}

before(async () => {
    pki = ensurePki(join(dir, "pki"))
    gateway = new WsskGateway({
        tls: { key: readFileSync(pki.serverKey, "utf8"), cert: readFileSync(pki.serverCert, "utf8") },
        port: 0,
        masterKeyFor: id => keyFor(id),
        onEvent: e => events.push(e),
    })
    const port = await gateway.start()
    const generated = join(PROJECT_ROOT, "test", "device", "fixtures", "generated")
    mkdirSync(generated, { recursive: true })
    writeFileSync(
        join(generated, "wssk-config.ts"),
        `export const WSSK_HOST = "localhost"\nexport const WSSK_PORT = ${port}\n` +
            `export const WSSK_MASTER_KEY = "${DEVICE_KEY.toString("hex")}"\n`
    )
    v1 = await build("wssk-v1")
    v2 = await build("wssk-v2")
})

after(async () => {
    await gateway?.stop()
    rmSync(dir, { recursive: true, force: true })
})

describe("WSSK gateway and the simulator's runtime", () => {
    test("a device without a key at the gateway is refused with 401", { timeout: 90_000 }, async () => {
        keyFor = () => undefined
        const from = events.length
        const sim = simulate("wssk-v1")
        try {
            const [, , id] = await sim.waitFor(/^wssk-fixture v1 ([0-9a-f]{64}) id (\S+)$/, 60_000)
            const refused = await eventOf("wssk-unknown-device", from, 20_000)
            assert.equal(refused.deviceId, id)
            // websock_conn.c wants "HTTP/1.1 101" and reports anything else this way
            await sim.waitFor(/^connection error: "websock response"$/, 10_000)
            assert.equal(gateway.session(id), undefined)
        } finally {
            await sim.stop()
        }
    })

    test("a wrong master key fails authentication and the device never connects", { timeout: 90_000 }, async () => {
        keyFor = () => randomBytes(32)
        const from = events.length
        const sim = simulate("wssk-v1")
        try {
            const [, , id] = await sim.waitFor(/^wssk-fixture v1 ([0-9a-f]{64}) id (\S+)$/, 60_000)
            const failed = await eventOf("wssk-auth-failed", from, 20_000)
            assert.equal(failed.deviceId, id)
            await sim.waitFor(/^connection to localhost closed$/, 10_000)
            // the runtime redials only after its 32 s watchdog; nothing may connect meanwhile
            await assert.rejects(gateway.waitForDevice(id, 3_000), /not connected/)
            assert.equal(
                sim.lines.some(l => l.startsWith("connected to")),
                false,
                "the runtime reported a connection"
            )
        } finally {
            await sim.stop()
        }
    })

    test("with the right key: connect, hash, refuse a misaligned image, deploy v2 and run it", { timeout: 120_000 }, async t => {
        keyFor = () => DEVICE_KEY
        const from = events.length
        const started = Date.now()
        const sim = simulate("wssk-v1")
        try {
            // the program reads its own SHA-256 from the runtime's DeviceScriptManager: that of the .devs file
            const opened = await sim.waitFor(/^wssk-fixture v1 ([0-9a-f]{64}) id (\S+)$/, 60_000)
            const [, printed, id] = opened
            assert.equal(printed, sha256Hex(v1))
            const session = await gateway.waitForDevice(id, 30_000)
            const connectedAt = Date.now()
            assert.equal(session.deviceId, id)
            assert.equal((await session.getHash()).toString("hex"), sha256Hex(v1))

            // misaligned and empty images are refused before a byte is sent
            const sent = session.traffic().messagesOut
            await assert.rejects(session.deploy(v2.subarray(0, v2.length - 1)), RangeError)
            await assert.rejects(session.deploy(Buffer.alloc(0)), RangeError)
            assert.equal(session.traffic().messagesOut, sent)

            const before = session.traffic()
            const progress: number[] = []
            const deployStarted = Date.now()
            await session.deploy(v2, written => progress.push(written))
            const deployMs = Date.now() - deployStarted
            const during = session.traffic()
            assert.equal(progress.at(-1), v2.length)
            assert.equal(progress.length, Math.ceil(v2.length / 128))

            // the runtime starts v2, which sees its own hash, and so does the gateway
            const [, v2Printed] = await sim.waitFor(/^wssk-fixture v2 ([0-9a-f]{64})$/, 20_000)
            assert.equal(v2Printed, sha256Hex(v2))
            assert.equal((await session.getHash()).toString("hex"), sha256Hex(v2))
            // v2 closes the window by clearing the connection string
            await session.closed
            await sim.waitFor(/^wssk-fixture v2 window closed$/, 10_000)
            assert.equal(gateway.session(id), undefined)

            assert.deepEqual(events.slice(from), [], "no security events with the right key")
            for (const line of transcript) assert.equal(line.includes(DEVICE_KEY.toString("hex")), false, "the master key in the logs")
            const total = session.traffic()
            t.diagnostic(`device id ${id}; v1 ${v1.length} B, v2 ${v2.length} B`)
            t.diagnostic(
                `connected within ${connectedAt - sim.times[opened.line]} ms of the program opening the window ` +
                    `(${connectedAt - started} ms after spawning the simulator)`
            )
            t.diagnostic(
                `deploy of ${v2.length} B: ${deployMs} ms, ${during.messagesOut - before.messagesOut} messages out, ` +
                    `${during.payloadOut - before.payloadOut} B sealed out / ${during.payloadIn - before.payloadIn} B in, ` +
                    `${during.wireOut - before.wireOut} B on the wire out / ${during.wireIn - before.wireIn} B in`
            )
            t.diagnostic(`whole session: ${JSON.stringify(total)}`)
        } finally {
            await sim.stop()
        }
    })

    test("the runtime takes an image of MAX_IMAGE_BYTES and refuses one 32 bytes longer", { timeout: 180_000 }, async () => {
        keyFor = () => DEVICE_KEY
        const sim = simulate("wssk-v1")
        try {
            const [, , id] = await sim.waitFor(/^wssk-fixture v1 ([0-9a-f]{64}) id (\S+)$/, 60_000)
            const session = await gateway.waitForDevice(id, 30_000)
            const padded = (size: number) => Buffer.concat([v1, Buffer.alloc(size - v1.length)])
            // deploy_start finds no free flash pages for it and answers with an error, but it has already stopped the
            // program and let go of it (devsmgr.c): the device runs nothing until it restarts. Hence the cap upstream.
            await assert.rejects(session.deploy(padded(MAX_IMAGE_BYTES + 32)), /device refused command 0x94/)
            assert.equal((await session.getHash()).toString("hex"), "00".repeat(32))
            const written: number[] = []
            await session.deploy(padded(MAX_IMAGE_BYTES), n => written.push(n))
            assert.equal(written.at(-1), MAX_IMAGE_BYTES)
        } finally {
            await sim.stop()
        }
    })
})
