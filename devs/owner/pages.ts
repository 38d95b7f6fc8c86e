/**
 * The owner console's pages: small server-rendered shells (./console/*.js
 * draws the rest in the browser) and the files they load.
 *
 * A shell carries what its page shows first as JSON in a
 * `<script type="application/json">` block, so the first paint needs no
 * second request; the page's module reads it and builds every element
 * with `textContent`, never markup from data. Inside that block `<`, `>`, `&`
 * and the two JavaScript line separators are written as `\u` escapes, so
 * nothing a device or a person named can close the block. The Content
 * Security Policy allows scripts and styles from 'self' only: the modules,
 * the stylesheet and uPlot (from node_modules, never a CDN) are served
 * from /static by the table below.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { MIN_PASSWORD_LENGTH } from "./console-auth.ts"
import type { RolloutRecord } from "./rollout/engine.ts"
import type { rolloutView } from "./rollout/request.ts"
import type { OwnerService } from "./service.ts"

type DeviceSummary = ReturnType<OwnerService["deviceList"]>[number]
type DeviceDetail = NonNullable<ReturnType<OwnerService["deviceDetail"]>>
type RolloutView = ReturnType<typeof rolloutView>

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(v: unknown): string {
    return String(v ?? "").replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

/** JSON that can stand inside a `<script type="application/json">` block whatever its strings hold. */
export function jsonForScript(value: unknown): string {
    return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
}

const consoleFile = (name: string) => fileURLToPath(new URL(`./console/${name}`, import.meta.url))
const uplotFile = (name: string) => createRequire(import.meta.url).resolve(`uplot/dist/${name}`)

/** The files under /static: name → where it is and its type. Nothing else is served from disk. */
const ASSET_FILES: Record<string, { path: string; type: string }> = {
    "console.css": { path: consoleFile("console.css"), type: "text/css" },
    "favicon.svg": { path: consoleFile("favicon.svg"), type: "image/svg+xml" },
    "dom.js": { path: consoleFile("dom.js"), type: "text/javascript" },
    "devices.js": { path: consoleFile("devices.js"), type: "text/javascript" },
    "device.js": { path: consoleFile("device.js"), type: "text/javascript" },
    "rollouts.js": { path: consoleFile("rollouts.js"), type: "text/javascript" },
    "rollout.js": { path: consoleFile("rollout.js"), type: "text/javascript" },
    "charts.js": { path: consoleFile("charts.js"), type: "text/javascript" },
    "uPlot.esm.js": { path: uplotFile("uPlot.esm.js"), type: "text/javascript" },
    "uPlot.min.css": { path: uplotFile("uPlot.min.css"), type: "text/css" },
}

/** A file the console loads, read once. */
export interface Asset {
    body: Buffer
    type: string
}

const assets = new Map<string, Asset>()

/** The asset called `name` (read on first use), or undefined when there is no such asset. */
export function consoleAsset(name: string): Asset | undefined {
    const file = Object.hasOwn(ASSET_FILES, name) ? ASSET_FILES[name] : undefined
    if (!file) return undefined
    let asset = assets.get(name)
    if (!asset) assets.set(name, (asset = { body: readFileSync(file.path), type: `${file.type}; charset=utf-8` }))
    return asset
}

/** What a page's shell holds besides its body. */
interface Shell {
    title: string
    /** The signed-in session's CSRF token: a page behind the login. */
    csrf?: string
    owner?: string
    /** The page's module under /static, and what it shows first. */
    script?: string
    data?: unknown
    styles?: string[]
}

