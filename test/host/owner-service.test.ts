/**
 * The owner service over HTTP, on a local stack: the console's login
 * (limited and logged), its session cookie and CSRF token, the API token of
 * the CLIs, the first-run setup link, claims, readings and the event stream,
 * commands with counters that only go up, a named release and the device's
 * update reports, TLS off loopback; and that no key, password, token or claim
 * code is in any log line, page or API answer of the run.
 */
import assert from "node:assert/strict"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { decode, encode } from "cbor2"
import { OwnerApi, type StreamEvent } from "../../devs/owner/api-client.ts"
import { channelKeys } from "../../devs/owner/keys.ts"
import { buildOwnerHttp } from "../../devs/owner/http.ts"
import { ConsoleAuth, SETUP_LINK_FILE } from "../../devs/owner/console-auth.ts"
import { OwnerStore } from "../../devs/owner/store.ts"
import { until } from "../../devs/sim/until.ts"
import { startOwnerStack, type EmulatedDevice, type OwnerStack } from "./support/owner-stack.ts"

const dir = mkdtempSync(join(tmpdir(), "owner-service-test-"))
let o: OwnerStack
/** Every body the service answered in this run, to look for secrets in. */
const bodies: string[] = []

before(async () => {
    o = await startOwnerStack(dir)
})
after(async () => {
    await o?.stop()
    rmSync(dir, { recursive: true, force: true })
})

/** One request to the owner service, as a browser or a script sends it; keeps the body. */
async function http(
    method: string,
    path: string,
    options: { cookie?: string; csrf?: string; token?: string; json?: unknown; form?: Record<string, string> } = {}
) {
    const headers: Record<string, string> = {}
    if (options.cookie) headers.cookie = options.cookie
    if (options.csrf) headers["x-csrf-token"] = options.csrf
    if (options.token) headers.authorization = `Bearer ${options.token}`
    let body: string | undefined
    if (options.json !== undefined) {
        headers["content-type"] = "application/json"
        body = JSON.stringify(options.json)
    } else if (options.form) {
        headers["content-type"] = "application/x-www-form-urlencoded"
        body = new URLSearchParams(options.form).toString()
    }
    const res = await fetch(o.owner.url + path, { method, headers, body, redirect: "manual" })
    const text = await res.text()
    bodies.push(text)
    return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) }
}

/** Logs in at the console; returns the cookie and the CSRF token. */
async function consoleLogin() {
    const res = await http("POST", "/login", { form: { password: o.password } })
    assert.equal(res.status, 303)
    assert.equal(res.headers.get("location"), "/")
    const setCookie = res.headers.get("set-cookie")!
    const cookie = setCookie.split(";")[0]
    const session = await http("GET", "/api/session", { cookie })
    return { cookie, setCookie, csrf: session.json().csrf as string }
}

async function claimedDevice(): Promise<EmulatedDevice> {
    const d = await o.device()
    const res = await http("POST", "/api/devices/claim", { token: o.token, json: { id: d.id, code: d.claimCode, name: "kitchen" } })
    assert.equal(res.status, 201, res.text)
    await d.connect()
    return d
}

/** A claimed device and the API's event stream, open once the service has a listener for `kind`; `stop` closes it. */
async function streamingDevice(kind: string) {
    const d = await claimedDevice()
    const api = new OwnerApi(o.owner.url, o.token)
    const events: StreamEvent[] = []
    const abort = new AbortController()
    const streaming = api.stream(e => events.push(e), abort.signal)
    await until("the stream to open", () => o.owner.service.listenerCount(kind) > 0)
    const stop = async () => {
        abort.abort()
        await streaming
    }
    return { d, api, events, stop }
}

