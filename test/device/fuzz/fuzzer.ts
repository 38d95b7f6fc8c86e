/**
 * A small seeded fuzzer for the device's parsers, in the VM (not a suite itself).
 *
 * A campaign is a parser with its valid inputs (seeds) and its oracle. The
 * fuzzer feeds it every seed first, each of which must be accepted (an
 * oracle that refuses everything proves nothing), then `count` inputs: one in
 * eight random bytes, the others a seed with one to four mutations (a bit
 * flipped, a byte set to a random or a boundary value, bytes inserted,
 * deleted or duplicated, the input cut short, a slice of another seed
 * spliced in). The same seed gives the same inputs, so a failure can be
 * replayed from its printed seed.
 *
 * The oracle says, for one input, whether the parser refused it (with the
 * error class it documents), accepted it rightly, or accepted what it must
 * not (`{ invalid: why }`: something forged, altered, replayed or malformed
 * taken for valid). Anything else it throws is a crash. Each input
 * ends with `await ds.sleep(0)`: the VM panics a fiber that runs about 128K
 * steps without yielding, and an await of a resolved promise does not yield.
 *
 * Numbers here are whole: the runtime treats a fractional number computed at
 * run time as false, so nothing fractional reaches a condition.
 */
import * as ds from "@devicescript/core"

/** xorshift32 (Marsaglia 2003): small, whole numbers only, and the same sequence for the same seed. */
export class Rng {
    private state: number

    constructor(seed: number) {
        this.state = (seed ^ 0x2545f491) >>> 0
        if (this.state === 0) this.state = 1
    }

    /** The next number, 0..2^32-1. */
    next(): number {
        let x = this.state
        x ^= x << 13
        x ^= x >>> 17
        x ^= x << 5
        this.state = x >>> 0
        return this.state
    }

    /** A number 0..n-1 (n ≥ 1). The VM's `%` works on 32-bit signed integers: 31 bits keep it exact. */
    below(n: number): number {
        return (this.next() >>> 1) % n
    }

    /** A random buffer of `length` bytes. */
    bytes(length: number): Buffer {
        const b = Buffer.alloc(length)
        for (let i = 0; i < length; ++i) b[i] = this.below(256)
        return b
    }
}

/** Bytes that sit on boundaries of the formats fuzzed: CBOR heads (0x17..0x1b, 0x1f), lengths, signs. */
const BOUNDARY_BYTES = [
    0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x3f, 0x40, 0x5f, 0x7f, 0x80, 0x9f, 0xa0, 0xc0, 0xf4, 0xf9, 0xff,
]

/** `b` with `removed` bytes at `at` replaced by `inserted`, in one allocation (an 8 KB input leaves little heap for more). */
function spliced(b: Buffer, at: number, removed: number, inserted: Buffer): Buffer {
    const out = Buffer.alloc(b.length - removed + inserted.length)
    out.blitAt(0, b, 0, at)
    out.blitAt(at, inserted, 0, inserted.length)
    out.blitAt(at + inserted.length, b, at + removed, b.length - at - removed)
    return out
}

/** One to four mutations of `input` (never changed itself); `other` is a second seed to splice from. */
export function mutate(rng: Rng, input: Buffer, other: Buffer, maxBytes: number): Buffer {
    let b = input
    let copied = false
    // a large input (a signed manifest is 8 KB of a 64 KB heap) takes one mutation: each may copy it
    const rounds = input.length > 1024 ? 1 : 1 + rng.below(4)
    for (let r = 0; r < rounds; ++r) {
        const at = b.length === 0 ? 0 : rng.below(b.length)
        const kind = b.length === 0 ? 0 : rng.below(9)
        if (kind === 0) b = spliced(b, at, 0, rng.bytes(1 + rng.below(4)))
        else if (kind === 4) b = spliced(b, at, 1 + rng.below(Math.min(8, b.length - at)), Buffer.alloc(0))
        else if (kind === 5) b = b.slice(0, at)
        else if (kind === 6) b = spliced(b, at, 0, b.slice(at, at + 1 + rng.below(Math.min(16, b.length - at))))
        else if (kind === 7 && other.length > 0) {
            const from = rng.below(other.length)
            b = spliced(b, at, 0, other.slice(from, from + 1 + rng.below(Math.min(32, other.length - from))))
        } else {
            if (b === input && !copied) {
                b = input.slice(0, input.length)
                copied = true
            }
            if (kind === 1) b[at] ^= 1 << rng.below(8)
            else if (kind === 2) b[at] = rng.below(256)
            else if (kind === 3) b[at] = BOUNDARY_BYTES[rng.below(BOUNDARY_BYTES.length)]
            else b[at] = (b[at] + (rng.below(2) === 0 ? 1 : 255)) & 0xff
        }
    }
    return b.length > maxBytes ? b.slice(0, maxBytes) : b
}

