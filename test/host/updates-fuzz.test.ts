/**
 * Seeded fuzzing of the update service (devs/fuzz/updates.ts): hostile
 * reports from devices, driving its state machine through approvals,
 * deploys, confirmations and rollbacks; and mutated signed manifests and
 * images offered for publication.
 */
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { campaignEntry } from "../../devs/fuzz/campaigns.ts"
import { fuzzAndPrint } from "../../devs/fuzz/fuzzer.ts"

async function fuzz(name: string) {
    const { make, defaultCount } = campaignEntry(name)
    const counts = await fuzzAndPrint(await make!(), { count: defaultCount, seed: 1 })
    assert.deepEqual(counts.problems, [])
    assert.equal(counts.crashes + counts.invalid + counts.seedsRefused, 0)
}

describe("fuzzing the update service", () => {
    test("update-reports: hostile reports, the state machine and the store", { timeout: 300_000 }, () => fuzz("update-reports"))
    test("publish: mutated signed manifests and images", { timeout: 300_000 }, () => fuzz("publish"))
})
