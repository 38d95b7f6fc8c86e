/**
 * Mutations of JSON values, for the services' hostile bodies and reports: a
 * value somewhere in the tree replaced by a hostile one (another type, a
 * huge or control-laden string, a deep nest, a number JSON cannot hold
 * exactly, a `__proto__` key) or by a part of another seed, a key removed or
 * added, a string edited byte-wise.
 */
import { mutate, type Rng } from "./fuzzer.ts"

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** Values that break what a parser takes for granted. Parsed from text, so `__proto__` is an own key. */
const HOSTILE: Json[] = JSON.parse(`[
    null, true, false, 0, -1, 1.5, 1e308, -1e308, 9007199254740993, 4096, 100001, "",
    " ", "\\n", "\\u0000", "a\\r\\nb", "\\u202e", "../../etc/passwd", "%00", "=2C", "n,,n=x,r=y",
    [], {}, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    {"__proto__": {"polluted": true}}, {"constructor": {"prototype": {"polluted": true}}},
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
]`)
const LONG_STRING = "A".repeat(5000)
const KEYS = ["__proto__", "constructor", "toString", "id", "scram", "claim", "owner", "code", "update", "wssk", "approve", "x"]

/** A deep copy. */
function copy(v: Json): Json {
    return v === null || typeof v !== "object" ? v : JSON.parse(JSON.stringify(v))
}

/** Every container in `v` with the keys or indexes of its members, and `v`'s own slot. */
function slots(v: Json, out: { parent: Json[] | { [key: string]: Json }; key: string | number }[] = []) {
    if (Array.isArray(v))
        v.forEach((item, i) => {
            out.push({ parent: v, key: i })
            slots(item, out)
        })
    else if (v !== null && typeof v === "object")
        for (const key of Object.keys(v)) {
            out.push({ parent: v, key })
            slots(v[key], out)
        }
    return out
}

function hostileValue(rng: Rng, other: Json): Json {
    const r = rng.below(10)
    if (r === 0) return LONG_STRING
    if (r === 1) {
        const parts = slots(other)
        if (!parts.length) return copy(other)
        const { parent, key } = rng.pick(parts)
        return copy((parent as Record<string, Json>)[key as string] ?? null)
    }
    if (r === 2) return rng.bytes(1 + rng.below(40)).toString("latin1")
    return copy(rng.pick(HOSTILE))
}

/** One to three mutations of a copy of `seed`; `other` is a second seed to take parts from. */
export function mutateJson(rng: Rng, seed: Json, other: Json): Json {
    let root = copy(seed)
    const rounds = 1 + rng.below(3)
    for (let r = 0; r < rounds; ++r) {
        const places = slots(root)
        if (!places.length || rng.below(12) === 0) {
            root = hostileValue(rng, other)
            continue
        }
        const { parent, key } = rng.pick(places)
        const current = (parent as Record<string, Json>)[key as string]
        const kind = rng.below(5)
        if (kind === 0 && !Array.isArray(parent)) delete (parent as Record<string, Json>)[key as string]
        else if (kind === 1 && !Array.isArray(parent))
            // defineProperty: an own key even when it is __proto__, as JSON.parse makes it
            Object.defineProperty(parent, rng.pick(KEYS), {
                value: hostileValue(rng, other),
                enumerable: true,
                configurable: true,
                writable: true,
            })
        else if (kind === 2 && typeof current === "string") {
            const edited = mutate(rng, Buffer.from(current, "utf8"), Buffer.from(JSON.stringify(other)), 8192)
            ;(parent as Record<string, Json>)[key as string] = edited.toString(rng.below(2) ? "utf8" : "latin1")
        } else (parent as Record<string, Json>)[key as string] = hostileValue(rng, other)
    }
    return root
}
