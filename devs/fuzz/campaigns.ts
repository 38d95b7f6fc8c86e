/**
 * Every fuzz campaign, on the host and on the device, with the count
 * `npm test` gives it (its default campaign), and how to run a selection of
 * them for longer: `npm run fuzz` (devs/bin/fuzz.ts) and the bench
 * (`defaultCampaignCounts`).
 *
 * The device's counts are those of test/device/fuzz-*.test.ts (a suite on
 * the VM cannot import this table); the host's test files take theirs from here.
 */
import { brokerAuthCampaign } from "./broker-auth.ts"
import { runDeviceCampaigns } from "./device.ts"
import { countLine, fuzzAndPrint, type Campaign, type FuzzCounts } from "./fuzzer.ts"
import { registryCampaign, registryPostgresCampaign } from "./registry.ts"
import { publishCampaign, reportsCampaign } from "./updates.ts"
import { wsskCampaign } from "./wssk.ts"

/** A campaign of the table. */
export interface CampaignEntry {
    name: string
    where: "host" | "device"
    /** Inputs after the seeds in `npm test`. */
    defaultCount: number
    /** For the host's: makes the campaign (a store, a gateway: each run gets its own). */
    make?: () => Campaign<never> | Promise<Campaign<never>>
}

type AnyCampaign = Campaign<never>

/** Every campaign, host first. */
export const CAMPAIGNS: CampaignEntry[] = [
    { name: "registry", where: "host", defaultCount: 10_000, make: registryCampaign as () => Promise<AnyCampaign> },
    // the same on PostgreSQL: fewer inputs, as each costs round trips to the server
    { name: "registry-postgres", where: "host", defaultCount: 3000, make: registryPostgresCampaign as () => Promise<AnyCampaign> },
    { name: "broker-auth", where: "host", defaultCount: 10_000, make: brokerAuthCampaign as () => Promise<AnyCampaign> },
    { name: "wssk", where: "host", defaultCount: 600, make: wsskCampaign as () => Promise<AnyCampaign> },
    { name: "update-reports", where: "host", defaultCount: 5000, make: reportsCampaign as () => Promise<AnyCampaign> },
    { name: "publish", where: "host", defaultCount: 2000, make: publishCampaign as () => Promise<AnyCampaign> },
    ...(
        [
            ["cbor", 3000],
            ["mqtt", 3000],
            ["cose", 1500],
            ["downlink", 1000],
            ["command", 1500],
            ["scram-first", 1500],
            ["scram-final", 1500],
            ["manifest", 2000],
            ["signed-manifest", 1000],
            ["root-document", 1500],
            ["key-list", 1500],
            ["slot-records", 150],
            ["state-record", 250],
            ["manifest-verify", 24],
        ] as const
    ).map(([name, defaultCount]) => ({ name, where: "device" as const, defaultCount })),
]

/** The entry of a campaign; throws for a name not in the table. */
export function campaignEntry(name: string): CampaignEntry {
    const entry = CAMPAIGNS.find(c => c.name === name)
    if (!entry) throw new Error(`no fuzz campaign ${name}`)
    return entry
}

/** How long each campaign of a run goes. */
export interface RunBudget {
    /** Inputs of each campaign, after its seeds; left out: its default count, or no limit when `seconds` is set. */
    counts?: (name: string) => number
    /** Seconds per campaign, whatever the count (0: no limit). */
    seconds: number
    seed: number
}

/**
 * Runs the campaigns named (host ones in this process, device ones in one simulator, both at once),
 * printing each campaign's problems and count line as it ends; resolves with every count.
 */
export async function runCampaigns(names: string[], budget: RunBudget, print: (line: string) => void): Promise<FuzzCounts[]> {
    const entries = names.map(campaignEntry)
    const unlimited = 1e9
    const countOf = (e: CampaignEntry) => budget.counts?.(e.name) ?? (budget.seconds > 0 ? unlimited : e.defaultCount)
    const ms = budget.seconds * 1000
    const device = entries.filter(e => e.where === "device").map(e => ({ name: e.name, count: countOf(e) }))
    const onDevice = device.length
        ? runDeviceCampaigns(device, budget.seed, ms, line => {
              if (line.startsWith("fuzz ")) print(line)
          })
        : Promise.resolve([])
    const host = (async () => {
        const out: FuzzCounts[] = []
        for (const e of entries.filter(e => e.where === "host"))
            out.push(await fuzzAndPrint(await e.make!(), { count: countOf(e), seed: budget.seed, ms }, print))
        return out
    })()
    const [hostCounts, deviceCounts] = await Promise.all([host, onDevice])
    return [...hostCounts, ...deviceCounts]
}

/**
 * For `npm run bench`: runs the default campaign (every campaign at its `npm test` count, seed 1) and
 * returns its count lines with each campaign's inputs per second.
 */
export async function defaultCampaignCounts(): Promise<string[]> {
    const counts = await runCampaigns(
        CAMPAIGNS.map(c => c.name),
        { seconds: 0, seed: 1 },
        () => {}
    )
    return counts.map(c => `${countLine(c)}, ${Math.round(c.inputs / Math.max(c.seconds, 0.001))} inputs/s`)
}
