/**
 * Seeded fuzzing of the device's manifest verification (SLH-DSA-SHA2-128s
 * on the VM, src/update/manifest.ts): a manifest signed here with a key made
 * here, mutated on the device and verified as the updater does; only the
 * owner's exact protected header, payload and signature may verify
 * (test/device/fuzz/update.ts, run through devs/fuzz/device.ts).
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { campaignEntry } from "../../devs/fuzz/campaigns.ts"
import { runDeviceCampaigns } from "../../devs/fuzz/device.ts"
import { countLine } from "../../devs/fuzz/fuzzer.ts"

test("manifest-verify: mutated signed manifests never verify on the device", { timeout: 600_000 }, async () => {
    const { name, defaultCount } = campaignEntry("manifest-verify")
    const [counts] = await runDeviceCampaigns([{ name, count: defaultCount }], 1, 0)
    assert.ok(counts, "the device printed no count")
    for (const p of counts.problems) console.log(p)
    console.log(countLine(counts))
    assert.equal(counts.name, "manifest-verify")
    assert.deepEqual(counts.problems, [])
    assert.equal(counts.crashes + counts.invalid + counts.seedsRefused, 0)
    assert.equal(counts.inputs, defaultCount + 1)
})
