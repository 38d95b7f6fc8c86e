/**
 * Everything at once against the real firmware in the DeviceScript
 * simulator (its own downlink counter check, src/uplink/downlink.ts, in
 * flash): the owner service with its console session, the API token, the
 * `command` CLI in parallel processes, and the `bridge` and `consume` CLIs
 * following the stream. 100 commands sent at once: the device acts on each
 * once and refuses none as a replay (issue 12: every command after the first
 * was refused while several processes rewrote one keystore), every one is
 * answered by a state report that names it, nothing crashes, and the bridge
 * keeps republishing readings meanwhile.
 */
import assert from "node:assert/strict"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, test } from "node:test"
import mqtt, { type MqttClient } from "mqtt"
import { OwnerApi } from "../../devs/owner/api-client.ts"
import { ConsoleClaimer } from "../../devs/owner/console-claimer.ts"
import { runOwnerService, type RunningOwner } from "../../devs/owner/run.ts"
import { freePort, waitForPort } from "../../devs/net/ports.ts"
import { PROJECT_ROOT, REGISTRY_PORT } from "../../devs/project.ts"
import { deviceLine, runInSimulator } from "../../devs/sim/devs-cli.ts"
import { until } from "../../devs/sim/until.ts"
import { startLocalStack, type LocalStack } from "../../devs/stack/local.ts"

const COMMANDS = 100
const dir = mkdtempSync(join(tmpdir(), "owner-concurrency-test-"))
const log: string[] = []
const lines: string[] = []
const children: ChildProcess[] = []
let stack: LocalStack
let owner: RunningOwner
let home: ChildProcess
let homePort: number
const simulator = new AbortController()

before(async () => {
    stack = await startLocalStack({ dir, brokerPort: await freePort(), updatesPort: await freePort(), onLog: (_s, l) => log.push(l) })
    const passwordFile = join(dir, "console-password")
    writeFileSync(passwordFile, "a console password", { mode: 0o600 })
    owner = await runOwnerService({
        storePath: join(dir, "owner", "owner.db"),
        tokenPath: join(dir, "owner", "api-token"),
        name: "busy",
        registryUrl: `https://localhost:${stack.registryPort}`,
        ca: readFileSync(stack.pki.caCert),
        brokerUrl: `mqtts://localhost:${stack.broker.port}`,
        port: 0,
        passwordFile,
        log: l => log.push(l),
    })
    homePort = await freePort()
    // the home broker the bridge republishes to: Mosquitto without a config, as a small home installation runs it
    home = spawn("mosquitto", ["-p", String(homePort)], { stdio: "ignore" })
    await waitForPort(homePort, 10_000)
})

after(async () => {
    if (process.env.FIRMWARE_LOG) writeFileSync(process.env.FIRMWARE_LOG, log.join("\n"))
    simulator.abort()
    for (const c of children) c.kill("SIGINT")
    home?.kill("SIGTERM")
    await owner?.stop()
    await stack?.stop()
    rmSync(dir, { recursive: true, force: true })
})

/** Runs a program of devs/bin as its npm script does. */
function program(name: string, args: string[]): ChildProcess & { output: string[] } {
    const child = spawn(process.execPath, ["--import", "tsx", join("devs", "bin", `${name}.ts`), ...args], { cwd: PROJECT_ROOT })
    const output: string[] = []
    child.stdout.on("data", (c: Buffer) => output.push(...c.toString().split("\n").filter(Boolean)))
    child.stderr.on("data", (c: Buffer) => output.push(...c.toString().split("\n").filter(Boolean)))
    return Object.assign(child, { output })
}

const exited = (c: ChildProcess) =>
    new Promise<number>(resolve => (c.exitCode !== null ? resolve(c.exitCode) : c.once("exit", code => resolve(code ?? -1))))

