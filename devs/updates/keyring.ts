/**
 * The owner's firmware keys on disk (SLH-DSA-SHA2-128s, FIPS 205), and the
 * documents they sign (./trust.ts), in one folder (`var/keys` by default):
 *
 *   root-<kid>.json      a root key (mode 0600): needed only to sign roots and key lists; keep it offline
 *   release-<kid>.json   a release key (mode 0600): signs firmware manifests (`npm run sign`)
 *   trust/root-<v>.cbor  root document v, and trust/keys-<v>.cbor key list v: a CBOR array of its
 *                        signatures (COSE_Sign1 each), public; what `npm run keys -- publish` hands the update service
 *
 * The firmware carries root version 1 (or the newest, after a root rotation)
 * in src/update/trust-anchor.ts, which is written here (git-ignored: each
 * owner's firmware trusts the owner's root, and no default key exists). The
 * programs in devs/bin (keygen, keys, sign) are thin shells over this module;
 * the tests make keyrings of their own in temporary folders.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { decode, encode } from "cbor2"
import { createSecretFile, ensurePrivateDir } from "../files/private.ts"
import { KEYS_DIR, TRUST_ANCHOR_PATH } from "../project.ts"
import { bstr, generateSigningKey, keyId, readCose, SIGNATURE_ALG, type SigningKey } from "./cose-sign1.ts"
import type { UpdateService } from "./service.ts"
import {
    decodeKeyList,
    encodeKeyList,
    encodeRoot,
    MAX_KEYS,
    signDocument,
    TrustChain,
    type KeyList,
    type RootDocument,
    type TrustKind,
} from "./trust.ts"

/** Raised for a key file or document that cannot be used as asked; the message says what to do. */
export class KeyringError extends Error {}

/** One trust document as kept on disk and published: its kind, version and signatures. */
export interface SignedDocument {
    kind: TrustKind
    version: number
    copies: Buffer[]
}

/** A root or key list as the owner makes it: the default shape of a new root is 2 of 3. */
export const DEFAULT_ROOT_KEYS = 3
export const DEFAULT_THRESHOLD = 2

/** Writes a key file (mode 0600). Refuses to overwrite an existing key. */
export function saveKey(key: SigningKey, path: string) {
    const body = {
        alg: SIGNATURE_ALG,
        publicKey: Buffer.from(key.publicKey).toString("hex"),
        secretKey: Buffer.from(key.secretKey).toString("hex"),
    }
    createSecretFile(path, JSON.stringify(body, null, 2) + "\n")
}

/** Reads a key file. Throws `KeyringError`. */
export function loadKey(path: string): SigningKey {
    let body
    try {
        body = JSON.parse(readFileSync(path, "utf8"))
    } catch (e) {
        throw new KeyringError(`${path}: not a key file (${(e as Error).message})`)
    }
    if (body?.alg !== SIGNATURE_ALG) throw new KeyringError(`${path}: not an ${SIGNATURE_ALG} key`)
    const publicKey = Buffer.from(String(body.publicKey), "hex")
    const secretKey = Buffer.from(String(body.secretKey), "hex")
    if (publicKey.length !== 32 || secretKey.length !== 64) throw new KeyringError(`${path}: wrong key lengths`)
    return { publicKey, secretKey }
}

const hexId = (publicKey: Uint8Array) => keyId(publicKey).toString("hex")

/** The owner's keys and signed documents in one folder. */
export class Keyring {
    constructor(readonly dir = KEYS_DIR) {}

    private get trustDir(): string {
        return join(this.dir, "trust")
    }

    /** Where a root key's file is. */
    rootKeyPath(publicKey: Uint8Array): string {
        return join(this.dir, `root-${hexId(publicKey)}.json`)
    }

    /** Where a release key's file is. */
    releaseKeyPath(publicKey: Uint8Array): string {
        return join(this.dir, `release-${hexId(publicKey)}.json`)
    }

    /** Whether the owner has made a root here yet. */
    exists(): boolean {
        return existsSync(join(this.trustDir, "root-1.cbor"))
    }

    /** Every signed document here, roots first, each kind in version order. */
    documents(): SignedDocument[] {
        if (!existsSync(this.trustDir)) return []
        const found: SignedDocument[] = []
        for (const name of readdirSync(this.trustDir)) {
            const m = /^(root|keys)-(\d+)\.cbor$/.exec(name)
            if (!m) continue
            const path = join(this.trustDir, name)
            const bytes = readFileSync(path)
            let copies: unknown
            try {
                copies = decode(bytes)
            } catch {
                // cbor2's own error says where its decoder stopped, not which file: refused below
            }
            if (!Array.isArray(copies) || !copies.every(c => c instanceof Uint8Array))
                throw new KeyringError(`${path}: not a list of signatures (a CBOR array of COSE_Sign1 byte strings)`)
            found.push({ kind: m[1] as TrustKind, version: Number(m[2]), copies: copies.map(c => Buffer.from(c)) })
        }
        return found.sort((a, b) => (a.kind === b.kind ? a.version - b.version : a.kind === "root" ? -1 : 1))
    }

