/**
 * Benchmark of the owner console: how long a device page holding 10,000
 * readings (10 quantities × 1,000 over the last hour) takes to paint in
 * headless Chromium, against the same page of a device with none, in the
 * same run. Two moments per page load: the first contentful paint (the
 * shell) and the moment every chart has drawn all its points. Median of 5
 * loads each; context only, nothing is asserted.
 */
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Page } from "playwright-core"
import { ConsoleAuth } from "../owner/console-auth.ts"
import { buildOwnerHttp, listenOwnerHttp } from "../owner/http.ts"
import { OwnerService } from "../owner/service.ts"
import { OwnerStore } from "../owner/store.ts"
import type { Verified } from "../owner/verifier.ts"
import { launchChromium } from "./chromium.ts"

const QUANTITIES = ["temperature", "humidity"].flatMap(q => ["shtc3", "sht30", "aht20", "bme680", "si7021"].map(s => `${s}/${q}`))
const READINGS_PER_MESSAGE = 10

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** A device with `count` readings spread over the last 50 minutes, stored as the ingest worker stores them. */
function seedDevice(store: OwnerStore, name: string, count: number): string {
    const id = randomBytes(16).toString("hex")
    store.addDevice({ id, name, root: randomBytes(32), claimedAt: Date.now() })
    const now = Date.now()
    const verified: { message: Verified; receivedAt: number }[] = []
    for (let c = 0; c * READINGS_PER_MESSAGE < count; c++) {
        const readings = Array.from({ length: Math.min(READINGS_PER_MESSAGE, count - c * READINGS_PER_MESSAGE) }, (_, k) => {
            const i = c * READINGS_PER_MESSAGE + k
            return { name: QUANTITIES[i % QUANTITIES.length], unit: "Cel", value: 20 + ((i >> 4) % 24) / 4, time: -(count - i) * 0.3 }
        })
        verified.push({ message: { kind: "readings", deviceId: id, counter: c, readings } as Verified, receivedAt: now })
    }
    store.commitIngest({ verified, rejections: [], windows: new Map() })
    return id
}

/**
 * Loads `url`; returns when the first contentful paint came and when the page was loaded with its charts
 * holding `points`, in ms from navigation. (No named functions in the page's code: tsx would wrap them.)
 */
async function load(page: Page, url: string, points: number): Promise<{ paint: number; drawn: number }> {
    await page.goto(url, { waitUntil: "commit" })
    const drawn = await page.waitForFunction(
        expected =>
            document.readyState === "complete" &&
            [...document.querySelectorAll<HTMLElement>("figure[data-points]")].reduce((n, f) => n + Number(f.dataset.points), 0) >=
                expected &&
            performance.getEntriesByName("first-contentful-paint").length > 0 &&
            performance.now(),
        points,
        { polling: "raf", timeout: 60_000 }
    )
    const paint = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0].startTime)
    return { paint, drawn: (await drawn.jsonValue()) as number }
}

/** Time to first paint and to every point drawn of a device page holding `count` readings, against an empty one. */
export async function consoleFirstPaint(count = 10_000, rounds = 5) {
    const dir = mkdtempSync(join(tmpdir(), "bench-console-"))
    const store = new OwnerStore(join(dir, "owner.db"))
    // stored before the service starts, which follows the devices it finds
    const full = seedDevice(store, "full", count)
    const empty = seedDevice(store, "empty", 0)
    const service = new OwnerService({
        store,
        // no registry and no broker: the page reads only the store
        registry: () => Promise.reject(new Error("no registry in this bench")),
        registryUrl: "https://localhost",
        brokerCa: Buffer.alloc(0),
        log: () => {},
    })
    const auth = new ConsoleAuth(store)
    const password = randomBytes(12).toString("base64url")
    auth.setPassword(password)
    const app = buildOwnerHttp({ service, auth, port: 0, log: () => {} })
    const url = await listenOwnerHttp(app, { port: 0 })
    const browser = await launchChromium()
    try {
        const page = await browser.context.newPage()
        await page.goto(`${url}/login`)
        await page.fill('input[name="password"]', password)
        await Promise.all([page.waitForURL(`${url}/`), page.click("button.primary")])
        const measure = async (id: string, points: number) => {
            await load(page, `${url}/devices/${id}`, points) // warm: the modules and uPlot cached
            const runs = []
            for (let i = 0; i < rounds; i++) runs.push(await load(page, `${url}/devices/${id}`, points))
            return { paint: median(runs.map(r => r.paint)), drawn: median(runs.map(r => r.drawn)) }
        }
        const withReadings = await measure(full, count)
        const without = await measure(empty, 0)
        console.log(
            `console: device page with ${count.toLocaleString("en")} readings (${QUANTITIES.length} charts): ` +
                `first paint ${withReadings.paint.toFixed(0)} ms, every point drawn ${withReadings.drawn.toFixed(0)} ms ` +
                `(median of ${rounds}); without readings ${without.paint.toFixed(0)} ms and ${without.drawn.toFixed(0)} ms; ` +
                `drawn ${(withReadings.drawn / without.drawn).toFixed(1)}x the empty page`
        )
    } finally {
        await browser.close()
        await app.close()
        await service.stop()
        store.close()
        rmSync(dir, { recursive: true, force: true })
    }
}
