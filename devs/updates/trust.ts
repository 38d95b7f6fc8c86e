/**
 * Who may sign firmware, after TUF's root role (k of n keys, each new root
 * signed by a threshold of the old one and of itself, TUF §5.3.4) and
 * Uptane's split between offline root keys and online signing keys:
 *
 *   root document = ["root", version, threshold k, root public key, …]
 *   key list      = ["keys", version, root version, release public key, …]
 *
 * (flat CBOR arrays in deterministic encoding, RFC 8949 §4.2.1: the device
 * reads them at depth 1, and a document is one short settings value).
 *
 * SLH-DSA-SHA2-128s keys throughout. The root keys stay offline and sign only
 * these two kinds of document; release keys sign firmware manifests. A device
 * carries root version 1 in its image (its trust anchor, src/update/trust-anchor.ts),
 * keeps the newest root it verified in flash, and takes:
 *
 * - root version v + 1 (and only that one: roots are walked one at a time)
 *   when k distinct keys of root v and k' distinct keys of the new root itself
 *   signed it;
 * - a key list only when it names the device's current root and k of that
 *   root's keys signed it, and only above the version it holds (its floor) for
 *   that root: a newer root resets the floor, so a key list forged with keys
 *   the new root dropped cannot hold devices at an inflated version;
 * - a manifest only when its signer (the kid in its protected header) is in
 *   the current key list: a release key is revoked by a key list without it.
 *
 * Every signature is a COSE_Sign1 of its own over the same payload
 * (./cose-sign1.ts): a device fetches and verifies them one at a time and
 * counts the distinct keys that verified. A document is refused outright for
 * a copy over another payload, a signer not in the root (or roots) that count,
 * a signer that signed twice, a signature that does not verify, or too few
 * signers. The update service applies the same rules when a document is
 * published (here), so the owner hears at once what devices would refuse.
 *
 * A device keeps each document as one settings value of at most 160 bytes,
 * MAC included (src/storage/settings.ts), so that one write replaces it whole:
 * 16 bytes of MAC and at most 16 bytes of CBOR besides the keys (array head,
 * the kind, two 32-bit numbers) leave room for three keys of 34 bytes (a
 * 32-byte key and its byte-string head), `MAX_KEYS`.
 */
import { encode } from "cbor2"
import {
    bstr,
    decodeCborItem,
    generateSigningKey,
    keyId,
    readCose,
    SignatureError,
    signCose,
    verifyCose,
    type SigningKey,
} from "./cose-sign1.ts"

/** The two documents, by the text in their field 1. */
export const ROOT_KIND = "root"
export const KEY_LIST_KIND = "keys"
export type TrustKind = typeof ROOT_KIND | typeof KEY_LIST_KIND

/** Settings value, MAC, and a document's CBOR besides its keys (see the module comment). */
const DEVICE_RECORD_BYTES = 160
const RECORD_MAC_BYTES = 16
const LARGEST_FRAME_BYTES = 16
const KEY_ENTRY_BYTES = 34
/** Most keys in a root or a key list: what a device keeps in one settings value (3). */
export const MAX_KEYS = Math.floor((DEVICE_RECORD_BYTES - RECORD_MAC_BYTES - LARGEST_FRAME_BYTES) / KEY_ENTRY_BYTES)
const PUBLIC_KEY_BYTES = 32
const MAX_VERSION = 0xffffffff

/** A root: the keys that sign roots and key lists, and how many of them must. */
export interface RootDocument {
    version: number
    threshold: number
    keys: Uint8Array[]
}

/** The release keys that may sign manifests under one root. */
export interface KeyList {
    version: number
    rootVersion: number
    keys: Uint8Array[]
}

/** Why a trust document or a manifest's signer was refused: the reasons the device logs. */
export class TrustError extends SignatureError {
    constructor(
        readonly reason: "malformed" | "signers" | "rollback" | "untrusted-key",
        message: string
    ) {
        super(message)
        this.name = "TrustError"
    }
}