    /**
     * The documents checked in order as a device would: every root, then the key lists of the newest root
     * (those of older roots were checked when they were made; a device skips them too, as a newer root
     * resets its floor). Throws `TrustError`.
     */
    chain(): TrustChain {
        const chain = new TrustChain()
        const documents = this.documents()
        for (const d of documents) if (d.kind === "root") chain.acceptRoot(d.copies)
        const newest = chain.root?.version
        for (const d of documents)
            if (d.kind === "keys" && decodeKeyList(readCose(d.copies[0]).payload).rootVersion === newest) chain.acceptKeyList(d.copies)
        return chain
    }

    private current(): { root: RootDocument; keyList: KeyList } {
        const { root, keyList } = this.chain()
        if (!root || !keyList) throw new KeyringError(`no root and key list in ${this.dir}: make them with npm run keygen`)
        return { root, keyList }
    }

    private writeDocument(kind: TrustKind, version: number, copies: Buffer[]) {
        ensurePrivateDir(this.trustDir)
        const path = join(this.trustDir, `${kind}-${version}.cbor`)
        if (existsSync(path)) throw new KeyringError(`${path} exists: a signed document is never replaced`)
        writeFileSync(path, encode(copies.map(bstr)))
    }

    /**
     * The root keys that will sign: those in `paths` (a root key may live on removable media), or every
     * root-*.json here; only keys of the current root count. Throws `KeyringError` with fewer than its threshold.
     */
    rootSigners(paths?: string[]): SigningKey[] {
        const { root } = this.current()
        const files =
            paths ?? (existsSync(this.dir) ? readdirSync(this.dir) : []).filter(f => /^root-.*\.json$/.test(f)).map(f => join(this.dir, f))
        const inRoot = (k: SigningKey) => root.keys.some(r => Buffer.from(r).equals(Buffer.from(k.publicKey)))
        const signers = files.map(loadKey).filter(inRoot)
        if (signers.length < root.threshold)
            throw new KeyringError(
                `root ${root.version} needs ${root.threshold} of its keys (${root.keys.map(hexId).join(", ")}); ` +
                    `found ${signers.length}: pass each with --root-key <file>`
            )
        return signers.slice(0, root.threshold)
    }

    /** The release key `npm run sign` uses: the newest of the current key list whose file is here. Throws `KeyringError`. */
    releaseKey(): SigningKey {
        const { keyList } = this.current()
        for (const k of [...keyList.keys].reverse()) if (existsSync(this.releaseKeyPath(k))) return loadKey(this.releaseKeyPath(k))
        throw new KeyringError(`no file of a release key of key list ${keyList.version} in ${this.dir}: npm run keys -- rotate makes one`)
    }

    /** A new root (version 1, self-signed by its threshold) and key list with one new release key. Refuses an existing one. */
    create(rootKeys = DEFAULT_ROOT_KEYS, threshold = DEFAULT_THRESHOLD): SignedDocument[] {
        if (this.exists()) throw new KeyringError(`${this.dir} already holds a root: npm run keys -- --help rotates keys`)
        const roots = Array.from({ length: rootKeys }, generateSigningKey)
        const root: RootDocument = { version: 1, threshold, keys: roots.map(k => k.publicKey) }
        const payload = encodeRoot(root)
        for (const k of roots) saveKey(k, this.rootKeyPath(k.publicKey))
        const release = generateSigningKey()
        saveKey(release, this.releaseKeyPath(release.publicKey))
        const rootCopies = signDocument(payload, roots.slice(0, threshold))
        this.writeDocument("root", 1, rootCopies)
        const list = this.signKeyList({ version: 1, rootVersion: 1, keys: [release.publicKey] }, roots.slice(0, threshold))
        return [{ kind: "root", version: 1, copies: rootCopies }, list]
    }

    private signKeyList(list: KeyList, signers: SigningKey[]): SignedDocument {
        const copies = signDocument(encodeKeyList(list), signers)
        this.writeDocument("keys", list.version, copies)
        return { kind: "keys", version: list.version, copies }
    }

    /**
     * A new release key and a key list naming it: with the current release keys too when `keep`, else
     * alone (the old ones are revoked by the same list). Signed by `signers` (see `rootSigners`).
     */
    rotateReleaseKey(signers: SigningKey[], keep: boolean): { key: SigningKey; document: SignedDocument } {
        const { root, keyList } = this.current()
        const key = generateSigningKey()
        const keys = [...(keep ? keyList.keys : []), key.publicKey]
        if (keys.length > MAX_KEYS)
            throw new KeyringError(`a key list names at most ${MAX_KEYS} keys: revoke one first (npm run keys -- revoke <kid>)`)
        saveKey(key, this.releaseKeyPath(key.publicKey))
        return { key, document: this.signKeyList({ version: keyList.version + 1, rootVersion: root.version, keys }, signers) }
    }

