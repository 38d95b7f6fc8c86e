/**
 * A device's page: a chart per quantity over the last hour or day, kept
 * live by the event stream; the latest state report and the latest step of
 * an update the device reported; the commands (naming a release among them),
 * each with the device's reply when it comes; the security event log; the
 * messages the service refused; rename, remove and (for the simulator that
 * `npm start` runs) factory reset.
 */
import { QuantityChart } from "./charts.js"
import { ago, api, clock, duration, fill, follow, h, pageData, say, status, table, throttle } from "./dom.js"

const { device: initial, simulated } = pageData()
const id = initial.id
let detail = initial
let rangeMs = 3_600_000
/** Charts by quantity name. */
const charts = new Map()
/** Commands shown, by id, newest first. */
let commands = detail.commands

const $ = selector => document.querySelector(selector)
const commandResult = $("[data-result]")
const manageResult = $("[data-manage-result]")

// --- the header

function renderHeader() {
    $("[data-name]").textContent = detail.name
    document.title = `${detail.name} · sentinel-node`
    fill($("[data-status]"), status(detail))
    $("[data-seen]").textContent = detail.lastSeen
        ? `· last heard ${ago(detail.lastSeen)} (${clock(detail.lastSeen)})`
        : "· not heard from yet"
    // the device said it runs an image whose digest no manifest it trusts names (deployed by hand, or older source)
    const unknown = detail.unknownImage
    const warning = $("[data-unknown-image]")
    warning.hidden = !unknown
    fill(
        warning,
        unknown
            ? [
                  h("span", { class: "pill warn" }, "runs an image no release names"),
                  " image ",
                  h("code", {}, unknown.image),
                  ` (said ${clock(unknown.since)}): it was not installed from a signed release. `,
                  "Name the release it should run below (Install this release), or roll one out.",
              ]
            : ""
    )
}

// --- readings

/** The chart of a quantity, made (and its window loaded) on first use. */
function chartOf(q) {
    let chart = charts.get(q.name)
    if (!chart) {
        const area = $("[data-charts]")
        area.querySelector(".empty")?.remove()
        charts.set(q.name, (chart = new QuantityChart(area, q, rangeMs)))
        // in the order of their names, however they arrived
        const next = [...area.querySelectorAll("figure[data-quantity]")].find(f => f.dataset.quantity > q.name)
        if (next) area.insertBefore(chart.figure, next)
        void loadChart(chart)
    }
    return chart
}

async function loadChart(chart) {
    chart.rangeMs = rangeMs
    const url = `/api/devices/${id}/readings?name=${encodeURIComponent(chart.quantity.name)}&since=${Date.now() - rangeMs}&limit=100000`
    try {
        await chart.load(async () => (await api("GET", url)).readings)
    } catch (e) {
        say(commandResult, "error", `The readings of ${chart.quantity.name} could not be loaded: ${e.message}`)
    }
}

for (const button of document.querySelectorAll("[data-range]"))
    button.addEventListener("click", () => {
        rangeMs = Number(button.dataset.range)
        for (const b of document.querySelectorAll("[data-range]")) b.setAttribute("aria-pressed", String(b === button))
        for (const chart of charts.values()) void loadChart(chart)
    })

function onReading(m) {
    if (m.deviceId !== id) return
    detail.lastSeen = Date.now()
    detail.online = true
    for (const r of m.readings) chartOf({ name: r.name, unit: r.unit }).add(r.timeMs, r.value)
    renderHeader()
}

// --- the latest state report

/** The state report's fields (src/control/commands.ts), as the owner reads them; others are shown by their names. */
const STATE_LABELS = {
    image: "Firmware image",
    seq: "Firmware sequence",
    phase: "Update phase",
    boot: "Boot",
    uptime: "Uptime",
    events: "Events logged",
    queued: "Queued messages",
    dropped: "Dropped messages",
    cmd: "Answers",
    answers: "Command counter",
}

