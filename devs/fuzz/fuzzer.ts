/**
 * The host's seeded fuzzer, the twin of the device's (test/device/fuzz/fuzzer.ts):
 * a campaign is a target with valid inputs (seeds) and an oracle; every seed
 * is fed first and must be accepted, then inputs that are random (one in
 * eight) or a seed with one to four mutations. The same seed gives the same
 * inputs, so a failure replays from the seed it prints.
 *
 * The oracle returns, for one input, whether the target refused it as it
 * documents, accepted it rightly, or accepted what it must not
 * (`{ invalid: why }`: something forged, altered, replayed or malformed
 * taken for valid, or a state left broken); what it throws is a crash.
 * Each campaign prints
 * `fuzz <name>: N inputs, N crashes, N invalid accepted (…)`, the line
 * `npm test` and `npm run fuzz` show.
 */

/** xorshift32 (Marsaglia 2003), as on the device. */
export class Rng {
    private state: number

    constructor(seed: number) {
        this.state = (seed ^ 0x2545f491) >>> 0 || 1
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

    /** A number 0..n-1 (n ≥ 1). */
    below(n: number): number {
        return (this.next() >>> 1) % n
    }

    /** One of `items`. */
    pick<T>(items: readonly T[]): T {
        return items[this.below(items.length)]
    }

    /** `length` random bytes. */
    bytes(length: number): Buffer {
        const b = Buffer.alloc(length)
        for (let i = 0; i < length; ++i) b[i] = this.below(256)
        return b
    }
}

/** Bytes on the boundaries of the formats fuzzed: CBOR heads, lengths, signs, JSON and HTTP punctuation. */
const BOUNDARY_BYTES = [0x00, 0x01, 0x0a, 0x0d, 0x17, 0x18, 0x1b, 0x1f, 0x20, 0x22, 0x2c, 0x3d, 0x5c, 0x7b, 0x7f, 0x80, 0xc0, 0xf9, 0xff]

/** One to four mutations of a copy of `input`: bits, bytes, insertions, deletions, cuts, duplicates, a splice of `other`. */
export function mutate(rng: Rng, input: Buffer, other: Buffer, maxBytes: number): Buffer {
    let b = Buffer.from(input)
    const rounds = 1 + rng.below(4)
    for (let r = 0; r < rounds; ++r) {
        const at = b.length === 0 ? 0 : rng.below(b.length)
        const kind = b.length === 0 ? 0 : rng.below(9)
        if (kind === 0) b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.below(4)), b.subarray(at)])
        else if (kind === 1) b[at] ^= 1 << rng.below(8)
        else if (kind === 2) b[at] = rng.below(256)
        else if (kind === 3) b[at] = rng.pick(BOUNDARY_BYTES)
        else if (kind === 4) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.below(8))])
        else if (kind === 5) b = b.subarray(0, at)
        else if (kind === 6) b = Buffer.concat([b.subarray(0, at + 1 + rng.below(16)), b.subarray(at)])
        else if (kind === 7 && other.length > 0) {
            const from = rng.below(other.length)
            b = Buffer.concat([b.subarray(0, at), other.subarray(from, from + 1 + rng.below(32)), b.subarray(at)])
        } else b[at] = (b[at] + (rng.below(2) ? 1 : 255)) & 0xff
    }
    return Buffer.from(b.subarray(0, maxBytes))
}

/** What an oracle says of one input. */
export type Verdict = "refused" | "accepted" | { invalid: string }

/** A target under fuzzing, with inputs of type `I`. */
export interface Campaign<I = Buffer> {
    /** Its name in the count line. */
    name: string
    /** Valid inputs; each must be accepted. */
    seeds: I[]
    /** A random input. */
    random(rng: Rng): I
    /** A mutation of a seed (`other` is a second seed, to splice from). */
    mutate(rng: Rng, seed: I, other: I): I
    /** The oracle. */
    check(input: I): Promise<Verdict>
    /** How an input is shown when it crashes or is wrongly accepted. */
    show?(input: I): string
    /** Runs after the inputs: a check of the state left behind (a store, a server still serving); returns what is wrong. */
    after?(): Promise<string[]>
    /** Frees what the campaign holds (servers, files). */
    close?(): Promise<void>
}

