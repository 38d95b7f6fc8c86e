/**
 * Headless Chromium for the console's bench and browser test: the Debian
 * package's binary (`/usr/bin/chromium`; playwright's own browser download
 * cannot reach the internet here), driven by playwright-core, with a fresh
 * profile in a temporary folder and nothing that calls out (sync, updates,
 * background networking).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { chromium, type BrowserContext } from "playwright-core"

/** Where the system's Chromium is (Debian package `chromium`). */
export const CHROMIUM = "/usr/bin/chromium"

/** A browser with a fresh profile; `close` removes the profile. */
export interface Browser {
    context: BrowserContext
    close(): Promise<void>
}

/** Starts Chromium headless with a fresh profile; throws a one-line reason when it is not installed. */
export async function launchChromium(viewport = { width: 1280, height: 900 }): Promise<Browser> {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: sudo apt-get install -y chromium`)
    const profile = mkdtempSync(join(tmpdir(), "console-chromium-"))
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport,
        args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    })
    return {
        context,
        close: async () => {
            await context.close()
            rmSync(profile, { recursive: true, force: true })
        },
    }
}
