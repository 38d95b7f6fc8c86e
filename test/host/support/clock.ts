/** A clock the test moves by hand, for the `clock` option of the registry and the update service. */
export class ManualClock {
    constructor(private at = 1_700_000_000_000) {}

    /** The current time (ms); pass it as `clock: clock.now`. */
    readonly now = () => this.at

    /** Moves the time forward by `ms`. */
    advance(ms: number) {
        this.at += ms
    }
}
