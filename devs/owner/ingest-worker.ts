/**
 * The owner service's ingest worker: a thread with its own connection to the
 * store, which verifies and stores what the main thread forwards (./ingest.ts).
 * Messages from the main thread arrive in order, so the replay windows see
 * the broker's order; each batch is one group commit, and its result goes back.
 */
import { parentPort, workerData } from "node:worker_threads"
import { Ingest } from "./ingest.ts"
import { OwnerStore } from "./store.ts"

/** What the main thread sends. */
export type ToWorker =
    | { kind: "follow"; id: string; root: Uint8Array }
    | { kind: "unfollow"; id: string }
    /** Messages as received: topics, payloads and arrival times in parallel arrays. */
    | { kind: "batch"; seq: number; topics: string[]; payloads: Uint8Array[]; at: number[]; detail: boolean }

const store = new OwnerStore((workerData as { storePath: string }).storePath)
const ingest = new Ingest(store)

parentPort!.on("message", (m: ToWorker) => {
    if (m.kind === "follow") ingest.follow(m.id, Buffer.from(m.root))
    else if (m.kind === "unfollow") ingest.unfollow(m.id)
    else {
        for (let i = 0; i < m.topics.length; i++) {
            const p = m.payloads[i]
            ingest.take(m.topics[i], Buffer.from(p.buffer, p.byteOffset, p.byteLength), m.at[i])
        }
        parentPort!.postMessage({ seq: m.seq, result: ingest.commit(m.detail) })
    }
})
parentPort!.on("close", () => store.close())
