/**
 * SLH-DSA-SHA2-128s signature verification (FIPS 205), pure (not pre-hashed):
 * Alg. 24 slh_verify, with the SHA2 functions of §11.2.1 (security category 1)
 * and the 22-byte compressed address of §11.2. Only verification lives on the
 * device; the signer is host code (@noble/post-quantum), and
 * test/host/slh-dsa.test.ts checks this file against it.
 *
 * Every hash is the runtime's native SHA-256: 2,000 to 2,300 of them per
 * verification, so the VM's share is what the benchmark watches (against the
 * same count of bare SHA-256 calls on the same input sizes). Each hash input
 * lives in one buffer, PK.seed || padding || ADRSc || M, that the runtime
 * hashes in one call: a WOTS chain step writes one address byte, hashes,
 * and copies 16 bytes back; nothing is allocated but the digest itself.
 *
 * A fiber that runs ~128K VM steps without yielding panics with InfiniteLoop,
 * so the verifier yields after every WOTS chain and every FORS tree: at most
 * 25 hash calls between yields, and other fibers (MQTT, sampling) get a turn.
 */
import * as ds from "@devicescript/core"
import { constantTimeEqual } from "../bytes/constant-time"
import { expectBuffer } from "../bytes/expect-buffer"
import { nativeDigest, sha256 } from "../bytes/natives"

// FIPS 205 Table 2, the row of SLH-DSA-SHA2-128s; every size below is computed from it.
/** Security parameter n: bytes of every hash value and key part. */
export const SLH_N = 16
/** Total hypertree height h. */
export const SLH_H = 63
/** Hypertree layers d. */
export const SLH_D = 7
/** XMSS tree height h' = h / d. */
export const SLH_H_PRIME = 9
/** FORS tree height a. */
export const SLH_A = 12
/** Number of FORS trees k. */
export const SLH_K = 14
/** lg w: bits per Winternitz digit. */
export const SLH_LG_W = 4
/** Message digest length m, in bytes. */
export const SLH_M = 30

/** Alg. 1 gen_len2: the checksum's base-w digits, floor(log2(len1 (w − 1)) / lg_w) + 1, found by counting as the standard does. */
function genLen2(len1: number, w: number): number {
    const maxChecksum = len1 * (w - 1)
    let len2 = 1
    let capacity = w
    while (capacity <= maxChecksum) {
        len2++
        capacity *= w
    }
    return len2
}

/** w = 2^lg_w (§5). */
const W = 1 << SLH_LG_W
/** WOTS+ chains (§5): len1 = ceil(8n / lg_w) for the message, len2 for its checksum, len in all. */
const LEN1 = Math.ceil((8 * SLH_N) / SLH_LG_W)
const LEN2 = genLen2(LEN1, W)
const LEN = LEN1 + LEN2
/** WOTS+ chains per key, len (35): the n-byte values T_len compresses. */
export const SLH_WOTS_LEN = LEN
/** Alg. 20's split of the m-byte digest: md = ceil(k·a / 8) bytes, idx_tree = ceil((h − h/d) / 8), idx_leaf = ceil(h / 8d). */
export const SLH_MD_BYTES = Math.ceil((SLH_K * SLH_A) / 8)
export const SLH_IDX_TREE_BYTES = Math.ceil((SLH_H - SLH_H / SLH_D) / 8)
export const SLH_IDX_LEAF_BYTES = Math.ceil(SLH_H / (8 * SLH_D))
const IDX_LEAF_AT = SLH_MD_BYTES + SLH_IDX_TREE_BYTES
/** Public key bytes: PK.seed || PK.root (§9.1). */
export const SLH_PK_BYTES = 2 * SLH_N
/** Start of SIG_HT: after R and SIG_FORS, whose k trees give 1 + a values each (a secret value and an authentication path of a nodes). */
const SIG_HT_AT = (1 + SLH_K * (1 + SLH_A)) * SLH_N
/** One XMSS signature in SIG_HT: a WOTS+ signature (len values), then AUTH (h' nodes). */
const XMSS_SIG_BYTES = (LEN + SLH_H_PRIME) * SLH_N
/** Signature bytes (§9.2): R || SIG_FORS || SIG_HT, with d XMSS signatures in SIG_HT; Table 2 gives 7856. */
export const SLH_SIG_BYTES = SIG_HT_AT + SLH_D * XMSS_SIG_BYTES
/** Longest context string (Alg. 24 encodes its length in one byte). */
export const SLH_MAX_CONTEXT_BYTES = 255

