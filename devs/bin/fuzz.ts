/**
 * `npm run fuzz`: longer fuzz campaigns than `npm test` runs, on the host
 * (in this process) and on the simulated device (in one simulator), both at
 * once (devs/fuzz/campaigns.ts). Prints each campaign's problems and count
 * line; exits 1 if any campaign crashed, accepted what it must not, or
 * refused a valid input.
 *
 *   npm run fuzz -- [--count N | --seconds S] [--seed N] [--list] [campaign…]
 */
import { randomInt } from "node:crypto"
import { runCommand, UsageError } from "../cli/args.ts"
import { CAMPAIGNS, runCampaigns } from "../fuzz/campaigns.ts"

const spec = {
    name: "fuzz",
    summary: "Fuzzes every parser (or those named) for longer than npm test: seeded mutations of valid inputs plus random bytes.",
    positionals: { usage: "[campaign…]", min: 0, max: Infinity },
    options: {
        count: { type: "string", value: "n", help: "inputs per campaign after its seeds (default: ten times its npm test count)" },
        seconds: { type: "string", value: "s", help: "seconds per campaign instead of a count" },
        seed: {
            type: "string",
            value: "n",
            defaultText: "a random one, printed",
            help: "the fuzzer's seed: the same seed replays the same inputs",
        },
        list: { type: "boolean", help: "list the campaigns, where they run and their npm test counts" },
    },
    notes: [
        "Example: npm run fuzz -- --seconds 60 cbor mqtt registry",
        "Device campaigns run in one simulator after another; a generated module (test/device/fixtures/generated) configures",
        "them, so run one npm run fuzz at a time in a checkout.",
    ],
} as const

/** A whole number from the command line. */
function whole(option: string, text: string | undefined, max: number): number | undefined {
    if (text === undefined) return undefined
    const n = /^\d{1,10}$/.test(text) ? Number(text) : NaN
    if (!(n >= 1 && n <= max)) throw new UsageError(`${option} must be a whole number 1..${max}, not ${JSON.stringify(text)}`)
    return n
}

await runCommand(spec, async ({ values, positionals }) => {
    if (values.list) {
        for (const c of CAMPAIGNS) console.log(`${c.name.padEnd(16)} ${c.where.padEnd(7)} ${c.defaultCount}`)
        return
    }
    const count = whole("--count", values.count, 100_000_000)
    const seconds = whole("--seconds", values.seconds, 86_400)
    if (count !== undefined && seconds !== undefined) throw new UsageError("--count and --seconds exclude each other")
    const seed = whole("--seed", values.seed, 0xffffffff) ?? randomInt(1, 0x7fffffff)
    const unknown = positionals.filter(p => !CAMPAIGNS.some(c => c.name === p))
    if (unknown.length) throw new UsageError(`no campaign ${unknown.join(", ")}: ${CAMPAIGNS.map(c => c.name).join(" ")}`)
    const names = positionals.length ? positionals : CAMPAIGNS.map(c => c.name)
    const perCampaign = (name: string) => count ?? 10 * CAMPAIGNS.find(c => c.name === name)!.defaultCount
    console.log(`fuzzing ${names.length} campaigns, seed ${seed}, ${seconds ? `${seconds} s` : "count"} each`)
    const results = await runCampaigns(names, { counts: seconds ? undefined : perCampaign, seconds: seconds ?? 0, seed }, line =>
        console.log(line)
    )
    const missing = names.filter(n => !results.some(r => r.name === n))
    const failed = results.filter(r => r.crashes + r.invalid + r.seedsRefused > 0)
    if (missing.length) console.log(`no count from: ${missing.join(", ")}`)
    const named = failed.length ? `: ${failed.map(f => f.name).join(", ")}` : ""
    console.log(`${results.length} campaigns, ${failed.length} with problems${named}; seed ${seed}`)
    process.exitCode = failed.length || missing.length ? 1 : 0
})
