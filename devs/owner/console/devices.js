/**
 * The device list: what an owner needs at a glance (online, last seen,
 * firmware (flagged when it runs an image no release names), update phase and
 * the latest step reported, queue and drops, security events since the last
 * visit, rejected messages), kept live by the event stream, and the claim form.
 */
import { ago, api, fill, follow, h, pageData, say, shortId, status, table, throttle } from "./dom.js"

const list = document.querySelector("[data-devices]")
let devices = pageData().devices ?? []

const dash = v => (v === null || v === undefined || v === "" ? "—" : String(v))

function render() {
    const rows = devices.map(d => ({
        class: d.eventsSinceVisit > 0 || d.rejected > 0 || d.unknownImage ? "attention" : undefined,
        cells: [
            h("a", { href: `/devices/${encodeURIComponent(d.id)}`, "data-device": d.id }, d.name),
            shortId(d.id),
            status(d),
            { cell: h("span", { title: d.lastSeen ? new Date(d.lastSeen).toString() : "" }, ago(d.lastSeen)) },
            h(
                "span",
                {},
                d.firmware ? [h("code", { title: String(d.firmware) }, String(d.firmware).slice(0, 12)), ` #${dash(d.sequence)}`] : "—",
                // what the device said: an image whose digest no manifest it trusts names
                d.unknownImage ? [" ", h("span", { class: "pill warn", "data-unknown-image": d.id }, "runs an image no release names")] : ""
            ),
            d.lastUpdate ? `${dash(d.update)} · ${d.lastUpdate.step} #${d.lastUpdate.sequence}` : dash(d.update),
            { cell: dash(d.queued), class: "num" },
            { cell: dash(d.dropped), class: d.dropped > 0 ? "num warn" : "num" },
            { cell: String(d.eventsSinceVisit), class: d.eventsSinceVisit > 0 ? "num warn" : "num" },
            { cell: String(d.rejected), class: d.rejected > 0 ? "num warn" : "num" },
        ],
    }))
    const headers = ["Name", "Id", "Status", "Last seen", "Firmware", "Update", "Queued", "Dropped", "New events", "Rejected"]
    fill(list, table(headers, rows, "No devices yet: claim one below with the id and code it printed on its first boot."))
}

const refresh = throttle(async () => {
    try {
        devices = (await api("GET", "/api/devices")).devices
        render()
    } catch {
        // the stream badge says the service is away; the next event tries again
    }
}, 2000)

render()
follow({ device: refresh, state: refresh, event: refresh, update: refresh, rejection: refresh, reading: refresh })
// "last seen" and online/offline move with the clock, not only with events
setInterval(render, 10_000)

const claim = document.querySelector("form[data-claim]")
const result = document.querySelector("[data-result]")
claim.addEventListener("submit", async ev => {
    ev.preventDefault()
    const form = new FormData(claim)
    const id = String(form.get("id")).trim().toLowerCase()
    const code = String(form.get("code")).trim().toUpperCase()
    const name = String(form.get("name") ?? "").trim()
    const button = claim.querySelector("button")
    button.disabled = true
    say(result, "pending", "Claiming… the registry checks the code, then the service opens the device's keys.")
    try {
        await api("POST", "/api/devices/claim", { id, code, ...(name ? { name } : {}) })
        claim.reset()
        say(result, "ok", `Claimed. Its readings appear here as the device sends them.`)
        refresh()
    } catch (e) {
        say(result, "error", claimAdvice(e))
    } finally {
        // the code is never kept in the page once it was used
        claim.elements.code.value = ""
        button.disabled = false
    }
})

/** What the owner can do about a refused claim (the service's sentence never holds the code). */
function claimAdvice(e) {
    if (e.status === 400) return `${e.message}.`
    if (e.status === 403)
        return "The registry refused the claim: check the id and the code against what the device printed (a code works once)."
    if (e.status === 409)
        return "This device is already claimed. A device that changes hands needs a factory reset, which gives it a new id and code."
    if (e.status === 429) return "Too many claim attempts for this device or from here: wait a minute, then try again."
    return e.message
}