/** Address types (§4.2). */
const WOTS_HASH = 0
const WOTS_PK = 1
const TREE = 2
const FORS_TREE = 3
const FORS_ROOTS = 4

/**
 * Byte offsets in the compressed address ADRSc (§11.2): layer (1 byte), tree
 * address (8), type (1), then the last three 4-byte words of ADRS: key pair;
 * chain or tree height; hash or tree index.
 */
const ADRSC_BYTES = 22
const ADRS_LAYER = 0
const ADRS_TREE = 1
const ADRS_TYPE = 9
const ADRS_KEY_PAIR = 10
const ADRS_CHAIN = 14
const ADRS_TREE_HEIGHT = 14
const ADRS_HASH = 18
const ADRS_TREE_INDEX = 18

/**
 * The input of F, H and T_l (§11.2.1): PK.seed || toByte(0, 64 − n) || ADRSc || M,
 * hashed in place. Each of the four message sizes has its own buffer, so a
 * hash is one call of the runtime's SHA-256 on one buffer, and a chain step
 * changes one address byte and copies 16 bytes back; ADRS is copied between
 * buffers only when the hash changes.
 */
const SEED_BLOCK_BYTES = 64
const ADRS_AT = SEED_BLOCK_BYTES
/** Where M starts in a tweakable hash's input: the input of F is this plus n bytes, of H plus 2n, of T_l plus l·n. */
export const SLH_HASH_MESSAGE_AT = ADRS_AT + ADRSC_BYTES
const MESSAGE_AT = SLH_HASH_MESSAGE_AT
/** Chain, height and hash are below 256 (len = 35, h' and a at most 12, w = 16): only a word's last byte is ever set. */
const CHAIN_BYTE_AT = ADRS_AT + ADRS_CHAIN + 3
const TREE_HEIGHT_BYTE_AT = ADRS_AT + ADRS_TREE_HEIGHT + 3
const HASH_BYTE_AT = ADRS_AT + ADRS_HASH + 3

/** One tweakable hash's input buffer, with the one-element list the runtime's digest takes. */
interface HashInput {
    bytes: Buffer
    list: Buffer[]
}

function hashInput(pkSeed: Buffer, messageBytes: number): HashInput {
    const bytes = Buffer.alloc(MESSAGE_AT + messageBytes)
    bytes.blitAt(0, pkSeed, 0, SLH_N)
    return { bytes, list: [bytes] }
}

/** The buffers of one verification: F (one n-byte value), H (two), T_len (a WOTS key's len values), T_k (FORS's k roots). */
interface Hashes {
    f: HashInput
    h: HashInput
    wotsPk: HashInput
    forsPk: HashInput
}

let tweakedHashCalls = 0

/** Calls of the tweakable hash (F, H, T_l) since boot: the benchmark's operation count. */
export function slhDsaTweakedHashCalls(): number {
    return tweakedHashCalls
}

/** Trunc_n(SHA-256(input)) into `out` at `at`. */
function hash(input: HashInput, out: Buffer, at: number) {
    tweakedHashCalls++
    out.blitAt(at, nativeDigest(undefined, "sha256", input.list), 0, SLH_N)
}