describe("owner service over HTTP", () => {
    test("a page without a session goes to /login; the API without a session or token answers 401", async () => {
        for (const path of ["/", `/devices/${"a".repeat(32)}`]) {
            const res = await http("GET", path)
            assert.equal(res.status, 303)
            assert.equal(res.headers.get("location"), "/login")
        }
        for (const [method, path] of [
            ["GET", "/api/devices"],
            ["POST", "/api/devices/claim"],
            ["GET", "/api/stream"],
        ]) {
            assert.equal((await http(method, path)).status, 401, path)
            assert.equal((await http(method, path, { token: "not-the-token" })).status, 401, path)
        }
        const login = await http("GET", "/login")
        assert.match(login.text, /<form method="post" action="\/login">/)
        assert.equal(login.headers.get("x-content-type-options"), "nosniff")
        assert.match(login.headers.get("content-security-policy") ?? "", /default-src 'self'/)
    })

    test("the console session: HttpOnly SameSite=Strict cookie, CSRF token on every state-changing request, logout ends it", async () => {
        const d = await claimedDevice()
        const { cookie, setCookie, csrf } = await consoleLogin()
        assert.match(setCookie, /; HttpOnly/)
        assert.match(setCookie, /; SameSite=Strict/)
        assert.doesNotMatch(setCookie, /Secure/, "plain HTTP on loopback")
        const page = await http("GET", "/", { cookie })
        assert.equal(page.status, 200)
        assert.match(page.text, /kitchen/)
        assert.match((await http("GET", `/devices/${d.id}`, { cookie })).text, /Set interval/)
        // no CSRF token, a wrong one, the right one
        const path = `/api/devices/${d.id}/commands`
        assert.equal((await http("POST", path, { cookie, json: { cmd: "state" } })).status, 403)
        assert.equal((await http("POST", path, { cookie, csrf: "x".repeat(32), json: { cmd: "state" } })).status, 403)
        assert.equal((await http("PATCH", `/api/devices/${d.id}`, { cookie, json: { name: "hall" } })).status, 403)
        assert.equal((await http("DELETE", `/api/devices/${d.id}`, { cookie })).status, 403)
        assert.ok(o.log.some(l => /without its CSRF token refused/.test(l)))
        assert.equal((await http("POST", path, { cookie, csrf, json: { cmd: "state" } })).status, 202)
        assert.equal((await http("PATCH", `/api/devices/${d.id}`, { cookie, csrf, json: { name: "hall" } })).json().name, "hall")
        // a token needs no CSRF token: no browser sends it by itself
        assert.equal((await http("POST", path, { token: o.token, json: { cmd: "events" } })).status, 202)
        assert.equal((await http("POST", path, { token: o.token, json: { cmd: "reboot" } })).status, 400)
        // removing forgets the device and its keys: the API no longer knows it
        assert.equal((await http("DELETE", `/api/devices/${d.id}`, { cookie, csrf })).status, 200)
        assert.equal(o.owner.store.device(d.id), undefined)
        assert.equal((await http("GET", `/api/devices/${d.id}`, { token: o.token })).status, 404)
        assert.equal((await http("POST", "/logout", { cookie, form: { csrf } })).status, 303)
        assert.equal((await http("GET", "/api/devices", { cookie })).status, 401)
    })

    test("claims, readings and the event stream; commands leave with counters that only go up", async () => {
        const { d, api, events, stop } = await streamingDevice("reading")
        for (let c = 0; c < 5; c++)
            await d.client.publishAsync(`things/${d.id}/up/readings`, await d.seal("readings", d.readings(3, 20 + c), c), { qos: 1 })
        let stored = 0
        await until("15 readings", () => {
            void api.call<{ readings: unknown[] }>("GET", `/api/devices/${d.id}/readings`).then(r => (stored = r.readings.length))
            return stored === 15
        })
        await until("5 reading events", () => events.filter(e => e.event === "reading").length === 5)
        const first = events.find(e => e.event === "reading")!.data as { deviceId: string; readings: { name: string; value: number }[] }
        assert.equal(first.deviceId, d.id)
        assert.deepEqual(
            first.readings.map(r => [r.name, r.value]),
            [
                ["shtc3/temperature", 20],
                ["shtc3/temperature", 20.25],
                ["shtc3/temperature", 20.5],
            ]
        )
        const list = (await api.call<{ devices: { id: string; online: boolean; lastCounter: number }[] }>("GET", "/api/devices")).devices
        assert.deepEqual(
            list.filter(x => x.id === d.id).map(x => [x.online, x.lastCounter]),
            [[true, 4]]
        )
        // commands from API calls at once: each counter once, in the order they left
        const downs: Buffer[] = []
        await d.client.subscribeAsync(`things/${d.id}/down/cmd`, { qos: 1 })
        d.client.on("message", (_t, p) => downs.push(Buffer.from(p)))
        const sent = await Promise.all(
            Array.from({ length: 30 }, () => api.call<{ counter: number }>("POST", `/api/devices/${d.id}/commands`, { cmd: "state" }))
        )
        const counters = sent.map(s => s.counter).sort((a, b) => a - b)
        assert.equal(new Set(counters).size, 30)
        await until("30 commands at the device", () => downs.length === 30)
        const { counterFromPartialIv, openEncrypt0 } = await import("../../devs/owner/encrypt0.ts")
        const down = channelKeys(d.root, d.id, "down")
        const arrived = downs.map(p =>
            counterFromPartialIv(openEncrypt0(p, down, Buffer.from(`things/${d.id}/down/cmd`)).message.partialIv!)
        )
        assert.deepEqual(
            arrived,
            [...arrived].sort((a, b) => a - b),
            "commands reach the device in counter order"
        )
        // a state report answers the oldest command waiting for one
        await d.client.publishAsync(
            `things/${d.id}/up/state`,
            await d.seal("state", new Uint8Array([0xa1, 0x64, 0x62, 0x6f, 0x6f, 0x74, 0x03]), 5),
            { qos: 1 }
        )
        await until("the answer", () => events.some(e => e.event === "command" && (e.data as { status: string }).status === "answered"))
        const detail = await api.call<{ commands: { status: string; reply: unknown }[]; state: { state: unknown } }>(
            "GET",
            `/api/devices/${d.id}`
        )
        assert.deepEqual(detail.state.state, { boot: 3 })
        assert.equal(detail.commands.filter(c => c.status === "answered").length, 1)
        // a report that names the command it answers (`answers`: its down counter) answers that one, not the oldest
        const named = counters[20]
        await d.client.publishAsync(
            `things/${d.id}/up/state`,
            await d.seal(
                "state",
                encode(
                    new Map<string, unknown>([
                        ["answers", named],
                        ["boot", 3],
                        ["image", new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])],
                        ["seq", 7],
                        ["phase", "trial"],
                        ["queued", 2],
                        ["dropped", 1],
                    ])
                ),
                6
            ),
            { qos: 1 }
        )
        const answers = () => events.filter(e => e.event === "command" && (e.data as { status: string }).status === "answered")
        await until("the named answer", () => answers().length === 2)
        const answered = async () =>
            (await api.call<{ commands: { counter: number; status: string }[] }>("GET", `/api/devices/${d.id}`)).commands
                .filter(c => c.status === "answered")
                .map(c => c.counter)
        assert.deepEqual(
            (await answered()).sort((a, b) => a - b),
            [counters[0], named]
        )
        // the list shows what the report says, under the list's names
        type Summary = { id: string; firmware: string; sequence: number; update: string; queued: number; dropped: number }
        const shown = (await api.call<{ devices: Summary[] }>("GET", "/api/devices")).devices.find(x => x.id === d.id)!
        assert.deepEqual(
            [shown.firmware, shown.sequence, shown.update, shown.queued, shown.dropped],
            ["0102030405060708", 7, "trial", 2, 1]
        )
        await stop()
    })

    test("the owner names a release: the digest leaves as 32 bytes, and the device's sealed report is its latest step", async () => {
        const { d, api, events, stop } = await streamingDevice("update")
        const downs: Buffer[] = []
        await d.client.subscribeAsync(`things/${d.id}/down/cmd`, { qos: 1 })
        d.client.on("message", (_t, p) => downs.push(Buffer.from(p)))
        const digest = "5a".repeat(32)
        for (const [body, error] of [
            [{ cmd: "update", digest: "5a".repeat(31), sequence: 3 }, "update needs the image's digest, 64 hex digits"],
            [{ cmd: "update", digest: digest.toUpperCase(), sequence: 3 }, "update needs the image's digest, 64 hex digits"],
            [{ cmd: "update", digest, sequence: 0 }, "update needs the release's sequence, a whole number 1..4294967295"],
            [{ cmd: "update", digest, sequence: 2 ** 32 }, "update needs the release's sequence, a whole number 1..4294967295"],
            [{ cmd: "update", digest }, "update needs the release's sequence, a whole number 1..4294967295"],
        ] as const) {
            const res = await http("POST", `/api/devices/${d.id}/commands`, { token: o.token, json: body })
            assert.deepEqual([res.status, res.json().error], [400, error])
        }
        const sent = await api.call<{ counter: number }>("POST", `/api/devices/${d.id}/commands`, { cmd: "update", digest, sequence: 3 })
        await until("the command at the device", () => downs.length === 1)
        const { openEncrypt0 } = await import("../../devs/owner/encrypt0.ts")
        const opened = openEncrypt0(downs[0], channelKeys(d.root, d.id, "down"), Buffer.from(`things/${d.id}/down/cmd`))
        // as the firmware parses it (src/uplink/downlink.ts): a map of text keys, the digest a byte string
        const command = decode(opened.plaintext, { preferMap: true }) as Map<string, unknown>
        assert.deepEqual([...command.keys()].sort(), ["cmd", "digest", "sequence"])
        assert.equal(command.get("cmd"), "update")
        assert.ok(command.get("digest") instanceof Uint8Array)
        assert.equal(Buffer.from(command.get("digest") as Uint8Array).toString("hex"), digest)
        assert.equal(command.get("sequence"), 3)
        assert.ok(sent.counter >= 1)
        // the device reports its steps; the list shows the latest, and the stream tells each
        const report = (counter: number, step: string, reason?: string) =>
            d.seal(
                "update",
                encode(
                    new Map<string, unknown>([
                        ["digest", new Uint8Array(Buffer.from(digest, "hex"))],
                        ["sequence", 3],
                        ["step", step],
                        ...(reason ? [["reason", reason] as [string, unknown]] : []),
                    ])
                ),
                counter
            )
        await d.client.publishAsync(`things/${d.id}/up/update`, await report(1, "approved"), { qos: 1 })
        await d.client.publishAsync(`things/${d.id}/up/update`, await report(2, "refused", "signers: too few signatures"), { qos: 1 })
        await until("two update events", () => events.filter(e => e.event === "update").length === 2)
        type Summary = { id: string; lastUpdate: { digest: string; sequence: number; step: string; reason?: string } | null }
        const shown = (await api.call<{ devices: Summary[] }>("GET", "/api/devices")).devices.find(x => x.id === d.id)!
        assert.deepEqual(
            [shown.lastUpdate?.digest, shown.lastUpdate?.sequence, shown.lastUpdate?.step, shown.lastUpdate?.reason],
            [digest, 3, "refused", "signers: too few signatures"]
        )
        await stop()
    })

    test("failed logins are limited per source and logged, and the right password waits too", async () => {
        const statuses = []
        for (let i = 0; i < 7; i++) statuses.push((await http("POST", "/login", { form: { password: `guess-${i}` } })).status)
        assert.deepEqual(statuses, [303, 303, 303, 303, 303, 429, 429])
        assert.equal(o.log.filter(l => /console: failed login from/.test(l)).length, 5)
        const locked = await http("POST", "/login", { form: { password: o.password } })
        assert.equal(locked.status, 429)
        assert.ok(Number(locked.headers.get("retry-after")) > 0)
    })

    test("first run: the setup link is in a 0600 file beside the store, works once, before any password, and goes with it", async () => {
        const store = new OwnerStore(join(dir, "setup", "owner.db"))
        const auth = new ConsoleAuth(store)
        const app = buildOwnerHttp({ service: o.owner.service, auth, port: 0, log: () => {} })
        await app.listen({ host: "127.0.0.1", port: 0 })
        const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
        const linkFile = join(dir, "setup", SETUP_LINK_FILE)
        assert.equal(auth.offerSetupLink(linkFile, base), true)
        assert.equal(statSync(linkFile).mode & 0o777, 0o600)
        const link = new URL(readFileSync(linkFile, "utf8").trim())
        assert.equal(`${link.origin}${link.pathname}`, `${base}/setup`)
        const token = link.searchParams.get("token")!
        assert.equal((await fetch(`${base}/setup?token=wrong`)).status, 403)
        assert.equal((await fetch(`${base}/setup?token=${token}`)).status, 200)
        const form = (body: Record<string, string>) => ({
            method: "POST",
            headers: { "content-type": "application/x-www-form-urlencoded" },
            body: new URLSearchParams(body).toString(),
            redirect: "manual" as const,
        })
        assert.equal((await fetch(`${base}/setup`, form({ token, password: "short", confirm: "short" }))).status, 400)
        assert.equal((await fetch(`${base}/setup`, form({ token, password: "long enough pw", confirm: "long enough pw" }))).status, 303)
        assert.equal((await fetch(`${base}/setup`, form({ token, password: "another one!!", confirm: "another one!!" }))).status, 403)
        assert.equal((await fetch(`${base}/login`, form({ password: "long enough pw" }))).status, 303)
        assert.equal(existsSync(linkFile), false, "the setup link's file outlived the password")
        assert.equal(auth.newSetupToken(), undefined)
        writeFileSync(linkFile, "a stale link of an earlier run")
        assert.equal(auth.offerSetupLink(linkFile, base), false)
        assert.equal(existsSync(linkFile), false, "a stale setup link's file stays once a password is set")
        await app.close()
        store.close()
    })

    test("off loopback only with TLS; under TLS the cookie is Secure", async () => {
        const auth = new ConsoleAuth(o.owner.store)
        assert.throws(() => buildOwnerHttp({ service: o.owner.service, auth, host: "0.0.0.0", port: 0 }), /needs TLS/)
        const tls = { key: readFileSync(o.stack.pki.serverKey), cert: readFileSync(o.stack.pki.serverCert) }
        const app = buildOwnerHttp({ service: o.owner.service, auth, host: "127.0.0.1", port: 0, tls, log: () => {} })
        await app.listen({ host: "127.0.0.1", port: 0 })
        const res = await app.inject({
            method: "POST",
            url: "/login",
            payload: `password=${encodeURIComponent(o.password)}`,
            headers: { "content-type": "application/x-www-form-urlencoded" },
            remoteAddress: "127.0.0.2",
        })
        assert.equal(res.statusCode, 303)
        assert.match(String(res.headers["set-cookie"]), /; Secure/)
        await app.close()
    })

    test("no key, password, token or claim code in any log line, page or API answer of this run", async () => {
        const store = o.owner.store
        const secrets: string[] = [
            o.password,
            o.token,
            store.account()!.password.toString("hex"),
            store.account()!.password.toString("base64"),
            o.stack.broker.admin.password,
        ]
        for (const d of store.devices()) {
            secrets.push(d.root.toString("hex"), d.root.toString("base64"))
            for (const dir of ["up", "down"] as const) secrets.push(channelKeys(d.root, d.id, dir).key.toString("hex"))
        }
        for (const d of o.devices) secrets.push(d.claimCode, d.password.toString("hex"), d.password.toString("base64"))
        const everything = [...o.log, ...bodies].join("\n")
        assert.ok(bodies.length > 30)
        for (const secret of secrets) assert.equal(everything.includes(secret), false, "a secret in a log line or an answer")
        assert.equal(/[A-Z2-7]{4}(-[A-Z2-7]{4}){7}/.test(everything), false, "a claim code")
    })
})
