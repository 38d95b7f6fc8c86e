/**
 * Seeded fuzzing of the WSSK gateway over TLS (devs/fuzz/wssk.ts): hostile
 * upgrades, altered authentication and replies, stray and text frames, bytes
 * that are not HTTP. Only the exact device gets in, only its exact reply is
 * taken, and the gateway still serves a real device afterwards.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { campaignEntry } from "../../devs/fuzz/campaigns.ts"
import { fuzzAndPrint } from "../../devs/fuzz/fuzzer.ts"

test("wssk: frames and handshakes at the gateway", { timeout: 300_000 }, async () => {
    const { make, defaultCount } = campaignEntry("wssk")
    const counts = await fuzzAndPrint(await make!(), { count: defaultCount, seed: 1 })
    assert.deepEqual(counts.problems, [])
    assert.equal(counts.crashes + counts.invalid + counts.seedsRefused, 0)
})
