/**
 * Seeded fuzzing of what the device authenticates: COSE_Encrypt0 open, the
 * owner's downlink commands and their plaintext, and the SCRAM server's
 * messages (campaigns and their oracles in ./fuzz/secure.ts). Each prints
 * `fuzz <parser>: N inputs, N crashes, N invalid accepted`.
 */
import { describe, expect, test } from "@devicescript/test"
import { Campaign, runCampaign } from "./fuzz/fuzzer"
import { coseCampaign, commandCampaign, downlinkCampaign, scramFinalCampaign, scramFirstCampaign } from "./fuzz/secure"

async function fuzz(c: Campaign, count: number) {
    const counts = await runCampaign(c, { count, seed: 1 })
    expect(counts.crashes).toBe(0)
    expect(counts.invalid).toBe(0)
    expect(counts.seedsRefused).toBe(0)
}

describe("fuzzing what the device authenticates", () => {
    test("cose", async () => await fuzz(await coseCampaign(), 1500))
    test("downlink", async () => await fuzz(await downlinkCampaign(), 1000))
    test("command", async () => await fuzz(commandCampaign, 1500))
    test("scram-first", async () => await fuzz(scramFirstCampaign, 1500))
    test("scram-final", async () => await fuzz(await scramFinalCampaign(), 1500))
})
