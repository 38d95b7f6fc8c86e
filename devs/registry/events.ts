/**
 * The registry's security events (seed: "log an event whenever this limit is
 * reached"), written so that the log can be neither flooded nor forged.
 *
 * Forged: every field may come from outside (a SCRAM username, a device's
 * failure reason, an address), so every field is escaped before it is stored
 * or printed (`escapeField`): printable ASCII stays, everything else becomes
 * an escape. A newline in a username cannot start a line of its own, a
 * terminal control sequence cannot reach a console, a bidi control cannot
 * reorder what a person reads. The store keeps the escaped text; a console
 * shows it as it is. Recording never waits for the store: the rows are
 * written in order behind it, and `settled()` says when they are in.
 *
 * Flooded: the first `EVENT_BURST` events of one kind from one source in a
 * window of `EVENT_WINDOW_MS` are written as they come; the rest are counted,
 * and when the window ends one row says how many there were
 * ("... and 590 more in the last minute"). A source is an address, counted
 * as the limits count it (./source.ts); the registry's own components
 * ("registry", "updates") act for devices they authenticated, so their
 * events are counted per device instead. The windows themselves are bounded:
 * past `MAX_WINDOWS` sources at once, new sources share one window per kind.
 */
import { sourceOf } from "./source.ts"
import type { RegistryStore } from "./store.ts"

/** Events of one kind from one source written per window; the rest are summed up. */
export const EVENT_BURST = 10
export const EVENT_WINDOW_MS = 60_000
/** Windows tracked at once (memory bound). */
const MAX_WINDOWS = 10_000
/** Longest stored field, in characters after escaping. */
const MAX_FIELD = 200

/** Sources that are parts of the registry, not addresses: their events are counted per identity. */
const COMPONENTS = new Set(["registry", "updates"])

const NAMED_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\" }

/**
 * `text` as printable ASCII: a backslash, `\n`, `\r` and `\t` as those escapes, any other character
 * outside 0x20..0x7e as `\xNN` or `\u{N}`; cut to `max` characters, ending in `...` when cut.
 */
export function escapeField(text: string, max = MAX_FIELD): string {
    let out = ""
    for (const ch of text) {
        const code = ch.codePointAt(0)!
        const escaped =
            NAMED_ESCAPES[ch] ??
            (code >= 0x20 && code <= 0x7e ? ch : code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`)
        if (out.length + escaped.length > max - 3) return out + "..."
        out += escaped
    }
    return out
}

interface Window {
    kind: string
    source: string
    /** The one identity of a component's window; "*" for a source's. */
    identity: string
    start: number
    written: number
    more: number
}

/** Writes security events to the store and the console, escaped and limited. */
export class SecurityEvents {
    private readonly windows = new Map<string, Window>()
    /** The writes still under way, in the order they were recorded. */
    private writing: Promise<void> = Promise.resolve()

    constructor(
        private readonly store: RegistryStore,
        private readonly clock: () => number,
        private readonly log: (line: string) => void
    ) {}

    /** Records an event, unless its kind and source have had `EVENT_BURST` this window (then it is counted). */
    record(kind: string, source: string, identity: string, detail: string) {
        const now = this.clock()
        this.flush()
        const window = this.windowFor(kind, source, identity, now)
        if (window.written >= EVENT_BURST) return void window.more++
        window.written++
        this.write(now, kind, source, identity, detail)
    }

    /** Writes the summary of every window that has ended; the registry calls it every second. */
    flush() {
        const now = this.clock()
        // windows are kept in the order they opened: the first one still open ends the sweep
        for (const [key, window] of this.windows) {
            if (now - window.start < EVENT_WINDOW_MS) break
            this.windows.delete(key)
            if (window.more > 0)
                this.write(now, window.kind, window.source, window.identity, `... and ${window.more} more in the last minute`)
        }
    }

    private windowFor(kind: string, source: string, identity: string, now: number): Window {
        const component = COMPONENTS.has(source)
        const key = component ? `${kind}\n${source}\n${identity}` : `${kind}\n${sourceOf(source)}`
        const open = this.windows.get(key)
        if (open) return open
        const crowded = this.windows.size >= MAX_WINDOWS
        const shared = `${kind}\n*`
        const window = (crowded && this.windows.get(shared)) || {
            kind,
            source: crowded ? "*" : source,
            identity: component && !crowded ? identity : "*",
            start: now,
            written: 0,
            more: 0,
        }
        this.windows.set(crowded ? shared : key, window)
        return window
    }

    /** Resolves once every event recorded so far is in the store (the registry waits for it before it answers). */
    settled(): Promise<void> {
        return this.writing
    }

    private write(at: number, kind: string, source: string, identity: string, detail: string) {
        const row = {
            at,
            kind: escapeField(kind),
            source: escapeField(source),
            identity: escapeField(identity),
            detail: escapeField(detail),
        }
        // written in order; a store that refuses one loses that row, not the request that caused it
        this.writing = this.writing.then(() =>
            this.store.addEvent(row).catch(e => this.log(`registry event not stored (${(e as Error).message.slice(0, 96)}): ${row.kind}`))
        )
        this.log(`registry event ${row.kind} source=${row.source} identity=${row.identity}: ${row.detail}`)
    }
}
