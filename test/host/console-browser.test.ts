/**
 * The owner console in a real browser (headless Chromium, the Debian
 * package, driven by playwright-core) against the real stack and the real
 * firmware in the DeviceScript simulator: on the first run the owner sets
 * the console password through the one-time link in a 0600 file beside the
 * store (never in the log), and the file goes; a page asked without a session
 * goes to the login; the owner logs in and claims the device with the id
 * and code it printed; the device page draws each quantity's readings, live,
 * and they are the simulated sensors' curve; an interval set from the
 * console comes back in the state report; the device, which runs the build
 * as it is rather than an image a signed release installed, is flagged on
 * its page and in the list; a forged command's refusal appears in the security events; a POST without its CSRF token is refused;
 * logging out ends the session; wrong passwords are limited. Screenshots of
 * each step are kept in var/test-artefacts/console-browser (printed at the end).
 */
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import type { Page } from "playwright-core"
import { commandTopic, encodeCommand } from "../../devs/owner/commands.ts"
import { SETUP_LINK_FILE } from "../../devs/owner/console-auth.ts"
import { sealEncrypt0 } from "../../devs/owner/encrypt0.ts"
import { runOwnerService, type RunningOwner } from "../../devs/owner/run.ts"
import { freePort } from "../../devs/net/ports.ts"
import { PROJECT_ROOT, REGISTRY_PORT } from "../../devs/project.ts"
import { deviceLine, runInSimulator } from "../../devs/sim/devs-cli.ts"
import { until } from "../../devs/sim/until.ts"
import { startLocalStack, type LocalStack } from "../../devs/stack/local.ts"
import { launchChromium, type Browser } from "../../devs/bench/chromium.ts"
import { curve } from "./support/simulated-curve.ts"

const dir = mkdtempSync(join(tmpdir(), "console-browser-test-"))
/** Screenshots: git-ignored, kept after the run. */
const shots = join(PROJECT_ROOT, "var", "test-artefacts", "console-browser")
mkdirSync(shots, { recursive: true })
const password = randomBytes(12).toString("base64url")
const log: string[] = []
/** What the device printed, without the simulator's prefix. */
const lines: string[] = []
const simulator = new AbortController()
let stack: LocalStack
let owner: RunningOwner
let browser: Browser
let page: Page
let token: string
/** The first run's one-time setup token, read from its file. */
let setupToken: string
/** Every page the browser showed, to look for secrets in. */
const seen: string[] = []

before(async () => {
    stack = await startLocalStack({ dir, brokerPort: await freePort(), updatesPort: await freePort(), onLog: (_s, l) => log.push(l) })
    owner = await runOwnerService({
        storePath: join(dir, "owner", "owner.db"),
        tokenPath: join(dir, "owner", "api-token"),
        name: "browser-owner",
        registryUrl: `https://localhost:${stack.registryPort}`,
        ca: readFileSync(stack.pki.caCert),
        brokerUrl: `mqtts://localhost:${stack.broker.port}`,
        port: 0,
        log: l => log.push(l),
    })
    token = readFileSync(join(dir, "owner", "api-token"), "utf8").trim()
    const ended = runInSimulator("src/main.ts", {
        timeoutMs: 900_000,
        env: { NODE_EXTRA_CA_CERTS: stack.pki.caCert },
        // the firmware expects the registry on the well-known port
        ports: { [REGISTRY_PORT]: stack.registryPort },
        signal: simulator.signal,
        onLine: line => {
            const text = deviceLine(line)
            if (text !== undefined) lines.push(text)
        },
    })
    void ended.then(r => log.push(`simulator ended (${r.code})`))
    browser = await launchChromium()
    page = await browser.context.newPage()
    page.on("pageerror", e => log.push(`browser: ${e.message}`))
})

after(async () => {
    simulator.abort()
    await browser?.close()
    await owner?.stop()
    await stack?.stop()
    rmSync(dir, { recursive: true, force: true })
    console.log(`console browser test: screenshots in ${shots}`)
})

/** The first capture of `re` in what the device printed. */
const printed = (re: RegExp) => lines.map(l => re.exec(l)?.[1]).find(v => v !== undefined)

async function shot(name: string) {
    seen.push(await page.content())
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true })
}