function renderState() {
    const area = $("[data-state]")
    const s = detail.state
    if (!s) {
        fillSensors([])
        return fill(area, h("p", { class: "empty" }, "None yet: ask for the state below."))
    }
    const rows = []
    const known = Object.keys(STATE_LABELS).filter(k => k in s.state)
    for (const key of [...known, ...Object.keys(s.state).filter(k => !(k in STATE_LABELS))]) {
        const value = s.state[key]
        if (key === "intervals" && value && typeof value === "object") continue
        const shown =
            key === "uptime" && typeof value === "number"
                ? duration(value)
                : typeof value === "object"
                  ? JSON.stringify(value)
                  : String(value)
        rows.push(h("dt", {}, STATE_LABELS[key] ?? key), h("dd", { "data-key": key }, shown))
    }
    const intervals = s.state.intervals && typeof s.state.intervals === "object" ? Object.entries(s.state.intervals) : []
    fill(
        area,
        h("dl", { class: "facts" }, rows),
        intervals.length
            ? table(
                  ["Sensor", "Sampling interval"],
                  intervals.map(([sensor, ms]) => [sensor, h("span", { "data-interval": sensor }, `${ms} ms`)])
              )
            : "",
        h("p", { class: "hint" }, `Report #${s.counter}, received ${clock(s.receivedAt)} (${ago(s.receivedAt)}).`)
    )
    fillSensors(intervals)
}

/** The interval form's sensors: from the state report, else from the quantities' names. */
function fillSensors(intervals) {
    const select = $("form[data-command] select[name=sensor]")
    const names = intervals.length ? intervals.map(([s]) => s) : [...new Set(detail.quantities.map(q => q.name.split("/")[0]))]
    const chosen = select.value
    if ([...select.options].map(o => o.value).join() === names.join()) return
    fill(
        select,
        names.map(n => h("option", { value: n }, n))
    )
    if (names.includes(chosen)) select.value = chosen
    syncInterval()
}

/** Puts the chosen sensor's current interval in the field, unless the owner is typing one. */
function syncInterval() {
    const form = $("form[data-command]")
    const current = detail.state?.state?.intervals?.[form.elements.sensor.value]
    if (current !== undefined && document.activeElement !== form.elements.ms) form.elements.ms.value = String(current)
}
$("form[data-command] select[name=sensor]").addEventListener("change", syncInterval)

// --- commands

const describeCommand = c =>
    c.cmd === "interval"
        ? `interval ${c.sensor} ${c.ms} ms`
        : c.cmd === "update"
          ? `update to sequence ${c.sequence} (${String(c.digest).slice(0, 12)}…)`
          : ({ state: "state", events: "event log", "update-check": "update check" }[c.cmd] ?? c.cmd)

function describeReply(c) {
    if (c.status !== "answered" || !c.reply) return c.command.cmd === "events" ? "the log comes as security events" : "—"
    const r = c.reply
    const parts = []
    if (r.intervals && typeof r.intervals === "object")
        parts.push(
            Object.entries(r.intervals)
                .map(([s, ms]) => `${s} ${ms} ms`)
                .join(", ")
        )
    for (const key of ["boot", "queued", "dropped"]) if (key in r) parts.push(`${key} ${r[key]}`)
    return parts.join(" · ") || JSON.stringify(r)
}

function renderCommands() {
    fill(
        $("[data-commands]"),
        table(
            ["Sent", "Command", "Counter", "Status", "Reply"],
            commands.slice(0, 20).map(c => ({
                cells: [
                    { cell: clock(c.sentAt), class: "nowrap" },
                    describeCommand(c.command),
                    { cell: String(c.counter), class: "num" },
                    h(
                        "span",
                        { class: `pill ${c.status === "answered" ? "ok" : "wait"}`, "data-command-status": c.status },
                        c.status === "answered" ? "answered" : "sent"
                    ),
                    describeReply(c),
                ],
            })),
            "No commands sent yet."
        )
    )
}

/** The command the result line waits on, if any. */
let awaited
/**
 * How long "Install this release" waits for the device's first word (its answer, or a step of that release)
 * before saying it may have missed the command: commands go at QoS 0, and one sent while the device reconnects
 * is lost. As long as a rollout waits before it offers again (devs/owner/rollout/engine.ts).
 */
const UPDATE_ANSWER_MS = 60_000
let updateWatch

function onCommand(row) {
    if (row.deviceId !== id) return
    const i = commands.findIndex(c => c.id === row.id)
    // the reply may come through the stream before the answer to the POST that sent the command
    if (i >= 0 && commands[i].status === "answered" && row.status !== "answered") return
    if (i >= 0) commands[i] = row
    else commands = [row, ...commands]
    renderCommands()
    if (awaited === row.id && row.status === "answered") answered(row)
}

