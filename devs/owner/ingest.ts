/**
 * What the owner service does with each message a device publishes, in
 * arrival order: verify, decrypt and replay-check it (./verifier.ts), queue
 * what it holds, and store the queue with the replay windows it moved in one
 * transaction (a group commit). It runs on the service's ingest worker
 * (./ingest-worker.ts), with its own connection to the store, so the
 * service's main thread only receives and forwards.
 */
import { channelKeys } from "./keys.ts"
import type { IngestBatch, OwnerStore, RejectionRow } from "./store.ts"
import { printable, Rejected, RejectReason, ReplayWindow, UplinkVerifier, type FollowedDevice, type Verified } from "./verifier.ts"

/** What one group commit stored, as the service reports it. */
export interface IngestResult {
    verified: number
    rejected: number
    /** Verified messages: all of them when asked for detail, else only states and events (rare, and the service needs them). */
    messages: { message: Verified; receivedAt: number }[]
    rejections: RejectionRow[]
    /** Why the commit failed, if it did (nothing of the batch was kept). */
    error?: string
}

/** Verification and group commit over one store connection. */
export class Ingest {
    private readonly followed = new Map<string, FollowedDevice>()
    private readonly verifier = new UplinkVerifier(id => this.followed.get(id))
    private batch: IngestBatch = { verified: [], rejections: [], windows: new Map() }

    constructor(private readonly store: OwnerStore) {}

    /** Follows a device: its up keys derived once, its window as stored. */
    follow(id: string, root: Buffer) {
        const up = channelKeys(root, id, "up")
        const w = this.store.upWindow(id)
        this.followed.set(id, {
            up: { key: up.key, contextIv: up.contextIv },
            window: w ? ReplayWindow.fromStore(w.highest, w.seen) : new ReplayWindow(),
        })
    }

    unfollow(id: string) {
        this.followed.delete(id)
    }

    /** Verifies one message and queues it; never throws. */
    take(topic: string, payload: Buffer, at: number) {
        try {
            const message = this.verifier.verify(topic, payload)
            this.batch.verified.push({ message, receivedAt: at })
            this.batch.windows.set(message.deviceId, this.followed.get(message.deviceId)!.window)
        } catch (e) {
            const r =
                e instanceof Rejected
                    ? e
                    : new Rejected(RejectReason.Content, `unexpected: ${printable(String((e as Error)?.message ?? e))}`)
            this.batch.rejections.push({
                deviceId: r.deviceId ?? null,
                topic: printable(topic, 120),
                reason: r.reason,
                detail: r.message,
                at,
            })
        }
    }

    /** Stores the queue in one transaction; reports what it stored. */
    commit(detail: boolean): IngestResult {
        const batch = this.batch
        this.batch = { verified: [], rejections: [], windows: new Map() }
        const result: IngestResult = {
            verified: batch.verified.length,
            rejected: batch.rejections.length,
            messages: detail ? batch.verified : batch.verified.filter(v => v.message.kind !== "readings"),
            rejections: batch.rejections,
        }
        if (!batch.verified.length && !batch.rejections.length) return result
        try {
            this.store.commitIngest(batch)
        } catch (e) {
            // the store failed (disk full, say): nothing of the batch was kept, so the windows go back to what is stored
            for (const id of batch.windows.keys()) {
                const w = this.store.upWindow(id)
                const f = this.followed.get(id)
                if (w && f) f.window = ReplayWindow.fromStore(w.highest, w.seen)
            }
            return { verified: 0, rejected: 0, messages: [], rejections: [], error: (e as Error).message }
        }
        return result
    }
}