/** Writes one 4-byte big-endian word of ADRSc in `input`. */
function setWord(input: HashInput, at: number, value: number) {
    const b = input.bytes
    b[ADRS_AT + at] = value >>> 24
    b[ADRS_AT + at + 1] = (value >> 16) & 0xff
    b[ADRS_AT + at + 2] = (value >> 8) & 0xff
    b[ADRS_AT + at + 3] = value & 0xff
}

/** `to`'s address becomes `from`'s, with type `type` and, as ADRS.setTypeAndClear (§4.3), the words after the key pair zeroed. */
function moveAddress(from: HashInput, to: HashInput, type: number) {
    to.bytes.blitAt(ADRS_AT, from.bytes, ADRS_AT, ADRS_CHAIN)
    to.bytes[ADRS_AT + ADRS_TYPE] = type
    to.bytes.fillAt(ADRS_AT + ADRS_CHAIN, ADRSC_BYTES - ADRS_CHAIN, 0)
}

/** Alg. 4 base_2^b: the first `outLen` b-bit big-endian digits of `x` from byte `at`. */
function base2b(x: Buffer, at: number, b: number, outLen: number): number[] {
    const digits: number[] = []
    let total = 0
    let bits = 0
    for (let i = 0; i < outLen; ++i) {
        while (bits < b) {
            // only the low bits + 8 <= 20 bits of total are ever read, so 32-bit shifts suffice
            total = (total << 8) | x[at++]
            bits += 8
        }
        bits -= b
        digits.push((total >> bits) & ((1 << b) - 1))
    }
    return digits
}

/**
 * Lines 8–16 of Alg. 11 (XMSS) and Alg. 17 (FORS): climbs from the leaf at
 * `treeIndex` in `node` to the root along the authentication path at
 * `sig[authAt]`, leaving the root in `node`. H's address holds the tree's type,
 * layer, tree address and key pair. Halving the index is floor(index / 2)
 * whether it was even or odd.
 */
function climb(h: HashInput, node: Buffer, treeIndex: number, sig: Buffer, authAt: number, height: number) {
    const pair = h.bytes
    for (let k = 0; k < height; ++k) {
        // the node is the left child at an even index, the right child at an odd one
        const odd = treeIndex & 1
        pair.blitAt(MESSAGE_AT + odd * SLH_N, node, 0, SLH_N)
        pair.blitAt(MESSAGE_AT + (1 - odd) * SLH_N, sig, authAt + k * SLH_N, SLH_N)
        treeIndex >>= 1
        pair[TREE_HEIGHT_BYTE_AT] = k + 1
        setWord(h, ADRS_TREE_INDEX, treeIndex)
        hash(h, node, 0)
    }
}

/**
 * Alg. 17 fors_pkFromSig: the FORS public key from SIG_FORS (at `sig[sigAt + SLH_N]`)
 * and md (the first k·a bits of `hashed`, H_msg's output), into `node`. F's
 * address has the tree address and key pair, type FORS_TREE.
 */
async function forsPkFromSig(hashes: Hashes, sig: Buffer, sigAt: number, hashed: Buffer, node: Buffer) {
    const { f, h, forsPk } = hashes
    const indices = base2b(hashed, 0, SLH_A, SLH_K)
    moveAddress(f, h, FORS_TREE)
    for (let i = 0; i < SLH_K; ++i) {
        const skAt = sigAt + SLH_N + i * (1 + SLH_A) * SLH_N
        const treeIndex = (i << SLH_A) + indices[i]
        // the leaf: F at tree height 0
        f.bytes.blitAt(MESSAGE_AT, sig, skAt, SLH_N)
        setWord(f, ADRS_TREE_INDEX, treeIndex)
        hash(f, node, 0)
        climb(h, node, treeIndex, sig, skAt + SLH_N, SLH_A)
        forsPk.bytes.blitAt(MESSAGE_AT + i * SLH_N, node, 0, SLH_N)
        await ds.sleep(0)
    }
    // forspkADRS
    moveAddress(f, forsPk, FORS_ROOTS)
    hash(forsPk, node, 0)
}

