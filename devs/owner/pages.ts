/**
 * Minimal pages of the owner service, one per route, server-rendered from
 * the same data as the JSON API, so the service is usable from a browser
 * before the console proper exists. Every value is escaped; the one script
 * (served from /static, as the Content-Security-Policy allows only 'self')
 * sends the forms as JSON with the CSRF token and reloads on live events.
 */
import type { OwnerService } from "./service.ts"

type DeviceSummary = ReturnType<OwnerService["deviceList"]>[number]
type DeviceDetail = NonNullable<ReturnType<OwnerService["deviceDetail"]>>

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(v: unknown): string {
    return String(v ?? "").replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

const time = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z" : "never")

function layout(title: string, body: string, csrf?: string): string {
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${csrf ? `<meta name="csrf-token" content="${escapeHtml(csrf)}">` : ""}<title>${escapeHtml(title)} · sentinel-node</title>
<script type="module" src="/static/console.js"></script></head>
<body><header><strong>sentinel-node</strong> owner console
${csrf ? `<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}"><button>Log out</button></form>` : ""}
</header><main>${body}</main></body></html>`
}

export function loginPage(error?: string): string {
    return layout(
        "Log in",
        `<h1>Log in</h1>${error ? `<p role="alert">${escapeHtml(error)}</p>` : ""}
<form method="post" action="/login"><label>Password <input type="password" name="password" autocomplete="current-password" required autofocus></label>
<button>Log in</button></form>`
    )
}

export function setupPage(token: string | undefined, message?: string): string {
    const form = token
        ? `<form method="post" action="/setup"><input type="hidden" name="token" value="${escapeHtml(token)}">
<label>New password <input type="password" name="password" autocomplete="new-password" required></label>
<label>Again <input type="password" name="confirm" autocomplete="new-password" required></label><button>Set the password</button></form>`
        : ""
    return layout("Set the console password", `<h1>Set the console password</h1>${message ? `<p role="alert">${escapeHtml(message)}</p>` : ""}${form}`)
}

export function listPage(owner: string, devices: DeviceSummary[], csrf: string): string {
    const rows = devices
        .map(
            d => `<tr data-device="${escapeHtml(d.id)}"><td><a href="/devices/${escapeHtml(d.id)}">${escapeHtml(d.name)}</a></td>
<td><code>${escapeHtml(d.id)}</code></td><td>${d.online ? "online" : "offline"}</td><td>${time(d.lastSeen)}</td>
<td>${escapeHtml(d.firmware ?? "")} ${escapeHtml(d.sequence ?? "")}</td><td>${escapeHtml(d.update ?? "")}</td>
<td>${escapeHtml(d.queued ?? "")}</td><td>${escapeHtml(d.dropped ?? "")}</td><td>${d.eventsSinceVisit}</td><td>${d.rejected}</td></tr>`
        )
        .join("\n")
    return layout(
        "Devices",
        `<h1>Devices of ${escapeHtml(owner)}</h1>
<table><thead><tr><th>name</th><th>id</th><th>status</th><th>last seen</th><th>firmware</th><th>update</th><th>queued</th><th>dropped</th>
<th>new events</th><th>rejected</th></tr></thead><tbody>${rows}</tbody></table>
<h2>Claim a device</h2>
<form data-api="POST /api/devices/claim"><label>Device id <input name="id" pattern="[0-9a-f]{32}" required></label>
<label>Claim code <input name="code" autocomplete="off" required></label><label>Name <input name="name"></label><button>Claim</button></form>
<p data-result></p>`,
        csrf
    )
}

export function devicePage(d: DeviceDetail, csrf: string): string {
    const id = escapeHtml(d.id)
    const state = d.state ? `<pre>${escapeHtml(JSON.stringify(d.state.state, null, 2))}</pre><p>received ${time(d.state.receivedAt)}</p>` : "<p>none yet</p>"
    const events = d.events
        .map(e => `<tr><td>${e.boot}</td><td>${e.seq}</td><td>${e.uptimeMs}</td><td>${escapeHtml(e.kind)}</td><td>${escapeHtml(e.detail)}</td></tr>`)
        .join("")
    const commands = d.commands
        .map(
            c => `<tr><td>${time(c.sentAt)}</td><td>${c.counter}</td><td>${escapeHtml(JSON.stringify(c.command))}</td><td>${escapeHtml(c.status)}</td>
<td>${c.reply ? escapeHtml(JSON.stringify(c.reply)) : ""}</td></tr>`
        )
        .join("")
    const rejections = d.rejections.map(r => `<tr><td>${time(r.at)}</td><td>${escapeHtml(r.reason)}</td><td>${escapeHtml(r.detail)}</td></tr>`).join("")
    const quantities = d.quantities
        .map(q => `<li><a href="/api/devices/${id}/readings?name=${encodeURIComponent(q.name)}">${escapeHtml(q.name)}</a> ${escapeHtml(q.unit ?? "")}</li>`)
        .join("")
    return layout(
        d.name,
        `<h1>${escapeHtml(d.name)}</h1><p><code>${id}</code> · ${d.online ? "online" : "offline"} · last seen ${time(d.lastSeen)}</p>
<section><h2>Readings</h2><ul>${quantities}</ul></section>
<section><h2>Latest state</h2>${state}</section>
<section><h2>Commands</h2>
<form data-api="POST /api/devices/${id}/commands" data-fixed='{"cmd":"interval"}'><label>Sensor <input name="sensor" required></label>
<label>Interval (ms) <input name="ms" type="number" min="100" required></label><button>Set interval</button></form>
<form data-api="POST /api/devices/${id}/commands" data-fixed='{"cmd":"state"}'><button>Ask for the state</button></form>
<form data-api="POST /api/devices/${id}/commands" data-fixed='{"cmd":"events"}'><button>Ask for the event log</button></form>
<form data-api="POST /api/devices/${id}/commands" data-fixed='{"cmd":"update-check"}'><button>Check for an update</button></form>
<p data-result></p>
<table><thead><tr><th>sent</th><th>counter</th><th>command</th><th>status</th><th>reply</th></tr></thead><tbody>${commands}</tbody></table></section>
<section><h2>Security events</h2><table><thead><tr><th>boot</th><th>seq</th><th>uptime ms</th><th>kind</th><th>detail</th></tr></thead>
<tbody>${events}</tbody></table></section>
<section><h2>Rejected messages</h2><table><thead><tr><th>at</th><th>reason</th><th>detail</th></tr></thead><tbody>${rejections}</tbody></table></section>
<section><h2>Manage</h2><form data-api="PATCH /api/devices/${id}"><label>Name <input name="name" required></label><button>Rename</button></form>
<form data-api="DELETE /api/devices/${id}" data-confirm="Forget this device and its keys?"><button>Remove</button></form></section>`,
        csrf
    )
}

/** The pages' one script: forms as JSON requests with the CSRF token; a reload when the service reports a change. */
export const CONSOLE_SCRIPT = `
const csrf = document.querySelector('meta[name="csrf-token"]')?.content
for (const form of document.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", async ev => {
        ev.preventDefault()
        if (form.dataset.confirm && !confirm(form.dataset.confirm)) return
        const [method, url] = form.dataset.api.split(" ")
        const body = { ...JSON.parse(form.dataset.fixed ?? "{}") }
        for (const [k, v] of new FormData(form)) if (v !== "") body[k] = form.elements[k].type === "number" ? Number(v) : v
        const res = await fetch(url, { method, headers: { "content-type": "application/json", "x-csrf-token": csrf }, body: JSON.stringify(body) })
        const answer = await res.json().catch(() => ({}))
        const out = form.parentElement.querySelector("[data-result]")
        if (out) out.textContent = res.ok ? "done" : answer.error ?? res.statusText
        if (res.ok && method === "DELETE") location.href = "/"
        else if (res.ok) setTimeout(() => location.reload(), 300)
    })
}
if (csrf) {
    const stream = new EventSource("/api/stream")
    let pending
    const refresh = () => { clearTimeout(pending); pending = setTimeout(() => { if (!document.activeElement?.form) location.reload() }, 2000) }
    for (const kind of ["state", "event", "command", "device"]) stream.addEventListener(kind, refresh)
}
`
