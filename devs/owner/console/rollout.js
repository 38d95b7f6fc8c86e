/**
 * One rollout: a progress bar per stage (confirmed, under way, failed, of
 * the stage's devices), each device's step and since when, and the owner's
 * actions. Kept live: each `rollout` event of the stream fetches it again, at
 * most once a second.
 */
import { api, ago, fill, follow, h, pageData, say, shortId, table, throttle } from "./dom.js"

let rollout = pageData().rollout
const UNDER_WAY = ["offered", "approved", "deploying", "trial"]
const FAILED = ["failed", "rolled-back"]

const statusKind = s => ({ running: "ok", completed: "ok", paused: "wait", halted: "bad", aborted: "off" })[s] ?? "off"

/** A bar of three parts (confirmed, under way, failed) over the stage's size. */
function bar(stage) {
    const n = k => stage.steps[k] ?? 0
    const confirmed = n("confirmed")
    const underWay = UNDER_WAY.reduce((t, k) => t + n(k), 0)
    const failed = FAILED.reduce((t, k) => t + n(k), 0)
    const part = (cls, x, label) => {
        if (!x) return undefined
        const seg = h("span", { class: `seg ${cls}`, title: `${x} ${label}` })
        // through the CSSOM: the Content Security Policy refuses style attributes
        seg.style.width = `${(100 * x) / stage.size}%`
        return seg
    }
    return h(
        "div",
        {
            class: "progress",
            role: "img",
            "aria-label": `${confirmed} confirmed, ${underWay} under way, ${failed} failed of ${stage.size}`,
        },
        part("ok", confirmed, "confirmed"),
        part("busy", underWay, "under way"),
        part("bad", failed, "failed")
    )
}

function render() {
    const r = rollout
    fill(document.querySelector("[data-status]"), h("span", { class: `pill ${statusKind(r.status)}` }, r.status))
    fill(
        document.querySelector("[data-release]"),
        "release ",
        h("code", { title: r.release.digest }, r.release.digest.slice(0, 16)),
        ` sequence ${r.release.sequence} · ${r.confirmed} of ${r.size} confirmed, ${r.failed} failed`,
        r.reason ? ` · ${r.reason}` : ""
    )
    fill(
        document.querySelector("[data-stages]"),
        r.stages.map(s =>
            h(
                "div",
                { class: "stage", "data-stage": s.stage },
                h(
                    "div",
                    { class: "stage-head" },
                    h("strong", {}, s.name),
                    ` ${s.size} device${s.size === 1 ? "" : "s"} · `,
                    s.met ? "reached its threshold" : s.started ? `needs ${s.plan.successPercent} % confirmed` : "not started",
                    ` · ${s.steps.confirmed ?? 0} confirmed, ${FAILED.reduce((t, k) => t + (s.steps[k] ?? 0), 0)} failed`
                ),
                bar(s)
            )
        )
    )
    const can = {
        pause: r.status === "running",
        resume: r.status === "paused" || r.status === "halted",
        "retry-failed": ["running", "paused", "halted"].includes(r.status) && r.failed > 0,
        abort: ["running", "paused", "halted"].includes(r.status),
    }
    for (const b of document.querySelectorAll("button[data-action]")) b.disabled = !can[b.dataset.action]
    const rows = (r.devices ?? []).map(d => ({
        class: FAILED.includes(d.step) ? "attention" : undefined,
        cells: [
            d.name ? h("a", { href: `/devices/${encodeURIComponent(d.id)}` }, d.name) : "—",
            shortId(d.id),
            r.stages[d.stage]?.name ?? String(d.stage),
            h("span", { class: `step ${d.step}`, "data-step": d.step }, d.step),
            ago(d.at),
            d.reason ?? "",
            { cell: String(d.offers), class: "num" },
        ],
    }))
    fill(document.querySelector("[data-devices]"), table(["Name", "Id", "Stage", "Step", "Since", "Why", "Offers"], rows))
}

const refresh = throttle(async () => {
    try {
        rollout = await api("GET", `/api/rollouts/${rollout.id}`)
        render()
    } catch {
        // the stream badge says the service is away
    }
}, 1000)

render()
follow({ rollout: e => e.id === rollout.id && refresh() })
setInterval(render, 10_000)

const result = document.querySelector("[data-result]")
for (const b of document.querySelectorAll("button[data-action]"))
    b.addEventListener("click", async () => {
        const action = b.dataset.action
        if (action === "abort" && !confirm("Abort the rollout? Devices not yet offered the release are skipped.")) return
        try {
            rollout = await api("POST", `/api/rollouts/${rollout.id}/${action}`)
            say(result, "ok", `${action}: the rollout is ${rollout.status}.`)
            render()
        } catch (e) {
            say(result, "error", e.message)
        }
    })
