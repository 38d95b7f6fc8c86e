/**
 * Seeded fuzzing of the codecs on the device: the CBOR decoder and the MQTT
 * packet parser (campaigns and their oracles in ./fuzz/codec.ts). Each prints
 * `fuzz <parser>: N inputs, N crashes, N invalid accepted`; `npm run fuzz`
 * runs longer campaigns.
 */
import { describe, expect, test } from "@devicescript/test"
import { cborCampaign, mqttCampaign } from "./fuzz/codec"
import { Campaign, runCampaign } from "./fuzz/fuzzer"

async function fuzz(c: Campaign, count: number) {
    const counts = await runCampaign(c, { count, seed: 1 })
    expect(counts.crashes).toBe(0)
    expect(counts.invalid).toBe(0)
    expect(counts.seedsRefused).toBe(0)
}

describe("fuzzing the codecs", () => {
    test("cbor", async () => await fuzz(cborCampaign, 3000))
    test("mqtt", async () => await fuzz(mqttCampaign, 3000))
})
