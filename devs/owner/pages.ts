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

const logoutForm = (csrf: string) => `<form method="post" action="/logout" class="logout">
<input type="hidden" name="csrf" value="${escapeHtml(csrf)}"><button>Log out</button></form>`

function layout(title: string, body: string, csrf?: string): string {
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${csrf ? `<meta name="csrf-token" content="${escapeHtml(csrf)}">` : ""}<title>${escapeHtml(title)} · sentinel-node</title>
<script type="module" src="/static/console.js"></script></head>
<body><header><strong>sentinel-node</strong> owner console
${csrf ? logoutForm(csrf) : ""}
</header><main>${body}</main></body></html>`
}

export function loginPage(error?: string): string {
    return layout(
        "Log in",
        `<h1>Log in</h1>${error ? `<p role="alert">${escapeHtml(error)}</p>` : ""}
<form method="post" action="/login">
<label>Password <input type="password" name="password" autocomplete="current-password" required autofocus></label>
<button>Log in</button></form>`
    )
}

export function setupPage(token: string | undefined, message?: string): string {
    const form = token
        ? `<form method="post" action="/setup"><input type="hidden" name="token" value="${escapeHtml(token)}">
<label>New password <input type="password" name="password" autocomplete="new-password" required></label>
<label>Again <input type="password" name="confirm" autocomplete="new-password" required></label><button>Set the password</button></form>`
        : ""
    return layout(
        "Set the console password",
        `<h1>Set the console password</h1>${message ? `<p role="alert">${escapeHtml(message)}</p>` : ""}${form}`
    )
}

/** A table row of cells already escaped. */
const row = (cells: (string | number)[], attributes = "") => `<tr${attributes}>${cells.map(c => `<td>${c}</td>`).join("")}</tr>`
/** A table with its header names and rows. */
const table = (headers: string[], rows: string[]) =>
    `<table><thead><tr>${headers.map(h => `<th>${h}</th>`).join("")}</tr></thead>\n<tbody>${rows.join("\n")}</tbody></table>`
/** A form the script sends as JSON to the API (`data-api="METHOD path"`), with fixed fields and inputs. */
const apiForm = (api: string, inner: string, fixed?: Record<string, string>) =>
    `<form data-api="${escapeHtml(api)}"${fixed ? ` data-fixed='${escapeHtml(JSON.stringify(fixed))}'` : ""}>${inner}</form>`

export function listPage(owner: string, devices: DeviceSummary[], csrf: string): string {
    const rows = devices.map(d =>
        row(
            [
                `<a href="/devices/${escapeHtml(d.id)}">${escapeHtml(d.name)}</a>`,
                `<code>${escapeHtml(d.id)}</code>`,
                d.online ? "online" : "offline",
                time(d.lastSeen),
                `${escapeHtml(d.firmware ?? "")} ${escapeHtml(d.sequence ?? "")}`,
                escapeHtml(d.update ?? ""),
                escapeHtml(d.queued ?? ""),
                escapeHtml(d.dropped ?? ""),
                d.eventsSinceVisit,
                d.rejected,
            ],
            ` data-device="${escapeHtml(d.id)}"`
        )
    )
    const headers = ["name", "id", "status", "last seen", "firmware", "update", "queued", "dropped", "new events", "rejected"]
    const claim = apiForm(
        "POST /api/devices/claim",
        `<label>Device id <input name="id" pattern="[0-9a-f]{32}" required></label>
<label>Claim code <input name="code" autocomplete="off" required></label>
<label>Name <input name="name"></label><button>Claim</button>`
    )
    return layout(
        "Devices",
        `<h1>Devices of ${escapeHtml(owner)}</h1>\n${table(headers, rows)}\n<h2>Claim a device</h2>\n${claim}\n<p data-result></p>`,
        csrf
    )
}

export function devicePage(d: DeviceDetail, csrf: string): string {
    const id = escapeHtml(d.id)
    const state = d.state
        ? `<pre>${escapeHtml(JSON.stringify(d.state.state, null, 2))}</pre><p>received ${time(d.state.receivedAt)}</p>`
        : "<p>none yet</p>"
    const events = d.events.map(e => row([e.boot, e.seq, e.uptimeMs, escapeHtml(e.kind), escapeHtml(e.detail)]))
    const commands = d.commands.map(c =>
        row([
            time(c.sentAt),
            c.counter,
            escapeHtml(JSON.stringify(c.command)),
            escapeHtml(c.status),
            c.reply ? escapeHtml(JSON.stringify(c.reply)) : "",
        ])
    )
    const rejections = d.rejections.map(r => row([time(r.at), escapeHtml(r.reason), escapeHtml(r.detail)]))
    const quantities = d.quantities.map(q => {
        const href = `/api/devices/${id}/readings?name=${encodeURIComponent(q.name)}`
        return `<li><a href="${escapeHtml(href)}">${escapeHtml(q.name)}</a> ${escapeHtml(q.unit ?? "")}</li>`
    })
    const commandsPath = `POST /api/devices/${d.id}/commands`
    return layout(
        d.name,
        `<h1>${escapeHtml(d.name)}</h1><p><code>${id}</code> · ${d.online ? "online" : "offline"} · last seen ${time(d.lastSeen)}</p>
<section><h2>Readings</h2><ul>${quantities.join("")}</ul></section>
<section><h2>Latest state</h2>${state}</section>
<section><h2>Commands</h2>
${apiForm(
    commandsPath,
    `<label>Sensor <input name="sensor" required></label>
<label>Interval (ms) <input name="ms" type="number" min="100" required></label><button>Set interval</button>`,
    { cmd: "interval" }
)}
${apiForm(commandsPath, "<button>Ask for the state</button>", { cmd: "state" })}
${apiForm(commandsPath, "<button>Ask for the event log</button>", { cmd: "events" })}
${apiForm(commandsPath, "<button>Check for an update</button>", { cmd: "update-check" })}
<p data-result></p>
${table(["sent", "counter", "command", "status", "reply"], commands)}</section>
<section><h2>Security events</h2>${table(["boot", "seq", "uptime ms", "kind", "detail"], events)}</section>
<section><h2>Rejected messages</h2>${table(["at", "reason", "detail"], rejections)}</section>
<section><h2>Manage</h2>
${apiForm(`PATCH /api/devices/${d.id}`, `<label>Name <input name="name" required></label><button>Rename</button>`)}
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
        const headers = { "content-type": "application/json", "x-csrf-token": csrf }
        const res = await fetch(url, { method, headers, body: JSON.stringify(body) })
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
    // a reload at most every 2 s, and never under someone typing in a form
    const refresh = () => {
        clearTimeout(pending)
        pending = setTimeout(() => { if (!document.activeElement?.form) location.reload() }, 2000)
    }
    for (const kind of ["state", "event", "command", "device"]) stream.addEventListener(kind, refresh)
}
`
