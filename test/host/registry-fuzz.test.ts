/**
 * Seeded fuzzing of every registry endpoint in-process (devs/fuzz/registry.ts), on SQLite and on PostgreSQL:
 * hostile methods, paths, headers, bodies and sources; the registry never
 * throws, answers every refusal with a 4xx and a JSON error, succeeds only
 * where it may, and leaves a consistent store that still serves. Also the
 * registry's answers to RabbitMQ's auth backend (devs/fuzz/broker-auth.ts):
 * never an exception, never an allow the rules do not grant, every refusal an event.
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { campaignEntry } from "../../devs/fuzz/campaigns.ts"
import { fuzzAndPrint } from "../../devs/fuzz/fuzzer.ts"

for (const [name, store] of [
    ["registry", "SQLite"],
    ["registry-postgres", "PostgreSQL"],
])
    test(`registry on ${store}: every endpoint, hostile requests`, { timeout: 300_000 }, async () => {
        const { make, defaultCount } = campaignEntry(name)
        const counts = await fuzzAndPrint(await make!(), { count: defaultCount, seed: 1 })
        assert.deepEqual(counts.problems, [])
        assert.equal(counts.crashes + counts.invalid + counts.seedsRefused, 0)
    })

test("registry: the broker's auth backend, hostile checks", { timeout: 300_000 }, async () => {
    const { make, defaultCount } = campaignEntry("broker-auth")
    const counts = await fuzzAndPrint(await make!(), { count: defaultCount, seed: 1 })
    assert.deepEqual(counts.problems, [])
    assert.equal(counts.crashes + counts.invalid + counts.seedsRefused, 0)
})
