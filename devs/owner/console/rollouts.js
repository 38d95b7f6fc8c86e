/**
 * The rollouts page: every rollout with its status and counts, kept live by
 * the event stream, and the form that starts one (the service checks it; its
 * sentence is shown as it is).
 */
import { api, clock, fill, follow, h, pageData, say, table, throttle } from "./dom.js"

const list = document.querySelector("[data-rollouts]")
let rollouts = pageData().rollouts ?? []

/** The pill of a rollout's status. */
export function statusPill(status) {
    const kind = { running: "ok", completed: "ok", paused: "wait", halted: "bad", aborted: "off" }[status] ?? "off"
    return h("span", { class: `pill ${kind}` }, status)
}

function render() {
    const rows = rollouts.map(r => [
        h("a", { href: `/rollouts/${r.id}` }, `#${r.id}`),
        h("span", {}, h("code", { title: r.release.digest }, r.release.digest.slice(0, 12)), ` #${r.release.sequence}`),
        statusPill(r.status),
        `${Math.max(0, r.stage + 1)} of ${r.stages.length}`,
        { cell: `${r.confirmed ?? "—"} / ${r.size ?? "—"}`, class: "num" },
        { cell: String(r.failed ?? "—"), class: r.failed > 0 ? "num warn" : "num" },
        r.reason ?? "",
        clock(r.createdAt),
    ])
    const headers = ["Rollout", "Release", "Status", "Stage", "Confirmed", "Failed", "Why", "Started"]
    fill(list, table(headers, rows, "No rollouts yet: start one below."))
}

const refresh = throttle(async () => {
    try {
        rollouts = (await api("GET", "/api/rollouts")).rollouts
        render()
    } catch {
        // the stream badge says the service is away
    }
}, 1000)

render()
refresh()
follow({ rollout: refresh })

/** Stages as typed: `1,10%,50%,100%` (a count of devices, or a percentage of them; cumulative). */
function stagesOf(text) {
    return text
        .split(",")
        .map(s => s.trim())
        .filter(Boolean)
        .map(s => (s.endsWith("%") ? { percent: Number(s.slice(0, -1)) } : { devices: Number(s) }))
}

/** The cohort as typed: `all`, `tag:<tag>`, or device ids separated by commas. */
function cohortOf(text) {
    const t = text.trim()
    if (t === "all") return "all"
    if (t.startsWith("tag:")) return { tag: t.slice(4).trim() }
    return { devices: t.split(/[\s,]+/).filter(Boolean) }
}

const form = document.querySelector("form[data-create]")
const result = document.querySelector("[data-result]")
form.addEventListener("submit", async ev => {
    ev.preventDefault()
    const f = new FormData(form)
    const body = {
        digest: String(f.get("digest")).trim().toLowerCase(),
        sequence: Number(f.get("sequence")),
        cohort: cohortOf(String(f.get("cohort"))),
        stages: stagesOf(String(f.get("stages"))),
    }
    const button = form.querySelector("button")
    button.disabled = true
    try {
        const r = await api("POST", "/api/rollouts", body)
        location.href = `/rollouts/${r.id}`
    } catch (e) {
        say(result, "error", e.message)
    } finally {
        button.disabled = false
    }
})
