/** Waiting for something the device, its owner or a service does, by polling. */

/** Polls `predicate` every 100 ms until it holds; fails after `timeoutMs` with `what` (a function is asked at that moment). */
export async function until(what: string | (() => string), predicate: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
    const end = Date.now() + timeoutMs
    while (!(await predicate())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`)
        await new Promise(r => setTimeout(r, 100))
    }
}
