/**
 * Seeded fuzzing of the update records on the device: the manifest map, its
 * COSE_Sign1 envelope, the root document and key list, and the slot and
 * state records in flash (campaigns
 * and their oracles in ./fuzz/update.ts). Each prints
 * `fuzz <parser>: N inputs, N crashes, N invalid accepted`.
 */
import { describe, expect, test } from "@devicescript/test"
import { Campaign, runCampaign } from "./fuzz/fuzzer"
import {
    keyListCampaign,
    manifestCampaign,
    rootDocumentCampaign,
    signedManifestCampaign,
    slotRecordCampaign,
    stateDecodeCampaign,
} from "./fuzz/update"

async function fuzz(c: Campaign, count: number) {
    const counts = await runCampaign(c, { count, seed: 1 })
    expect(counts.crashes).toBe(0)
    expect(counts.invalid).toBe(0)
    expect(counts.seedsRefused).toBe(0)
}

describe("fuzzing the update records", () => {
    test("manifest", async () => await fuzz(manifestCampaign, 2000))
    test("signed-manifest", async () => await fuzz(signedManifestCampaign, 1000))
    test("root-document", async () => await fuzz(rootDocumentCampaign, 1500))
    test("key-list", async () => await fuzz(keyListCampaign, 1500))
    test("slot-records", async () => await fuzz(await slotRecordCampaign(), 150))
    test("state-record", async () => await fuzz(await stateDecodeCampaign(), 250))
})