/** After UPDATE_ANSWER_MS with neither an answer to `row` nor a step of its release since it was sent: say so. */
function watchUpdate(row, digest) {
    clearTimeout(updateWatch)
    updateWatch = setTimeout(() => {
        const answer = commands.find(c => c.id === row.id)
        const step = detail.lastUpdate
        if (answer?.status === "answered" || (step && step.digest === digest && step.receivedAt >= row.sentAt)) return
        if (awaited !== row.id) return
        say(commandResult, "error", "No answer from the device yet: it may have been offline; send again.")
    }, UPDATE_ANSWER_MS)
}

function answered(row) {
    awaited = undefined
    say(commandResult, "ok", `The device answered ${describeCommand(row.command)} at ${clock(row.answeredAt)}: ${describeReply(row)}.`)
}

async function send(command, button) {
    button.disabled = true
    say(commandResult, "pending", `Sending ${describeCommand(command)}…`)
    try {
        const row = await api("POST", `/api/devices/${id}/commands`, command)
        onCommand(row)
        const current = commands.find(c => c.id === row.id) ?? row
        if (current.status === "answered") return answered(current)
        awaited = row.id
        if (command.cmd === "update") watchUpdate(row, command.digest)
        const waiting = command.cmd === "events" ? "waiting for the event log" : "waiting for the device's reply"
        say(commandResult, "pending", `Sent (counter ${row.counter}); ${waiting}. A device that is offline gets it when it is back.`)
    } catch (e) {
        say(commandResult, "error", `Not sent: ${e.message}`)
    } finally {
        button.disabled = false
    }
}

$("form[data-command]").addEventListener("submit", ev => {
    ev.preventDefault()
    const form = ev.currentTarget
    void send({ cmd: "interval", sensor: form.elements.sensor.value, ms: Number(form.elements.ms.value) }, form.querySelector("button"))
})
$("form[data-update]").addEventListener("submit", ev => {
    ev.preventDefault()
    const form = ev.currentTarget
    const digest = form.elements.digest.value.trim().toLowerCase()
    void send({ cmd: "update", digest, sequence: Number(form.elements.sequence.value) }, form.querySelector("button"))
})
for (const button of document.querySelectorAll("button[data-command]"))
    button.addEventListener("click", () => void send({ cmd: button.dataset.command }, button))

// --- the latest update step (src/update/report.ts: approved, trial, confirmed, rolled-back, refused, unhealthy)

function renderUpdate() {
    const u = detail.lastUpdate
    if (!u) return fill($("[data-update-step]"), h("p", { class: "empty" }, "No update reported yet."))
    const good = u.step === "confirmed" || u.step === "approved" || u.step === "trial"
    fill(
        $("[data-update-step]"),
        h(
            "p",
            {},
            h("span", { class: `pill ${good ? "ok" : "warn"}`, "data-step": u.step }, u.step),
            ` sequence ${u.sequence}, image `,
            h("code", { title: u.digest }, u.digest.slice(0, 12)),
            u.reason ? `: ${u.reason}` : "",
            ` (${clock(u.receivedAt)})`
        )
    )
}

function onUpdate(m) {
    if (m.deviceId !== id) return
    detail.lastUpdate = { ...m.report, counter: m.counter, receivedAt: m.receivedAt }
    renderUpdate()
}

// --- security events and rejections

/** Kinds an owner should look at (src/events: refusals, failures, corruption, overflow, rollbacks, resets). */
const SERIOUS = /refused|failure|corrupt|overflow|unhealthy|rolled-back|abandoned|reset|fault/

function renderEvents() {
    const fresh = detail.eventsSinceVisit
    fill($("[data-new-events]"), fresh > 0 ? h("span", { class: "pill warn" }, `${fresh} new since your last visit`) : "")
    fill(
        $("[data-events]"),
        table(
            ["Boot", "Uptime", "Kind", "Detail", "Received"],
            detail.events.map(e => ({
                class: SERIOUS.test(e.kind) ? "attention" : undefined,
                cells: [
                    { cell: String(e.boot), class: "num" },
                    { cell: duration(e.uptimeMs), class: "num" },
                    h("code", { "data-kind": e.kind }, e.kind),
                    e.detail,
                    clock(e.receivedAt),
                ],
            })),
            "None received yet: ask for the event log above."
        )
    )
    fill(
        $("[data-rejections]"),
        table(
            ["When", "Reason", "Detail"],
            detail.rejections.map(r => [clock(r.at), h("code", {}, r.reason), r.detail]),
            "None: every message on this device's topics was verified."
        )
    )
}

