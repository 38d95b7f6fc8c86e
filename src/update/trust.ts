/**
 * Who may sign firmware, as the device keeps it (after TUF's root role and
 * Uptane's offline root; devs/updates/trust.ts tells the whole story and
 * applies the same rules on the host). Two documents, each a CBOR array:
 *
 *   root document = ["root", version, threshold k, root public key, …]
 *   key list      = ["keys", version, root version, release public key, …]
 *
 * The image carries a root (its trust anchor, `trust-anchor.ts`); the newest
 * root verified since is a record in flash (`SettingKey.TrustRoot`), and so is
 * the key list (`SettingKey.KeyList`), whose version is the floor below which
 * no key list is taken again for that root (`updater.ts` keeps them). Each
 * record is the document's payload with a MAC (`SlotStore`), written in one
 * settings write once every signature it needs has verified: a power cut
 * leaves the old root or list in force, never half of a new one.
 *
 * Every signature is a COSE_Sign1 of its own over the same payload
 * (`manifest.ts`), fetched and verified one at a time (one 7,856-byte
 * signature in RAM) until each group of keys that must sign has its threshold
 * of distinct signers: a new root needs the threshold of the root it replaces
 * and its own; a key list, its root's; a manifest, one key of the key list.
 * A copy over another payload, a signer that does not count or signs twice,
 * a signature that does not verify, or running out of copies refuses it.
 */
import { constantTimeEqual } from "../bytes/constant-time"
import { CborValue, decodeCbor } from "../codec/cbor"
import { keyId, ManifestError, SignedParts, verifySignature } from "./manifest"

/** A root document or key list, read; also any set of keys of which `n` must sign. */
export interface TrustDocument {
    version: number
    /** A root's threshold; a key list's root version (it counts only under that root). */
    n: number
    keys: Buffer[]
}

/** Most keys in a document: what one settings value holds (devs/updates/trust.ts derives it). */
export const MAX_TRUST_KEYS = 3

/** Where signed documents come from: the one at /v1/`path`, decoded; undefined when there is none. */
export interface SignedSource {
    fetchSigned(path: string): Promise<SignedParts>
}

/** Reads a root document (`kind` "root") or key list ("keys") payload. Throws `ManifestError("malformed")`. */
export function decodeTrust(payload: Buffer, kind: string): TrustDocument {
    let a: CborValue = undefined
    try {
        a = decodeCbor(payload, { maxBytes: 144, maxDepth: 1, maxItems: 8 })
    } catch (e: any) {
        // refused below
    }
    const d = Array.isArray(a) ? a : []
    const keys = d.slice(3) as Buffer[]
    // the kind, two whole numbers 1..2^32-1, then 1..3 distinct keys: the rules the owner's tools apply (devs/updates/trust.ts)
    let ok = d[0] === kind && keys.length >= 1 && keys.length <= MAX_TRUST_KEYS
    for (let i = 1; i < d.length; ++i) {
        const v = d[i] as any
        ok =
            ok &&
            (i < 3
                ? typeof v === "number" && v >= 1 && v <= 4294967295 && v === Math.floor(v)
                : v instanceof Buffer && v.length === 32 && !holds(keys.slice(0, i - 3), v))
    }
    const n = d[2] as number
    // a root's threshold is at most its keys
    if (!ok || (kind === "root" && n > keys.length)) throw new ManifestError("malformed", "bad root or key list")
    return { version: d[1] as number, n, keys }
}

function holds(keys: Buffer[], key: Buffer): boolean {
    for (const k of keys) if (constantTimeEqual(k, key)) return true
    return false
}

/**
 * Fetches and verifies one copy (from `path`: none when undefined), in a frame
 * of its own (its signature is garbage once this returns), and returns its
 * payload. The first copy, before it is verified, completes the groups that
 * must sign, which start as [`signers`]: a root (`kind` "root") must be the
 * next version after `signers` and signs too; a key list ("keys") must name
 * the root `signers` and be above `floor`; a manifest (kind "") needs one of `signers`.
 */
async function verifyCopy(source: SignedSource, path: string, kind: string, groups: TrustDocument[], signed: Buffer[], floor: number) {
    const first = signed.length === 0
    const copy = path === undefined ? undefined : await source.fetchSigned(path)
    if (!copy) throw new ManifestError("signers", first ? "not published" : "too few signatures")
    const signers = groups[0]
    if (first && kind !== "") {
        const d = decodeTrust(copy.payload, kind)
        if (kind === "root") groups.push(d)
        if (kind === "root" ? d.version !== signers.version + 1 : d.n !== signers.version || d.version <= floor)
            throw new ManifestError("rollback", "not the next version")
    }
    let key: Buffer = undefined
    for (const g of groups) for (const k of g.keys) if (constantTimeEqual(keyId(k), copy.kid)) key = k
    // a key that is not in the groups, or that signed already, counts for nothing
    if (!key || holds(signed, key)) throw new ManifestError("signers", `signer ${copy.kid.toString("hex")} does not count`)
    if (!(await verifySignature(copy, key))) throw new ManifestError("bad-signature", "a signature does not verify")
    signed.push(key)
    return copy.payload
}

/**
 * Verifies copies of a document (see `verifyCopy` for `kind`, `signers` and
 * `floor`), all over the same payload, until every group has its threshold of
 * distinct signers; returns the payload. A manifest is the one copy at `path`;
 * a root's or key list's n-th copy is at `path` + n. Throws `ManifestError`.
 */
export async function verifyThreshold(
    source: SignedSource,
    path: string,
    kind: string,
    signers: TrustDocument,
    floor: number
): Promise<Buffer> {
    const groups = [signers]
    const signed: Buffer[] = []
    let payload: Buffer = undefined
    for (let n = 0; ; ++n) {
        let met = n > 0
        for (const g of groups) {
            let k = 0
            for (const s of signed) if (holds(g.keys, s)) k++
            met = met && k >= g.n
        }
        if (met) return payload
        const p = await verifyCopy(source, kind !== "" ? path + n : n === 0 ? path : undefined, kind, groups, signed, floor)
        if (n === 0) payload = p
        else if (!constantTimeEqual(payload, p)) throw new ManifestError("malformed", "signatures over different documents")
    }
}
