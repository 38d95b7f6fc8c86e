/**
 * One line per thing the owner service reports, for people (`npm run
 * consume`, `npm start`'s `owner>` lines). Built from what the service
 * stored: readings, states, events, update steps, commands and rejections, never a key.
 */
import type { StreamEvent } from "./api-client.ts"
import type { ServiceEvents } from "./service.ts"

const short = (id: string) => id.slice(0, 8)

/** The line for one event of the stream, or undefined for events people need not see. */
export function describeEvent(e: StreamEvent): string | undefined {
    switch (e.event) {
        case "reading": {
            const m = e.data as ServiceEvents["reading"][0]
            return `${short(m.deviceId)} #${m.counter} ` + m.readings.map(r => `${r.name}=${r.value}${r.unit ?? ""}`).join(" ")
        }
        case "state": {
            const m = e.data as ServiceEvents["state"][0]
            return `${short(m.deviceId)} #${m.counter} state: ${JSON.stringify(m.state)}`
        }
        case "event": {
            const m = e.data as ServiceEvents["event"][0]
            return `${short(m.deviceId)} events: ` + m.events.map(x => `[${x.boot}.${x.seq}] ${x.kind}: ${x.detail}`).join("; ")
        }
        case "update": {
            const u = e.data as ServiceEvents["update"][0]
            const r = u.report
            const reason = r.reason ? ` (${r.reason})` : ""
            return `${short(u.deviceId)} #${u.counter} update ${r.step}: sequence ${r.sequence}, ${r.digest.slice(0, 16)}…${reason}`
        }
        case "command": {
            const c = e.data as ServiceEvents["command"][0]
            const what = `${String(c.command.cmd)} (counter ${c.counter})`
            return c.status === "answered" ? `${short(c.deviceId)} answered ${what}` : `${short(c.deviceId)} sent ${what}`
        }
        case "rejection": {
            const r = e.data as ServiceEvents["rejection"][0]
            return `REJECTED ${r.topic}: ${r.reason}: ${r.detail}`
        }
        case "device": {
            const d = e.data as ServiceEvents["device"][0]
            return `${d.deviceId} ${d.change}`
        }
    }
    return undefined
}
