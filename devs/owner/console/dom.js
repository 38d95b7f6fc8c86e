/**
 * What every console page shares: building elements (text only, through
 * `textContent`: nothing a device or the network sent is ever parsed as
 * markup), calls to the owner service's API with the session's CSRF token,
 * the live event stream, and how times, durations and units read.
 */

/** The CSRF token of this session, which every state-changing request echoes (`x-csrf-token`). */
const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? ""

/**
 * An element: `props` sets attributes (`class`, `data-*`, `aria-*`…) and
 * `on<event>` listeners; children are nodes or text, never markup.
 */
export function h(tag, props = {}, ...children) {
    const el = document.createElement(tag)
    for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue
        if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value)
        else el.setAttribute(key, value === true ? "" : String(value))
    }
    append(el, children)
    return el
}

function append(el, children) {
    for (const c of children.flat(Infinity)) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c))
}

/** Replaces what `el` holds with `children`. */
export function fill(el, ...children) {
    el.replaceChildren()
    append(el, children)
    return el
}

/** A table: header names and rows of cells (each a node, text, or `{ cell, class }`). */
export function table(headers, rows, empty = "Nothing yet.") {
    if (rows.length === 0) return h("p", { class: "empty" }, empty)
    return h(
        "table",
        {},
        h(
            "thead",
            {},
            h(
                "tr",
                {},
                headers.map(name => h("th", { scope: "col" }, name))
            )
        ),
        h(
            "tbody",
            {},
            rows.map(row =>
                h(
                    "tr",
                    { class: row.class },
                    (row.cells ?? row).map(c =>
                        c && typeof c === "object" && "cell" in c ? h("td", { class: c.class }, c.cell) : h("td", {}, c)
                    )
                )
            )
        )
    )
}

/** The page's first data, from the shell's JSON block. */
export function pageData() {
    return JSON.parse(document.getElementById("page-data")?.textContent ?? "{}")
}

/** An answer of the API that is not a success; `message` is a sentence for the owner. */
export class ApiError extends Error {
    constructor(status, message) {
        super(message)
        this.status = status
    }
}

/** One call to the API; resolves with its JSON answer, rejects with an `ApiError` that says what to do. */
export async function api(method, url, body) {
    let res
    try {
        res = await fetch(url, {
            method,
            headers: { "content-type": "application/json", "x-csrf-token": csrf },
            body: body === undefined ? undefined : JSON.stringify(body),
            credentials: "same-origin",
        })
    } catch {
        throw new ApiError(
            0,
            "The owner service does not answer: check that it is still running (npm start, or npm run owner), then try again."
        )
    }
    const answer = await res.json().catch(() => ({}))
    if (res.status === 401) {
        location.href = "/login"
        throw new ApiError(401, "Your session has ended: log in again.")
    }
    if (!res.ok)
        throw new ApiError(res.status, typeof answer.error === "string" ? answer.error : `The service answered HTTP ${res.status}.`)
    return answer
}

/** Shows a result line: `kind` is "ok", "error" or "pending". */
export function say(el, kind, text) {
    el.dataset.kind = kind
    el.textContent = text
}

/**
 * Follows the service's event stream; `handlers` maps an event name to what
 * to do with its data. The header shows whether the page is live; the
 * browser reconnects by itself, and a stream refused for an ended session
 * sends the page to the login.
 */
export function follow(handlers) {
    const badge = document.querySelector("[data-live]")
    const show = (live, text) => {
        if (!badge) return
        badge.hidden = false
        badge.dataset.stream = live ? "live" : "down"
        badge.textContent = text
    }
    const stream = new EventSource("/api/stream")
    stream.addEventListener("open", () => show(true, "live"))
    stream.addEventListener("error", async () => {
        show(false, "reconnecting…")
        const session = await fetch("/api/session", { credentials: "same-origin" }).catch(() => undefined)
        if (session?.status === 401) location.href = "/login"
    })
    for (const [name, handle] of Object.entries(handlers))
        stream.addEventListener(name, e => {
            try {
                handle(JSON.parse(e.data))
            } catch (err) {
                console.error(`console: the ${name} event could not be shown`, err)
            }
        })
    return stream
}

/** Calls `fn` at most once per `ms`, and once more after the last call. */
export function throttle(fn, ms) {
    let timer
    let last = 0
    return () => {
        if (timer) return
        const wait = Math.max(0, last + ms - Date.now())
        timer = setTimeout(() => {
            timer = undefined
            last = Date.now()
            fn()
        }, wait)
    }
}

const pad = n => String(n).padStart(2, "0")

/** A time as the owner's clock reads it: `10:32:05` today, `2026-11-26 10:32:05` before. */
export function clock(ms) {
    if (!ms) return "never"
    const d = new Date(ms)
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
    if (d.toDateString() === new Date().toDateString()) return time
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`
}

/** A duration in words: `45 s`, `3 min`, `2 h 5 min`, `4 d 3 h`. */
export function duration(ms) {
    const s = Math.round(ms / 1000)
    if (s < 60) return `${s} s`
    const m = Math.floor(s / 60)
    if (m < 60) return `${m} min`
    const hours = Math.floor(m / 60)
    if (hours < 48) return `${hours} h ${m % 60} min`
    return `${Math.floor(hours / 24)} d ${hours % 24} h`
}

/** How long ago `ms` was: `12 s ago`, or `never`. */
export function ago(ms) {
    return ms ? `${duration(Math.max(0, Date.now() - ms))} ago` : "never"
}

/** SenML units (RFC 8428 §12.1) as people write them. */
const UNITS = { Cel: "°C", "%RH": "% RH", Pa: "Pa", Ohm: "Ω", lx: "lx", V: "V", A: "A", W: "W", m: "m", s: "s", "%": "%" }

export function unit(senml) {
    return senml ? (UNITS[senml] ?? senml) : ""
}

/** A device id shortened for reading (the whole id stays in a title). */
export function shortId(id) {
    return h("code", { title: id }, id.slice(0, 8))
}

/** The online/offline pill of a device. */
export function status(device) {
    return h("span", { class: `pill ${device.online ? "ok" : "off"}` }, device.online ? "online" : "offline")
}