// --- the whole detail, again

const refreshDetail = throttle(async () => {
    try {
        const next = await api("GET", `/api/devices/${id}`)
        detail = next
        commands = next.commands
        renderAll()
        for (const q of next.quantities) chartOf(q)
    } catch (e) {
        if (e.status === 404) gone("This device was removed from this owner service.")
    }
}, 1000)

function onState(m) {
    if (m.deviceId !== id) return
    detail.state = { counter: m.counter, state: m.state, receivedAt: m.receivedAt }
    detail.lastSeen = m.receivedAt
    renderState()
    renderHeader()
    refreshDetail()
}

function onEvent(m) {
    if (m.deviceId !== id) return
    if (awaited !== undefined && commands.find(c => c.id === awaited)?.command.cmd === "events") {
        awaited = undefined
        say(commandResult, "ok", "The device sent its event log: see Security events below.")
    }
    refreshDetail()
}

function onRejection(r) {
    if (r.deviceId !== id) return
    detail.rejections = [r, ...detail.rejections].slice(0, 50)
    detail.rejected++
    renderEvents()
}

function onDevice(m) {
    if (m.deviceId !== id) return
    if (m.change === "removed") gone("This device was removed from this owner service.")
    else refreshDetail()
}

function gone(message) {
    document.body.classList.add("gone")
    say(manageResult, "error", `${message} Back to the device list…`)
    setTimeout(() => (location.href = "/"), 1500)
}

// --- rename, remove, factory reset

$("form[data-rename]").elements.name.value = detail.name
$("form[data-rename]").addEventListener("submit", async ev => {
    ev.preventDefault()
    const name = ev.currentTarget.elements.name.value.trim()
    try {
        await api("PATCH", `/api/devices/${id}`, { name })
        detail.name = name
        renderHeader()
        say(manageResult, "ok", `Renamed to ${name}.`)
    } catch (e) {
        say(manageResult, "error", `Not renamed: ${e.message}`)
    }
})

/** Asks once more, in the page, before something that cannot be undone. */
function confirmThen(question, action, label) {
    const box = $("[data-confirm]")
    box.hidden = false
    fill(
        box,
        h("p", {}, question),
        h(
            "div",
            { class: "row" },
            h("button", { class: "danger", "data-confirm-yes": true, onclick: () => ((box.hidden = true), void action()) }, label),
            h("button", { onclick: () => (box.hidden = true) }, "Cancel")
        )
    )
}

$("[data-remove]").addEventListener("click", () =>
    confirmThen(
        `Remove ${detail.name}? The service forgets its keys, readings and events. ` +
            "The registry keeps the claim, so the device cannot be claimed again without a factory reset.",
        async () => {
            try {
                await api("DELETE", `/api/devices/${id}`)
                gone(`${detail.name} was removed.`)
            } catch (e) {
                say(manageResult, "error", `Not removed: ${e.message}`)
            }
        },
        "Remove for good"
    )
)

if (simulated)
    $("[data-factory-reset]").addEventListener("click", () =>
        confirmThen(
            "Factory-reset the simulated device? Its flash is wiped (identity, event log, settings) and it boots as a new device " +
                "with a new id and claim code, which npm start claims again. The firmware keys are not touched.",
            async () => {
                say(manageResult, "pending", "Resetting the simulator…")
                try {
                    await api("POST", "/api/simulator/factory-reset")
                    gone("The simulated device was reset; it comes back under a new id.")
                } catch (e) {
                    say(manageResult, "error", `Not reset: ${e.message}`)
                }
            },
            "Wipe and restart"
        )
    )

// --- start

function renderAll() {
    renderHeader()
    renderState()
    renderUpdate()
    renderCommands()
    renderEvents()
}

renderAll()
for (const q of detail.quantities) chartOf(q)
follow({
    reading: onReading,
    state: onState,
    event: onEvent,
    update: onUpdate,
    command: onCommand,
    rejection: onRejection,
    device: onDevice,
})
setInterval(() => {
    // online/offline and "last heard" move with the clock, and the charts' window too
    refreshDetail()
    for (const chart of charts.values()) chart?.redraw()
}, 15_000)
