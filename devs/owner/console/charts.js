/**
 * One chart per quantity (`sensor/quantity`), drawn by uPlot (served from
 * node_modules): the readings of the chosen window up to now, points on a
 * line, kept in time order as they arrive live. The figure carries its
 * uPlot instance (`figure.uplot`) and the number of points it draws
 * (`data-points`), which the browser test reads.
 */
import uPlot from "./uPlot.esm.js"
import { h, unit } from "./dom.js"

const STROKE = "#2c6e9b"
const FILL = "rgba(44, 110, 155, 0.08)"

/** A quantity's chart. */
export class QuantityChart {
    /** `quantity`: `{ name, unit }` as the store knows it; `rangeMs`: how far back the window reaches. */
    constructor(container, quantity, rangeMs) {
        this.quantity = quantity
        this.rangeMs = rangeMs
        /** Times in seconds (uPlot's unit) and values, in time order. */
        this.xs = []
        this.ys = []
        const [sensor, what] = quantity.name.includes("/") ? quantity.name.split("/", 2) : ["", quantity.name]
        this.figure = h("figure", { class: "chart", "data-quantity": quantity.name, "data-points": "0" })
        this.caption = h(
            "figcaption",
            {},
            h("strong", {}, what),
            sensor ? ` · ${sensor}` : "",
            quantity.unit ? ` (${unit(quantity.unit)})` : "",
            h("span", { class: "latest" })
        )
        this.plotArea = h("div", { class: "plot" })
        this.figure.append(this.caption, this.plotArea)
        container.append(this.figure)
        this.plot = new uPlot(
            {
                width: Math.max(240, this.plotArea.clientWidth),
                height: 170,
                legend: { show: false },
                cursor: { drag: { x: false, y: false } },
                scales: {
                    x: { time: true, range: () => [(Date.now() - this.rangeMs) / 1000, Date.now() / 1000] },
                    y: { range: (_u, min, max) => padRange(min, max) },
                },
                axes: [
                    { stroke: "#5b6470", grid: { stroke: "#eceff3" }, ticks: { stroke: "#dde2e8" } },
                    {
                        stroke: "#5b6470",
                        size: 60,
                        grid: { stroke: "#eceff3" },
                        ticks: { stroke: "#dde2e8" },
                        values: (_u, splits) => splits.map(format),
                    },
                ],
                series: [
                    {},
                    { label: quantity.name, stroke: STROKE, fill: FILL, width: 1.5, points: { show: true, size: 4, fill: STROKE } },
                ],
            },
            [[], []],
            this.plotArea
        )
        this.figure.uplot = this.plot
        new ResizeObserver(() => this.plot.setSize({ width: Math.max(240, this.plotArea.clientWidth), height: 170 })).observe(this.plotArea)
    }

    /**
     * Loads the window's readings with `fetchReadings()`; readings that
     * arrive live meanwhile are kept and merged, not lost under the answer.
     */
    async load(fetchReadings) {
        const live = (this.live = [])
        try {
            const readings = await fetchReadings()
            if (this.live !== live) return // a newer load took over
            this.set(readings)
        } finally {
            if (this.live === live) {
                this.live = undefined
                for (const r of live) this.add(r.timeMs, r.value)
            }
        }
    }

    /** Replaces the points with `readings` (`{ timeMs, value }`, any order). */
    set(readings) {
        const sorted = [...readings].sort((a, b) => a.timeMs - b.timeMs)
        this.xs = sorted.map(r => r.timeMs / 1000)
        this.ys = sorted.map(r => r.value)
        this.redraw()
    }

    /** Adds one reading where its time puts it (a late one from the device's queue too); one already drawn is left. */
    add(timeMs, value) {
        if (this.live) return void this.live.push({ timeMs, value })
        const x = timeMs / 1000
        let i = this.xs.length
        while (i > 0 && this.xs[i - 1] > x) i--
        for (let j = i - 1; j >= 0 && this.xs[j] === x; j--) if (this.ys[j] === value) return
        this.xs.splice(i, 0, x)
        this.ys.splice(i, 0, value)
        this.redraw()
    }

    /** Drops what fell out of the window, and draws (once per frame however many readings came). */
    redraw() {
        if (this.frame) return
        this.frame = requestAnimationFrame(() => {
            this.frame = undefined
            const from = (Date.now() - this.rangeMs) / 1000
            let cut = 0
            while (cut < this.xs.length && this.xs[cut] < from) cut++
            if (cut) {
                this.xs.splice(0, cut)
                this.ys.splice(0, cut)
            }
            this.plot.setData([this.xs, this.ys])
            this.figure.dataset.points = String(this.xs.length)
            const last = this.ys.at(-1)
            this.caption.querySelector(".latest").textContent =
                last === undefined
                    ? "no readings in this window"
                    : `${format(last)}${this.quantity.unit ? ` ${unit(this.quantity.unit)}` : ""}`
        })
    }
}

/** A little room above and below the points, so a flat line is not drawn on the frame. */
function padRange(min, max) {
    if (min === null || max === null) return [0, 1]
    const pad = max === min ? Math.max(1, Math.abs(max) * 0.01) : (max - min) * 0.1
    return [min - pad, max + pad]
}

/** A value as the axis and the caption show it. */
function format(v) {
    if (Math.abs(v) >= 10000) return v.toFixed(0)
    return String(Math.round(v * 100) / 100)
}
