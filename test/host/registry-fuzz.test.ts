/**
 * Seeded fuzzing of every registry endpoint in-process (devs/fuzz/registry.ts):
 * hostile methods, paths, headers, bodies and sources; the registry never
 * throws, answers every refusal with a 4xx and a JSON error, succeeds only
 * where it may, and leaves a consistent store that still serves.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { campaignEntry } from "../../devs/fuzz/campaigns.ts"
import { fuzzAndPrint } from "../../devs/fuzz/fuzzer.ts"

test("registry: every endpoint, hostile requests", { timeout: 300_000 }, async () => {
    const { make, defaultCount } = campaignEntry("registry")
    const counts = await fuzzAndPrint(await make!(), { count: defaultCount, seed: 1 })
    assert.deepEqual(counts.problems, [])
    assert.equal(counts.crashes + counts.invalid + counts.seedsRefused, 0)
})