/**
 * Alg. 8 wots_pkFromSig: the WOTS public key from the signature at `sig[sigAt]`
 * and the n-byte message in `node`, into `node`. F's address has the layer,
 * tree and key pair, type WOTS_HASH.
 */
async function wotsPkFromSig(hashes: Hashes, sig: Buffer, sigAt: number, node: Buffer) {
    const { f, wotsPk } = hashes
    const msg = base2b(node, 0, SLH_LG_W, LEN1)
    let csum = 0
    for (let i = 0; i < LEN1; ++i) csum += W - 1 - msg[i]
    // csum << ((8 − ((len2·lg_w) mod 8)) mod 8), as toByte(csum, ceil(len2·lg_w / 8)) = 2 bytes
    csum <<= (8 - ((LEN2 * SLH_LG_W) % 8)) % 8
    const checksum = base2b(Buffer.from([csum >> 8, csum & 0xff]), 0, SLH_LG_W, LEN2)
    for (let i = 0; i < LEN2; ++i) msg.push(checksum[i])
    // the inner loop is most of a verification's VM time: the hash is inlined
    const value = f.bytes
    const list = f.list
    const top = W - 1
    for (let i = 0; i < LEN; ++i) {
        // Alg. 5 chain(sig[i], msg[i], w − 1 − msg[i]), hashed in place in F's message
        value[CHAIN_BYTE_AT] = i
        value.blitAt(MESSAGE_AT, sig, sigAt + i * SLH_N, SLH_N)
        for (let j = msg[i]; j < top; ++j) {
            value[HASH_BYTE_AT] = j
            value.blitAt(MESSAGE_AT, nativeDigest(undefined, "sha256", list), 0, SLH_N)
        }
        tweakedHashCalls += top - msg[i]
        wotsPk.bytes.blitAt(MESSAGE_AT + i * SLH_N, value, MESSAGE_AT, SLH_N)
        await ds.sleep(0)
    }
    // wotspkADRS
    moveAddress(f, wotsPk, WOTS_PK)
    hash(wotsPk, node, 0)
}

/**
 * Alg. 13 ht_verify of the signature at `sig[sigAt]`, ending in the comparison with PK.root. `node` holds the
 * FORS public key; F's address has layer 0 and the tree address idx_tree,
 * which is kept as bytes in ADRS: idx_tree < 2^54 is beyond a double's exact integers.
 */
async function htVerify(hashes: Hashes, sig: Buffer, sigAt: number, idxLeaf: number, node: Buffer, pkRoot: Buffer): Promise<boolean> {
    const { f, h } = hashes
    const adrs = f.bytes
    for (let j = 0; j < SLH_D; ++j) {
        // layer 0 uses Alg. 20's idx_leaf and idx_tree
        if (j > 0) {
            // idx_leaf ← idx_tree mod 2^h'; idx_tree ← idx_tree >> h' (h' = 9: one byte, then one bit)
            const last = ADRS_AT + ADRS_TREE + 7
            const first = ADRS_AT + ADRS_TREE
            idxLeaf = ((adrs[last - 1] & 1) << 8) | adrs[last]
            for (let i = last; i >= first; --i) {
                const hi = i - 2 >= first ? adrs[i - 2] : 0
                const lo = i - 1 >= first ? adrs[i - 1] : 0
                adrs[i] = ((hi & 1) << 7) | (lo >> 1)
            }
            adrs[ADRS_AT + ADRS_LAYER] = j
        }
        // Alg. 11 xmss_pkFromSig(idx_leaf, SIG_HT.getXMSSSignature(j), node, PK.seed, ADRS)
        const at = sigAt + SIG_HT_AT + j * XMSS_SIG_BYTES
        adrs[ADRS_AT + ADRS_TYPE] = WOTS_HASH
        setWord(f, ADRS_KEY_PAIR, idxLeaf)
        adrs.fillAt(ADRS_AT + ADRS_CHAIN, ADRSC_BYTES - ADRS_CHAIN, 0)
        await wotsPkFromSig(hashes, sig, at, node)
        moveAddress(f, h, TREE)
        // TREE addresses have no key pair (setTypeAndClear)
        h.bytes.fillAt(ADRS_AT + ADRS_KEY_PAIR, 4, 0)
        climb(h, node, idxLeaf, sig, at + LEN * SLH_N, SLH_H_PRIME)
    }
    return constantTimeEqual(node, pkRoot)
}