    /** A key list without the release key `kid` (hex), signed by `signers`. Throws `KeyringError` for a key not listed or the last one. */
    revokeReleaseKey(kid: string, signers: SigningKey[]): SignedDocument {
        const { root, keyList } = this.current()
        const keys = keyList.keys.filter(k => hexId(k) !== kid.toLowerCase())
        if (keys.length === keyList.keys.length) throw new KeyringError(`${kid} is not in key list ${keyList.version}`)
        if (keys.length === 0) throw new KeyringError(`${kid} is the only release key: npm run keys -- rotate replaces it`)
        return this.signKeyList({ version: keyList.version + 1, rootVersion: root.version, keys }, signers)
    }

    /**
     * A new root of `rootKeys` fresh keys and `threshold`, signed by `signers` of the current root and by
     * the threshold of the new one, then a key list for it with the same release keys (a key list names its
     * root: devices take none for an older root), and the trust anchor of new builds. Returns both documents.
     */
    rotateRoot(signers: SigningKey[], rootKeys = DEFAULT_ROOT_KEYS, threshold = DEFAULT_THRESHOLD): SignedDocument[] {
        const { root, keyList } = this.current()
        const fresh = Array.from({ length: rootKeys }, generateSigningKey)
        const next: RootDocument = { version: root.version + 1, threshold, keys: fresh.map(k => k.publicKey) }
        const payload = encodeRoot(next)
        for (const k of fresh) saveKey(k, this.rootKeyPath(k.publicKey))
        const copies = signDocument(payload, [...signers, ...fresh.slice(0, threshold)])
        this.writeDocument("root", next.version, copies)
        const list = this.signKeyList(
            { version: keyList.version + 1, rootVersion: next.version, keys: keyList.keys },
            fresh.slice(0, threshold)
        )
        return [{ kind: "root", version: next.version, copies }, list]
    }

    /** The payload of the current root: what the firmware is built to trust. */
    anchor(): Buffer {
        return encodeRoot(this.current().root)
    }
}

/**
 * Hands the update service the documents it does not hold yet: each newer root in order, then the newest
 * key list (devices need only that one). Returns what it published. Throws `TrustError` for a document the
 * service (and so every device) would refuse.
 */
export async function publishDocuments(service: UpdateService, documents: SignedDocument[]): Promise<SignedDocument[]> {
    const held = await service.trustVersions()
    const roots = documents.filter(d => d.kind === "root" && d.version > held.root)
    const newestList = documents.filter(d => d.kind === "keys").pop()
    const lists = newestList && newestList.version > held.keyList ? [newestList] : []
    for (const d of [...roots, ...lists]) await service.publishTrust(d.kind, d.copies)
    return [...roots, ...lists]
}

/** Hex digits per line of the trust anchor's literal (DeviceScript's hex`` skips the whitespace between them). */
const ANCHOR_HEX_PER_LINE = 128

/** Writes the firmware's trust anchor: the payload of a root document. */
export function writeTrustAnchor(rootPayload: Uint8Array, path = TRUST_ANCHOR_PATH) {
    mkdirSync(dirname(path), { recursive: true })
    const digits = Buffer.from(rootPayload).toString("hex")
    const lines: string[] = []
    for (let at = 0; at < digits.length; at += ANCHOR_HEX_PER_LINE) lines.push(`    ${digits.slice(at, at + ANCHOR_HEX_PER_LINE)}\n`)
    writeFileSync(
        path,
        `/**
 * The root the firmware trusts from the start: the payload of a root document (devs/updates/trust.ts).
 * Written by \`npm run keygen\` and \`npm run keys -- rotate-root\`; not in git: each owner's firmware trusts the owner's root.
 */
export const TRUST_ANCHOR = hex\`
${lines.join("")}\`
`
    )
}

/**
 * The owner's keyring, made (2 of 3 root keys, one release key) if there is none yet, with the trust anchor
 * brought up to date: what `npm run build`, `npm start` and `npm test` do on a fresh clone.
 */
export function ensureKeyring(keyring = new Keyring(), anchorPath = TRUST_ANCHOR_PATH): Keyring {
    if (!keyring.exists()) keyring.create()
    const hex = keyring.anchor().toString("hex")
    const current = existsSync(anchorPath) ? readFileSync(anchorPath, "utf8").replace(/\s/g, "") : ""
    if (!current.includes(hex)) writeTrustAnchor(keyring.anchor(), anchorPath)
    return keyring
}