/** A call of the page's own `fetch`, as a script in the page (or one injected into it) would make it. */
function pageFetch(path: string, init: { method: string; headers?: Record<string, string>; body?: string }) {
    return page.evaluate(
        async ([path, init]) => {
            const res = await fetch(path, { ...init, redirect: "manual" })
            return res.status
        },
        [path, init] as const
    )
}

async function api<T>(path: string): Promise<T> {
    const res = await fetch(owner.url + path, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200, path)
    return (await res.json()) as T
}

describe("the owner console in Chromium, with the firmware in the simulator", () => {
    let id: string

    test("first run: the setup link is in a 0600 file, not the log; the password is set there once and the file goes", async () => {
        const linkFile = join(dir, "owner", SETUP_LINK_FILE)
        assert.equal(owner.setupLinkFile, linkFile)
        assert.equal(statSync(linkFile).mode & 0o777, 0o600)
        const link = readFileSync(linkFile, "utf8").trim()
        setupToken = new URL(link).searchParams.get("token")!
        assert.match(setupToken, /^[\w-]{32}$/)
        await page.goto(owner.url + "/login")
        await page.locator("[role=alert]", { hasText: SETUP_LINK_FILE }).waitFor()
        await page.goto(link)
        await page.fill('input[name="password"]', password)
        await page.fill('input[name="confirm"]', password)
        await page.click("button.primary")
        await page.waitForURL(owner.url + "/login")
        assert.equal(existsSync(linkFile), false, "the setup link's file outlived the password")
        assert.equal((await fetch(link)).status, 403, "the setup link works once")
        await shot("00-password-set")
    })

    test("a page asked without a session goes to the login page", async () => {
        for (const path of ["/", `/devices/${"0".repeat(32)}`]) {
            await page.goto(owner.url + path)
            assert.equal(new URL(page.url()).pathname, "/login", path)
        }
        assert.equal(await page.locator('input[name="password"]').count(), 1)
        await shot("01-login")
    })

    test("the owner logs in and claims the device with the id and code it printed", async () => {
        await page.fill('input[name="password"]', password)
        await page.click("button.primary")
        await page.waitForURL(owner.url + "/")
        await page.locator("[data-devices] .empty").waitFor()
        await until("the device to wait for its owner", () => lines.some(l => /waiting for the owner's claim/.test(l)), 180_000)
        id = printed(/^sentinel-node: boot \d+, device ([0-9a-f]{32})/)!
        const code = printed(/^claim code .*: ([A-Z2-7-]+)$/)!
        assert.match(id, /^[0-9a-f]{32}$/)
        await page.fill('input[name="id"]', id)
        await page.fill('input[name="code"]', code)
        await page.fill('form[data-claim] input[name="name"]', "greenhouse")
        await page.click("form[data-claim] button")
        await page.locator("[data-result][data-kind=ok]").waitFor()
        await page.locator(`a[data-device="${id}"]`, { hasText: "greenhouse" }).waitFor()
        assert.equal(await page.inputValue('input[name="code"]'), "", "the code is not kept in the page")
        await shot("02-claimed")
        assert.ok(!seen.join("\n").includes(code), "the claim code in a page")
    })

    test("the device page draws each quantity's readings live, and they follow the simulated sensors' curve", async () => {
        await page.click(`a[data-device="${id}"]`)
        await page.waitForURL(`${owner.url}/devices/${id}`)
        // a mark that a reload would wipe: the points must come through the event stream
        await page.evaluate(() => Object.assign(window, { loadedOnce: true }))
        const chart = page.locator('figure[data-quantity="shtc3/temperature"]')
        await chart.waitFor({ timeout: 180_000 })
        const pointsAtLeast = (n: number) =>
            page.waitForFunction(
                n => Number(document.querySelector<HTMLElement>('figure[data-quantity="shtc3/temperature"]')?.dataset.points) >= n,
                n,
                { timeout: 180_000 }
            )
        await pointsAtLeast(8)
        await pointsAtLeast(Number(await chart.getAttribute("data-points")) + 1)
        assert.equal(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce), true, "the page reloaded")

        const quantities = ["shtc3/temperature", "shtc3/humidity", "sht30/temperature", "bme680/pressure", "bme680/gas"]
        type Reading = { timeMs: number; value: number; counter: number }
        const stored = async (name: string) =>
            (await api<{ readings: Reading[] }>(`/api/devices/${id}/readings?name=${encodeURIComponent(name)}`)).readings
        for (const name of quantities) {
            const locator = page.locator(`figure[data-quantity="${name}"]`)
            await locator.waitFor()
            const earlier = await stored(name)
            const drawn = await locator.evaluate((f: HTMLElement & { uplot?: { data: number[][] } }) => {
                const [xs, ys] = f.uplot!.data
                return xs.map((x, i) => [Math.round(x * 1000), ys[i]])
            })
            const later = await stored(name)
            const key = (t: number, v: number) => `${t} ${v}`
            const drawnKeys = new Set(drawn.map(([t, v]) => key(t, v)))
            const laterKeys = new Set(later.map(r => key(r.timeMs, r.value)))
            assert.ok(drawn.length >= 3, `${name}: ${drawn.length} points drawn`)
            for (const r of earlier) assert.ok(drawnKeys.has(key(r.timeMs, r.value)), `${name}: stored reading ${r.value} not drawn`)
            for (const [t, v] of drawn)
                assert.ok(
                    laterKeys.has(key(t, v)),
                    `${name}: drawn ${v} at ${t} is not a stored reading: ${JSON.stringify({ drawn, later })}`
                )
            // in the device's order (message counter, then time within the message), the curve from the first read
            const inOrder = [...later].sort((a, b) => a.counter - b.counter || a.timeMs - b.timeMs)
            inOrder.forEach((r, n) => assert.equal(r.value, curve(name.split("/")[1], n), `${name} read ${n}`))
        }
        // and the canvas has the line's colour on it
        const inked = await chart.evaluate((f: HTMLElement) => {
            const canvas = f.querySelector("canvas")!
            const { data } = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height)
            let n = 0
            for (let i = 0; i < data.length; i += 4) if (data[i] === 0x2c && data[i + 1] === 0x6e && data[i + 2] === 0x9b) n++
            return n
        })
        assert.ok(inked > 50, `${inked} pixels of the line's colour`)
        await shot("03-device")
    })

    test("an interval set from the console comes back in the device's state report", async () => {
        await page.selectOption("form[data-command] select[name=sensor]", "shtc3")
        await page.fill("form[data-command] input[name=ms]", "7000")
        await page.click("form[data-command] button")
        await page.locator('[data-interval="shtc3"]', { hasText: "7000 ms" }).waitFor({ timeout: 120_000 })
        await page.locator("[data-result][data-kind=ok]", { hasText: "The device answered interval shtc3 7000 ms" }).waitFor()
        await page.locator('[data-command-status="answered"]').first().waitFor()
        assert.ok(lines.some(l => /interval shtc3 set to 7000 ms/.test(l)))
        await shot("04-interval")
    })

    test("the simulator runs the build as it is, not an image a release installed: the device says so, the console flags it", async () => {
        // what the device printed at boot: no manifest it trusts names its image, so its state names sequence 0
        assert.ok(
            lines.some(l => /^update: running [0-9a-f]{16}, sequence unknown/.test(l)),
            lines.filter(l => l.startsWith("update:")).join("\n")
        )
        const flag = page.locator("[data-unknown-image]", { hasText: "runs an image no release names" })
        await flag.waitFor({ timeout: 120_000 })
        const image = printed(/^update: running ([0-9a-f]{16}),/)!
        assert.match(await flag.innerText(), new RegExp(`image ${image.slice(0, 12)}`))
        await page.locator('[data-key="seq"]', { hasText: "0" }).waitFor()
        await shot("04b-unknown-image")
    })

    test("a forged command is refused by the device, and the refusal appears in the security events", async () => {
        const forger = { key: randomBytes(32), contextIv: randomBytes(13), kid: Buffer.from(id, "hex") }
        const topic = commandTopic(id)
        const forged = sealEncrypt0(encodeCommand({ cmd: "state" }), forger, 1_000_000, Buffer.from(topic))
        await owner.service.mqtt.publishAsync(topic, forged, { qos: 1 })
        await until("the device to refuse it", () => lines.some(l => /downlink-refused/.test(l)), 120_000)
        await page.click('button[data-command="events"]')
        const row = page.locator('[data-events] tr:has(code[data-kind="downlink-refused"])')
        await row.first().waitFor({ timeout: 120_000 })
        assert.match(await row.first().innerText(), /downlink-refused/)
        await page.locator("[data-result][data-kind=ok]", { hasText: "event log" }).waitFor()
        // the event the device logs at every boot of an image no release names is there too
        await page.locator('[data-events] code[data-kind="image-unknown"]').first().waitFor()
        await shot("05-forged-refused")
        // the one the README shows: the charts, the state report and the commands
        await page.click('button[data-range="600000"]')
        await page.waitForTimeout(500)
        await page.evaluate(() => window.scrollTo(0, 0))
        await page.screenshot({ path: join(shots, "device-page.png"), fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 1380 } })
    })

    test("the device list flags the device that runs an image no release names", async () => {
        await page.goto(owner.url + "/")
        await page.locator(`[data-devices] [data-unknown-image="${id}"]`, { hasText: "runs an image no release names" }).waitFor()
        const { devices } = await api<{ devices: { id: string; sequence: number; unknownImage: { image: string } | null }[] }>(
            "/api/devices"
        )
        const listed = devices.find(d => d.id === id)!
        assert.equal(listed.sequence, 0)
        assert.match(listed.unknownImage?.image ?? "", /^[0-9a-f]{16}$/)
        await shot("05b-list-unknown-image")
        await page.goto(`${owner.url}/devices/${id}`)
    })

    test("a POST without its CSRF token is refused, with the session cookie the browser sends", async () => {
        const json = { "content-type": "application/json" }
        const body = JSON.stringify({ cmd: "state" })
        assert.equal(await pageFetch(`/api/devices/${id}/commands`, { method: "POST", headers: json, body }), 403)
        assert.equal(
            await pageFetch(`/api/devices/${id}/commands`, { method: "POST", headers: { ...json, "x-csrf-token": "x".repeat(32) }, body }),
            403
        )
        assert.equal(await pageFetch(`/api/devices/${id}`, { method: "DELETE" }), 403)
        assert.equal(await pageFetch("/logout", { method: "POST" }), 403)
        assert.ok(log.some(l => /without its CSRF token refused/.test(l)))
        // the device is still there
        assert.equal((await api<{ devices: unknown[] }>("/api/devices")).devices.length, 1)
    })

    test("logging out ends the session", async () => {
        await page.click("header form button")
        await page.waitForURL(owner.url + "/login")
        await page.goto(owner.url + "/")
        assert.equal(new URL(page.url()).pathname, "/login")
        assert.equal(await pageFetch("/api/devices", { method: "GET" }), 401)
        await shot("06-logged-out")
    })

    test("wrong passwords are limited and logged; then even the right one waits", async () => {
        // each attempt waits for its own answer: the alert of the one before is still on the page
        const attempt = async (text: string) => {
            await page.fill('input[name="password"]', text)
            const answer = page.waitForResponse(r => r.url().endsWith("/login") && r.request().method() === "POST")
            await page.click("button.primary")
            const status = (await answer).status()
            await page.waitForLoadState()
            return status
        }
        for (let i = 0; i < 5; i++) {
            assert.equal(await attempt(`not the password ${i}`), 303)
            await page.locator("[role=alert]", { hasText: "Wrong password" }).waitFor()
        }
        assert.equal(await attempt("not the password either"), 429)
        await page.locator("[role=alert]", { hasText: "Too many failed logins" }).waitFor()
        await page.fill('input[name="password"]', password)
        await page.click("button.primary")
        await page.locator("[role=alert]", { hasText: "Too many failed logins" }).waitFor()
        assert.equal(new URL(page.url()).pathname, "/login")
        assert.equal(log.filter(l => /console: failed login from/.test(l)).length, 5)
        await shot("07-limited")
    })

    test("no password, token, key or claim code in any page the browser showed or any log line", () => {
        const secrets = [password, token, owner.store.account()!.password.toString("hex"), stack.broker.admin.password]
        for (const d of owner.store.devices()) secrets.push(d.root.toString("hex"), d.root.toString("base64"))
        const code = printed(/^claim code .*: ([A-Z2-7-]+)$/)
        if (code) secrets.push(code)
        const everything = [...seen, ...log].join("\n")
        assert.ok(seen.length >= 5, `${seen.length} pages looked at`)
        for (const s of secrets) assert.equal(everything.includes(s), false, "a secret in a page or a log line")
        // the setup page carries its own token in its form, so that one is looked for in the log only
        assert.equal(log.join("\n").includes(setupToken), false, "the setup token in a log line")
        assert.deepEqual(
            log.filter(l => /^browser: /.test(l)),
            [],
            "errors in the page"
        )
    })
})