/**
 * Alg. 24 slh_verify: whether `signature` is an SLH-DSA-SHA2-128s signature of
 * `message` under `publicKey` with the context string `context` (default
 * empty), i.e. Alg. 20 slh_verify_internal over M' = toByte(0, 1) ||
 * toByte(|ctx|, 1) || ctx || M. False for a key, signature or context of the
 * wrong size, as Alg. 20 answers a signature of the wrong length: they come
 * from the network. The signature is `signature` from `sigAt` (default 0) to its end: a
 * signed document's signature is read where it arrived, never copied (`manifest.ts`).
 * An argument that is not a Buffer is the caller's bug: a `TypeError`.
 */
export async function slhDsaVerify(publicKey: Buffer, message: Buffer, signature: Buffer, context?: Buffer, sigAt = 0): Promise<boolean> {
    const ctx = context === undefined ? Buffer.alloc(0) : context
    expectBuffer(publicKey, "public key")
    expectBuffer(message, "message")
    expectBuffer(signature, "signature")
    expectBuffer(ctx, "context")
    if (publicKey.length !== SLH_PK_BYTES || signature.length - sigAt !== SLH_SIG_BYTES || ctx.length > SLH_MAX_CONTEXT_BYTES) return false
    // start with a fresh step budget: the caller may have used much of it
    await ds.sleep(0)
    const pkSeed = publicKey.slice(0, SLH_N)
    const pkRoot = publicKey.slice(SLH_N, SLH_PK_BYTES)
    const r = signature.slice(sigAt, sigAt + SLH_N)
    // H_msg(R, PK.seed, PK.root, M') = MGF1-SHA-256(R || PK.seed || SHA-256(R || PK.seed || PK.root || M'), m);
    // m = 30 <= 32 bytes: one MGF1 block, counter 0
    const inner = sha256([r, pkSeed, pkRoot, Buffer.from([0, ctx.length]), ctx, message])
    const hashed = sha256([r, pkSeed, inner, Buffer.alloc(4)])
    const hashes: Hashes = {
        f: hashInput(pkSeed, SLH_N),
        h: hashInput(pkSeed, 2 * SLH_N),
        wotsPk: hashInput(pkSeed, LEN * SLH_N),
        forsPk: hashInput(pkSeed, SLH_K * SLH_N),
    }
    // Alg. 20: idx_tree = toInt(7 bytes) mod 2^54, written straight into the 8-byte tree address of F's ADRS
    // (setTreeAddress); idx_leaf = toInt(2 bytes) mod 2^9; md is read from the digest's start
    const adrs = hashes.f.bytes
    adrs.blitAt(ADRS_AT + ADRS_TREE + 8 - SLH_IDX_TREE_BYTES, hashed, SLH_MD_BYTES, SLH_IDX_TREE_BYTES)
    adrs[ADRS_AT + ADRS_TREE + 1] &= 0x3f
    const idxLeaf = ((hashed[IDX_LEAF_AT] & 1) << 8) | hashed[IDX_LEAF_AT + 1]
    const node = Buffer.alloc(SLH_N)
    adrs[ADRS_AT + ADRS_TYPE] = FORS_TREE
    setWord(hashes.f, ADRS_KEY_PAIR, idxLeaf)
    await forsPkFromSig(hashes, signature, sigAt, hashed, node)
    return await htVerify(hashes, signature, sigAt, idxLeaf, node, pkRoot)
}
