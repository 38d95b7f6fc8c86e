/**
 * Plays the owner standing at the device's console: reads the claim code the
 * device shows once and its id, and when the device says it is waiting for
 * its owner, claims it. Used by `npm start` and the end-to-end tests.
 */

/** Watches device console lines (without the simulator's prefix). */
export class ConsoleClaimer {
    deviceId = ""
    private code = ""

    /** `claim` is called once per claim code seen, when the device asks for its owner. */
    constructor(private readonly claim: (deviceId: string, code: string) => Promise<void>) {}

    /** Feeds one line; returns the claim in progress when this line started one. */
    onLine(text: string): Promise<void> | undefined {
        const code = /^claim code .*: ([A-Z2-7-]+)$/.exec(text)
        if (code) this.code = code[1]
        const id = /^sentinel-node: boot \d+, device ([0-9a-f]{32})/.exec(text)
        if (id) this.deviceId = id[1]
        if (!/waiting for the owner's claim/.test(text) || !this.code || !this.deviceId) return undefined
        const code0 = this.code
        this.code = ""
        return this.claim(this.deviceId, code0)
    }
}