/** What an oracle says of one input. */
export type Verdict = "refused" | "accepted" | { invalid: string }

/** A parser under fuzzing. */
export interface Campaign {
    /** Its name in the count line: `fuzz <name>: …`. */
    name: string
    /** Valid inputs; each must be accepted. */
    seeds: Buffer[]
    /** Longest input generated. */
    maxBytes: number
    /** The oracle: parses `input`, returns the verdict; what it lets escape is a crash. */
    check(input: Buffer): Promise<Verdict>
}

/** How long a campaign runs. */
export interface FuzzBudget {
    /** Inputs after the seeds. */
    count: number
    seed: number
    /** Stop earlier once this many milliseconds have passed (0: no limit). */
    ms?: number
}

/** What a campaign came to. */
export interface FuzzCounts {
    name: string
    /** Inputs fed, seeds included. */
    inputs: number
    crashes: number
    /** Wrong acceptances. */
    invalid: number
    /** Seeds the parser refused (each one is a failure: the oracle would be vacuous). */
    seedsRefused: number
    accepted: number
}

/** Longest random input: filling one costs about ten VM steps a byte, and a fiber has about 128K between yields. */
const MAX_RANDOM_BYTES = 512

/** At most this many problems are printed in full per campaign. */
const PRINTED_PROBLEMS = 3

function shown(input: Buffer): string {
    return `${input.length} bytes ${input.length > 64 ? input.slice(0, 64).toString("hex") + "…" : input.toString("hex")}`
}

function report(counts: FuzzCounts, what: string, input: Buffer, why: string) {
    if (counts.crashes + counts.invalid + counts.seedsRefused > PRINTED_PROBLEMS) return
    console.log(`fuzz ${counts.name}: ${what} on ${shown(input)}: ${why}`)
}

/** Feeds the seeds, then the budget's inputs; prints and returns the counts. */
export async function runCampaign(c: Campaign, budget: FuzzBudget): Promise<FuzzCounts> {
    const counts: FuzzCounts = { name: c.name, inputs: 0, crashes: 0, invalid: 0, seedsRefused: 0, accepted: 0 }
    const rng = new Rng(budget.seed)
    const started = ds.millis()
    const total = c.seeds.length + budget.count
    for (let i = 0; i < total; ++i) {
        const isSeed = i < c.seeds.length
        let input: Buffer
        if (isSeed) input = c.seeds[i]
        else if (rng.below(8) === 0) input = rng.bytes(rng.below(Math.min(c.maxBytes, MAX_RANDOM_BYTES) + 1))
        else input = mutate(rng, c.seeds[rng.below(c.seeds.length)], c.seeds[rng.below(c.seeds.length)], c.maxBytes)
        counts.inputs++
        try {
            const verdict = await c.check(input)
            if (verdict === "accepted") counts.accepted++
            else if (verdict !== "refused") {
                counts.invalid++
                report(counts, "invalid accepted", input, (verdict as any).invalid)
            } else if (isSeed) {
                counts.seedsRefused++
                report(counts, "seed refused", input, "a valid input was refused")
            }
        } catch (e: any) {
            counts.crashes++
            report(counts, "crash", input, e instanceof Error ? `${e.name}: ${e.message}` : `${e}`)
        }
        await ds.sleep(0)
        const ms = budget.ms === undefined ? 0 : budget.ms
        if (ms > 0 && !isSeed && ds.millis() - started > ms) break
    }
    const seconds = Math.round((ds.millis() - started) / 100) / 10
    // one template literal per part: the compiler asserts on a long one
    const line = `fuzz ${c.name}: ${counts.inputs} inputs, ${counts.crashes} crashes, ${counts.invalid} invalid accepted`
    const detail = `${counts.accepted} accepted, ${counts.seedsRefused} seeds refused, seed ${budget.seed}, ${seconds} s on the VM`
    console.log(`${line} (${detail})`)
    return counts
}