function encodeDocument(kind: TrustKind, version: number, third: number, keys: Uint8Array[]): Buffer {
    return Buffer.from(encode([kind, version, third, ...keys.map(bstr)], { cde: true }))
}

/** A root document's payload (deterministic CBOR). Throws `TrustError` for one a device would refuse. */
export function encodeRoot(root: RootDocument): Buffer {
    const payload = encodeDocument(ROOT_KIND, root.version, root.threshold, root.keys)
    decodeRoot(payload)
    return payload
}

/** A key list's payload (deterministic CBOR). Throws `TrustError` for one a device would refuse. */
export function encodeKeyList(list: KeyList): Buffer {
    const payload = encodeDocument(KEY_LIST_KIND, list.version, list.rootVersion, list.keys)
    decodeKeyList(payload)
    return payload
}

function uint(v: unknown, what: string, min: number, max: number): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
        throw new TrustError("malformed", `${what} must be ${min}..${max}`)
    return v
}

function decodeDocument(payload: Uint8Array, kind: TrustKind): { version: number; third: unknown; keys: Uint8Array[] } {
    let a: unknown
    try {
        a = decodeCborItem(payload, `${kind} document`)
    } catch (e) {
        throw new TrustError("malformed", (e as Error).message)
    }
    if (!Array.isArray(a) || a[0] !== kind) throw new TrustError("malformed", `not a ${kind} document`)
    const keys = a.slice(3)
    if (keys.length < 1 || keys.length > MAX_KEYS) throw new TrustError("malformed", `a ${kind} document names 1..${MAX_KEYS} keys`)
    const hex = new Set<string>()
    for (const k of keys) {
        if (!(k instanceof Uint8Array) || k.length !== PUBLIC_KEY_BYTES) throw new TrustError("malformed", "keys must be 32 bytes")
        hex.add(Buffer.from(k).toString("hex"))
    }
    if (hex.size !== keys.length) throw new TrustError("malformed", `a ${kind} document names a key twice`)
    return { version: uint(a[1], "version", 1, MAX_VERSION), third: a[2], keys: keys as Uint8Array[] }
}

/** Reads a root document's payload. Throws `TrustError`. */
export function decodeRoot(payload: Uint8Array): RootDocument {
    const { version, third, keys } = decodeDocument(payload, ROOT_KIND)
    return { version, threshold: uint(third, "threshold", 1, keys.length), keys }
}

/** Reads a key list's payload. Throws `TrustError`. */
export function decodeKeyList(payload: Uint8Array): KeyList {
    const { version, third, keys } = decodeDocument(payload, KEY_LIST_KIND)
    return { version, rootVersion: uint(third, "root version", 1, MAX_VERSION), keys }
}

/** Signs a document with each key: one COSE_Sign1 per key, in order. */
export function signDocument(payload: Uint8Array, keys: SigningKey[]): Buffer[] {
    return keys.map(key => signCose(payload, key))
}

/** A set of keys and how many of them must sign. */
export interface Signers {
    keys: Uint8Array[]
    threshold: number
}

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
    return Buffer.from(a).equals(Buffer.from(b))
}

/**
 * Checks the copies of one document: the same payload in each, every signer a
 * key of some group in `groupsOf(payload)`, no key twice, every signature
 * valid, and each group's threshold met by distinct keys. Returns the payload.
 * Throws `TrustError`.
 */
export function checkSigners(copies: Uint8Array[], groupsOf: (payload: Buffer) => Signers[]): Buffer {
    if (copies.length === 0) throw new TrustError("signers", "no signature")
    let payload: Buffer | undefined
    let groups: Signers[] = []
    const signed: Uint8Array[] = []
    for (const copy of copies) {
        let parts
        try {
            parts = readCose(copy)
        } catch (e) {
            throw new TrustError("malformed", (e as Error).message)
        }
        if (!payload) {
            payload = parts.payload
            groups = groupsOf(payload)
        } else if (!payload.equals(parts.payload)) throw new TrustError("malformed", "signatures over different documents")
        const key = groups.flatMap(g => g.keys).find(k => keyId(k).equals(parts.kid))
        if (!key) throw new TrustError("signers", `signer ${parts.kid.toString("hex")} is not a key that counts`)
        if (signed.some(k => sameKey(k, key))) throw new TrustError("signers", `signer ${parts.kid.toString("hex")} signed twice`)
        if (!verifyCose(parts, key)) throw new TrustError("signers", `signature by ${parts.kid.toString("hex")} does not verify`)
        signed.push(key)
    }
    for (const g of groups) {
        const count = g.keys.filter(k => signed.some(s => sameKey(s, k))).length
        if (count < g.threshold) throw new TrustError("signers", `${count} of the ${g.threshold} signatures needed`)
    }
    return payload!
}