test(`${COMMANDS} commands from the console, the API and the CLI at once, with the bridge running: none refused as a replay`, async () => {
    const api = new OwnerApi(owner.url, readFileSync(join(dir, "owner", "api-token"), "utf8").trim())
    const client = ["--service", owner.url, "--token-file", join(dir, "owner", "api-token")]
    const claimer = new ConsoleClaimer((id, code) => api.call("POST", "/api/devices/claim", { id, code }).then(() => {}))
    const ended = runInSimulator("src/main.ts", {
        timeoutMs: 600_000,
        env: { NODE_EXTRA_CA_CERTS: stack.pki.caCert },
        // the firmware expects the registry on the well-known port
        ports: { [REGISTRY_PORT]: stack.registryPort },
        signal: simulator.signal,
        onLine: line => {
            log.push(line)
            const text = deviceLine(line)
            if (text === undefined) return
            lines.push(text)
            claimer.onLine(text)?.catch(e => log.push(`claim failed: ${e}`))
        },
    })
    void ended.then(r => log.push(`simulator ended (${r.code})`))
    await until("readings at the owner service", () => owner.service.counts.verified >= 3, 180_000)
    const id = claimer.deviceId

    // the followers: the bridge to the home broker, and consume
    const watcher: MqttClient = await mqtt.connectAsync(`mqtt://127.0.0.1:${homePort}`)
    const bridged: string[] = []
    watcher.on("message", topic => bridged.push(topic))
    await watcher.subscribeAsync(`sentinel/${id}/#`)
    const bridge = program("bridge", ["--local", `mqtt://127.0.0.1:${homePort}`, ...client])
    const consume = program("consume", client)
    children.push(bridge, consume)
    await until(
        "the bridge and consume to follow",
        () => bridge.output.some(l => /bridging/.test(l)) && consume.output.some(l => /following/.test(l)),
        60_000
    )

    // a console session
    const login = await fetch(`${owner.url}/login`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "password=a+console+password",
        redirect: "manual",
    })
    const cookie = login.headers.get("set-cookie")!.split(";")[0]
    const csrf = ((await (await fetch(`${owner.url}/api/session`, { headers: { cookie } })).json()) as { csrf: string }).csrf

    const commandAt = (i: number) => (i % 10 === 0 ? { cmd: "interval", sensor: "shtc3", ms: 5000 + i } : { cmd: "state" })
    const fromConsole = async (i: number) => {
        const res = await fetch(`${owner.url}/api/devices/${id}/commands`, {
            method: "POST",
            headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json" },
            body: JSON.stringify(commandAt(i)),
        })
        assert.equal(res.status, 202)
    }
    const fromApi = async (i: number) => void (await api.call("POST", `/api/devices/${id}/commands`, commandAt(i)))
    const fromCli = async (i: number) => {
        const c = commandAt(i)
        const words = c.cmd === "interval" ? ["interval", "shtc3", String(c.ms)] : ["state"]
        const cli = program("command", ["--id", id, ...words, ...client])
        assert.equal(await exited(cli), 0, cli.output.join("\n"))
        assert.match(cli.output.join("\n"), /^sent (state|interval) to [0-9a-f]{32} \(counter \d+\)/)
    }
    // all at once from the three sources (40 console, 40 API, 20 CLI processes), their counters interleaved; the
    // device takes up to 128 waiting commands and runs each as the reply to the one before leaves (src/uplink/uplink.ts)
    const acted = () => lines.filter(l => /^uplink: command /.test(l)).length
    await Promise.all(Array.from({ length: COMMANDS }, (_, i) => (i % 10 < 4 ? fromConsole(i) : i % 10 < 8 ? fromApi(i) : fromCli(i))))
    await until(
        () => `the device to act on ${COMMANDS} commands (${acted()} so far; last lines:\n${lines.slice(-8).join("\n")})`,
        () => acted() >= COMMANDS,
        300_000
    )
    const answered = () => owner.store.commands(id, 1000).filter(c => c.status === "answered").length
    await until(
        () => `the replies to ${COMMANDS} commands (${answered()} so far)`,
        () => answered() >= COMMANDS,
        120_000
    )
    const refused = lines.filter(l => /downlink-refused/.test(l))
    assert.deepEqual(refused, [], "the device refused commands")
    assert.equal(acted(), COMMANDS)
    const rows = owner.store.commands(id, 1000)
    assert.equal(rows.length, COMMANDS)
    assert.equal(new Set(rows.map(r => r.counter)).size, COMMANDS)
    // each reply names the command it answers
    assert.deepEqual(
        rows.filter(r => r.reply?.answers !== r.counter).map(r => [r.counter, r.reply?.answers]),
        []
    )
    // the followers kept following, and nothing crashed
    await until("readings bridged to the home broker", () => bridged.some(t => /temperature/.test(t)), 60_000)
    assert.ok(
        consume.output.some(l => /sent state/.test(l)),
        "consume saw the commands"
    )
    for (const c of [bridge, consume]) assert.equal(c.exitCode, null, c.output.join("\n"))
    assert.equal((await api.call<{ devices: unknown[] }>("GET", "/api/devices")).devices.length, 1)
    assert.ok(!log.some(l => /ingest worker|simulator ended/.test(l)), log.filter(l => /ingest worker|simulator ended/.test(l)).join("\n"))
    await watcher.endAsync()
    console.log(
        `concurrency: ${COMMANDS} commands at once (40 console, 40 API, 20 CLI processes), ` +
            `${acted()} acted on by the firmware, ${refused.length} refused`
    )
})
