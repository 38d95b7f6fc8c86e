/**
 * One fiber at a time on a group of settings keys.
 *
 * A write here resolves only once a read of the same key answers with the
 * written value (`settings.ts`), and the settings service answers reads by
 * key, not by asker. So two fibers working on one key at once read each
 * other's answers: a write looks refused because another fiber's deletion
 * landed between it and its read-back, a deletion looks refused because
 * another fiber's write did. Code that shares keys between fibers (the
 * outbound queue: readings from the pipeline's fiber, command replies and
 * acknowledgements from the uplink's) runs each operation as one turn.
 */
import * as ds from "@devicescript/core"

/** A FIFO lock: `run` waits its turn, runs `work`, and hands the turn on. */
export class SerialAccess {
    private busy = false
    private readonly waiting: ds.Fiber[] = []

    /** Runs `work` once every earlier turn has ended; its result or error passes through. */
    async run<T>(work: () => Promise<T>): Promise<T> {
        if (this.busy) {
            // no yield between queueing and suspending: the fiber is suspended when its turn comes
            this.waiting.push(ds.Fiber.self())
            await ds.suspend<void>()
        } else this.busy = true
        try {
            return await work()
        } finally {
            const next = this.waiting.shift()
            // the turn passes straight on, so no newcomer can slip in between
            if (next) next.resume(undefined)
            else this.busy = false
        }
    }
}