function layout(shell: Shell, body: string): string {
    const styles = ["console.css", ...(shell.styles ?? [])].map(s => `<link rel="stylesheet" href="/static/${s}">`).join("\n")
    const signedIn = shell.csrf
        ? `<nav><a href="/">Devices</a> <a href="/rollouts">Rollouts</a></nav>
<span class="who">${escapeHtml(shell.owner ?? "")}</span><span class="live" data-live hidden></span>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="${escapeHtml(shell.csrf)}">
<button class="quiet">Log out</button></form>`
        : ""
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${shell.csrf ? `<meta name="csrf-token" content="${escapeHtml(shell.csrf)}">` : ""}
<title>${escapeHtml(shell.title)} · sentinel-node</title><link rel="icon" href="/static/favicon.svg">
${styles}
${shell.script ? `<script type="module" src="/static/${shell.script}"></script>` : ""}
</head>
<body><header class="bar"><a class="brand" href="/">sentinel-node</a>${signedIn}</header>
<main>${body}</main>
${shell.data === undefined ? "" : `<script type="application/json" id="page-data">${jsonForScript(shell.data)}</script>`}
</body></html>`
}

const alert = (message?: string) => (message ? `<p class="notice error" role="alert">${escapeHtml(message)}</p>` : "")

/** The login page; `message` says what went wrong and what to do. */
export function loginPage(message?: string): string {
    return layout(
        { title: "Log in" },
        `<section class="card narrow"><h1>Log in</h1>
<p class="hint">The console password of this owner service.</p>${alert(message)}
<form method="post" action="/login">
<label>Password <input type="password" name="password" autocomplete="current-password" required autofocus></label>
<button class="primary">Log in</button></form></section>`
    )
}

/** The first-run page that sets the console password (with the one-time token of the link the service printed). */
export function setupPage(token: string | undefined, message?: string): string {
    const minLength = MIN_PASSWORD_LENGTH
    const form = token
        ? `<form method="post" action="/setup"><input type="hidden" name="token" value="${escapeHtml(token)}">
<label>New password <input type="password" name="password" autocomplete="new-password" minlength="${minLength}" required autofocus></label>
<label>The same again <input type="password" name="confirm" autocomplete="new-password" minlength="${minLength}" required></label>
<button class="primary">Set the password</button></form>`
        : ""
    return layout(
        { title: "Set the console password" },
        `<section class="card narrow"><h1>Set the console password</h1>
<p class="hint">Once, on the first run: at least ${minLength} characters.
It is kept as an scrypt hash; the link stops working once it is set.</p>
${alert(message)}${form}</section>`
    )
}

const factoryResetButton = '<button class="danger" data-factory-reset>Factory-reset the simulated device…</button>'

/** The device list, with the claim form. */
export function listPage(owner: string, devices: DeviceSummary[], csrf: string): string {
    return layout(
        { title: "Devices", csrf, owner, script: "devices.js", data: { owner, devices } },
        `<h1>Devices</h1>
<section class="card"><div data-devices></div></section>
<section class="card"><h2>Claim a device</h2>
<p class="hint">The device prints its id and its claim code once, on its first boot. The code works once and is never stored.</p>
<form data-claim class="row">
<label>Device id
<input name="id" pattern="[0-9a-f]{32}" title="32 lower-case hex digits" autocomplete="off" spellcheck="false" required></label>
<label>Claim code <input name="code" autocomplete="off" spellcheck="false" placeholder="XXXX-XXXX-…" required></label>
<label>Name <input name="name" maxlength="64" placeholder="optional"></label>
<button class="primary">Claim</button></form><p class="result" data-result role="status"></p></section>`
    )
}

/** A device's page: charts, state, commands, events, management. `simulated`: it is the simulator `npm start` runs. */
export function devicePage(d: DeviceDetail, csrf: string, owner = "", simulated = false): string {
    const name = escapeHtml(d.name)
    return layout(
        { title: d.name, csrf, owner, script: "device.js", data: { device: d, simulated }, styles: ["uPlot.min.css"] },
        `<div class="title"><h1 data-name>${name}</h1><span data-status></span></div>
<p class="sub"><code data-id>${escapeHtml(d.id)}</code> <span data-seen></span></p>
<p data-unknown-image hidden></p>
<section class="card"><div class="section-head"><h2>Readings</h2>
<div class="segmented" role="group" aria-label="Time range"><button data-range="600000" aria-pressed="false">Last 10 min</button>
<button data-range="3600000" aria-pressed="true">Last hour</button>
<button data-range="86400000" aria-pressed="false">Last day</button></div></div>
<div class="charts" data-charts><p class="empty">No readings yet.</p></div></section>
<div class="columns">
<section class="card"><h2>Latest state report</h2><div data-state></div>
<h3>Latest update step</h3><div data-update-step></div></section>
<section class="card"><h2>Commands</h2>
<form data-command="interval" class="row">
<label>Sensor <select name="sensor" required></select></label>
<label>Interval (ms) <input name="ms" type="number" min="100" max="86400000" step="100" required></label>
<button>Set interval</button></form>
<div class="row buttons"><button data-command="state">Ask for the state</button><button data-command="events">Ask for the event log</button>
<button data-command="update-check">Try the named release again</button></div>
<form data-update class="row">
<label>Image SHA-256
<input name="digest" required pattern="[0-9a-fA-F]{64}" size="20" placeholder="64 hex digits" autocomplete="off"></label>
<label>Sequence <input name="sequence" type="number" min="1" max="4294967295" step="1" required></label>
<button>Install this release</button></form>
<p class="result" data-result role="status"></p>
<div data-commands></div></section>
</div>
<section class="card"><div class="section-head"><h2>Security events</h2><span data-new-events></span></div>
<p class="hint">What the device recorded in its event log (boot number, time since that boot), as it last sent it.</p>
<div data-events></div></section>
<section class="card"><h2>Rejected messages</h2><p class="hint">Messages on this device's topics that the service refused, and why.</p>
<div data-rejections></div></section>
<section class="card"><h2>Manage</h2>
<form data-rename class="row"><label>Name <input name="name" maxlength="64" required></label><button>Rename</button></form>
<div class="row"><button class="danger" data-remove>Remove…</button>${simulated ? factoryResetButton : ""}</div>
<div class="confirm" data-confirm hidden></div>
<p class="result" data-manage-result role="status"></p></section>`
    )
}

/** The rollouts, newest first, with the form that starts one. */
export function rolloutsPage(owner: string, rollouts: RolloutRecord[], csrf: string): string {
    return layout(
        { title: "Rollouts", csrf, owner, script: "rollouts.js", data: { rollouts } },
        `<h1>Rollouts</h1>
<section class="card"><div data-rollouts></div></section>
<section class="card"><h2>Start a rollout</h2>
<p class="hint">A published release (its image's SHA-256 and its sequence, as npm run publish-firmware prints them) goes out in stages.
Only each device's own sealed report counts as confirmed; the rollout halts by itself when a stage's failures pass its threshold.</p>
<form data-create class="row">
<label>Image SHA-256 <input name="digest" pattern="[0-9a-f]{64}" title="64 lower-case hex digits"
  autocomplete="off" spellcheck="false" required></label>
<label>Sequence <input name="sequence" type="number" min="1" step="1" required></label>
<label>Devices <input name="cohort" placeholder="all, tag:attic, or ids separated by commas" value="all" required></label>
<label>Stages <input name="stages" value="1,10%,50%,100%" title="cumulative: a count of devices or a percentage of them" required></label>
<button class="primary">Start</button></form><p class="result" data-result role="status"></p></section>`
    )
}

/** One rollout: a progress bar per stage, each device's step, and the owner's actions. */
export function rolloutPage(r: RolloutView, csrf: string, owner = ""): string {
    return layout(
        { title: `Rollout ${r.id}`, csrf, owner, script: "rollout.js", data: { rollout: r } },
        `<div class="title"><h1>Rollout ${escapeHtml(r.id)}</h1><span data-status></span></div>
<p class="sub" data-release></p>
<section class="card"><h2>Stages</h2><div data-stages></div>
<div class="row buttons"><button data-action="pause">Pause</button><button data-action="resume">Resume</button>
<button data-action="retry-failed">Retry the failed devices</button><button class="danger" data-action="abort">Abort</button></div>
<p class="result" data-result role="status"></p></section>
<section class="card"><h2>Devices</h2>
<p class="hint">Each device's step and since when; confirmed means the device's own sealed report said so.</p>
<div data-devices></div></section>`
    )
}

/** The page of a device that is not (or no longer) the owner's. */
export function notFoundPage(csrf: string, owner = ""): string {
    return layout(
        { title: "No such device", csrf, owner },
        `<section class="card narrow"><h1>No such device</h1>
<p>This owner service does not follow that device (it was removed, or the link is wrong).</p>
<p><a href="/">Back to the devices</a></p></section>`
    )
}