/**
 * The chain of roots and key lists the update service holds, each checked
 * with the rules devices apply. Root version 1 is taken on first publication
 * when its own threshold signed it (devices carry it in their image instead).
 */
export class TrustChain {
    private readonly roots: RootDocument[] = []
    private readonly lists: KeyList[] = []

    /** The newest root, if any. */
    get root(): RootDocument | undefined {
        return this.roots[this.roots.length - 1]
    }

    /** The newest key list, if any. */
    get keyList(): KeyList | undefined {
        return this.lists[this.lists.length - 1]
    }

    /** Checks and takes the next root. Throws `TrustError`. */
    acceptRoot(copies: Uint8Array[]): RootDocument {
        const current = this.root
        let next: RootDocument | undefined
        checkSigners(copies, payload => {
            next = decodeRoot(payload)
            const expected = (current?.version ?? 0) + 1
            if (next.version !== expected) throw new TrustError("rollback", `root version ${next.version} is not the next one, ${expected}`)
            return current ? [current, next] : [next]
        })
        this.roots.push(next!)
        return next!
    }

    /** Checks and takes a key list for the current root, above the one held. Throws `TrustError`. */
    acceptKeyList(copies: Uint8Array[]): KeyList {
        const root = this.root
        if (!root) throw new TrustError("signers", "no root yet")
        const held = this.keyList
        let list: KeyList | undefined
        checkSigners(copies, payload => {
            list = decodeKeyList(payload)
            if (list.rootVersion !== root.version)
                throw new TrustError(
                    "rollback",
                    `key list ${list.version} is for root ${list.rootVersion}, not the current root ${root.version}`
                )
            if (held && held.rootVersion === root.version && list.version <= held.version)
                throw new TrustError("rollback", `key list ${list.version} is not above the floor ${held.version}`)
            return [root]
        })
        this.lists.push(list!)
        return list!
    }

    /** The current release key with this kid: in the newest key list, which names the newest root. */
    releaseKey(kid: Uint8Array): Uint8Array | undefined {
        const list = this.keyList
        if (!list || list.rootVersion !== this.root?.version) return undefined
        return list.keys.find(k => keyId(k).equals(Buffer.from(kid)))
    }

    /** A release key with this kid in any key list ever taken (to check a stored image has not changed since it was signed). */
    anyReleaseKey(kid: Uint8Array): Uint8Array | undefined {
        return this.lists.flatMap(l => l.keys).find(k => keyId(k).equals(Buffer.from(kid)))
    }
}

/**
 * The smallest chain under which `releaseKeys` sign: a root of one fresh key (threshold 1) and key list 1
 * naming them, each with its one signature, in the order a service takes them. For tools and campaigns that
 * need a service that accepts manifests and have no owner's keyring; the root key is thrown away.
 */
export function singleKeyTrust(releaseKeys: Uint8Array[]): { kind: TrustKind; copies: Buffer[] }[] {
    const rootKey = generateSigningKey()
    const root = encodeRoot({ version: 1, threshold: 1, keys: [rootKey.publicKey] })
    const list = encodeKeyList({ version: 1, rootVersion: 1, keys: releaseKeys })
    return [
        { kind: ROOT_KIND, copies: [signCose(root, rootKey)] },
        { kind: KEY_LIST_KIND, copies: [signCose(list, rootKey)] },
    ]
}