/** How long a campaign runs. */
export interface FuzzBudget {
    /** Inputs after the seeds. */
    count: number
    seed: number
    /** Stop once this many milliseconds have passed, whatever the count (0: no limit). */
    ms?: number
}

/** What a campaign came to. */
export interface FuzzCounts {
    name: string
    /** Inputs fed, seeds included. */
    inputs: number
    crashes: number
    invalid: number
    seedsRefused: number
    accepted: number
    /** Problems, the first few in full: crashes, wrong acceptances, refused seeds, and what `after` found. */
    problems: string[]
    seconds: number
    seed: number
}

const SHOWN_PROBLEMS = 5

/** The line every campaign ends with. */
export function countLine(c: FuzzCounts): string {
    const detail = `${c.accepted} accepted, ${c.seedsRefused} seeds refused, seed ${c.seed}, ${c.seconds.toFixed(1)} s`
    return `fuzz ${c.name}: ${c.inputs} inputs, ${c.crashes} crashes, ${c.invalid} invalid accepted (${detail})`
}

function defaultShow(input: unknown): string {
    if (Buffer.isBuffer(input)) return `${input.length} bytes ${input.subarray(0, 64).toString("hex")}${input.length > 64 ? "…" : ""}`
    const text = JSON.stringify(input) ?? String(input)
    return text.length > 200 ? text.slice(0, 200) + "…" : text
}

/** Feeds the seeds, then the budget's inputs; runs the campaign's `after` check and closes it. */
export async function runCampaign<I>(c: Campaign<I>, budget: FuzzBudget): Promise<FuzzCounts> {
    const counts: FuzzCounts = {
        name: c.name,
        inputs: 0,
        crashes: 0,
        invalid: 0,
        seedsRefused: 0,
        accepted: 0,
        problems: [],
        seconds: 0,
        seed: budget.seed,
    }
    const rng = new Rng(budget.seed)
    const started = Date.now()
    const show = c.show ?? defaultShow
    const problem = (what: string, input: I, why: string) => {
        if (counts.problems.length < SHOWN_PROBLEMS) counts.problems.push(`${what} on ${show(input)}: ${why}`)
    }
    try {
        const total = c.seeds.length + budget.count
        for (let i = 0; i < total; ++i) {
            const isSeed = i < c.seeds.length
            if (!isSeed && budget.ms && Date.now() - started > budget.ms) break
            const input = isSeed ? c.seeds[i] : rng.below(8) === 0 ? c.random(rng) : c.mutate(rng, rng.pick(c.seeds), rng.pick(c.seeds))
            counts.inputs++
            try {
                const verdict = await c.check(input)
                if (verdict === "accepted") counts.accepted++
                else if (verdict !== "refused") {
                    counts.invalid++
                    problem("invalid accepted", input, verdict.invalid)
                } else if (isSeed) {
                    counts.seedsRefused++
                    problem("seed refused", input, "a valid input was refused")
                }
            } catch (e) {
                counts.crashes++
                problem("crash", input, e instanceof Error ? `${e.name}: ${e.message}` : String(e))
            }
        }
        for (const wrong of (await c.after?.()) ?? []) {
            counts.invalid++
            if (counts.problems.length < SHOWN_PROBLEMS) counts.problems.push(`after the inputs: ${wrong}`)
        }
    } finally {
        await c.close?.()
    }
    counts.seconds = (Date.now() - started) / 1000
    return counts
}

/** Runs a campaign and prints its problems and its count line. */
export async function fuzzAndPrint<I>(
    c: Campaign<I>,
    budget: FuzzBudget,
    print = (line: string) => console.log(line)
): Promise<FuzzCounts> {
    const counts = await runCampaign(c, budget)
    for (const p of counts.problems) print(`fuzz ${c.name}: ${p}`)
    print(countLine(counts))
    return counts
}
