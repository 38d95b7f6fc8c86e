/**
 * SLH-DSA-SHA2-128s signature verification (FIPS 205), pure (not pre-hashed):
 * Alg. 24 slh_verify, with the SHA2 functions of §11.2.1 (security category 1)
 * and the 22-byte compressed address of §11.2. Only verification lives on the
 * device; the signer is host code (@noble/post-quantum), and
 * test/host/slh-dsa.test.ts checks this file against it.
 *
 * Every hash is the runtime's native SHA-256: 2,000 to 2,300 of them per
 * verification. A fiber that runs ~128K VM steps without yielding panics with
 * InfiniteLoop, which this code reached after 800 to 1,000 hash calls, so it
 * yields after every WOTS chain and every FORS tree: at most 25 hash calls
 * between yields. A yield costs about a microsecond in the simulator, and
 * other fibers (MQTT, sampling) get a turn at least every 25 hash calls.
 */
import * as ds from "@devicescript/core"
import { digest } from "@devicescript/crypto"
import { constantTimeEqual } from "../bytes/constant-time"
import { expectBuffer } from "../bytes/expect-buffer"

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

/** Writes one 4-byte big-endian word of ADRSc. */
function setWord(adrs: Buffer, at: number, value: number) {
    adrs[at] = value >>> 24
    adrs[at + 1] = (value >> 16) & 0xff
    adrs[at + 2] = (value >> 8) & 0xff
    adrs[at + 3] = value & 0xff
}

/** ADRS.setTypeAndClear (§4.3): the type, with the three words after it zeroed. */
function setTypeAndClear(adrs: Buffer, type: number) {
    adrs[ADRS_TYPE] = type
    for (let i = ADRS_KEY_PAIR; i < ADRSC_BYTES; ++i) adrs[i] = 0
}

/**
 * F, H and T_l of §11.2.1: Trunc_n(SHA-256(PK.seed || toByte(0, 64 − n) || ADRSc || M)),
 * written into `out` at `at`. `seedBlock` is the 64-byte first SHA-256 block,
 * built once per verification.
 */
function tweakedHash(seedBlock: Buffer, adrs: Buffer, m: Buffer, out: Buffer, at: number) {
    tweakedHashCalls++
    out.blitAt(at, digest("sha256", seedBlock, adrs, m), 0, SLH_N)
}

let tweakedHashCalls = 0

/** Calls of the tweakable hash (F, H, T_l) since boot: the benchmark's operation count. */
export function slhDsaTweakedHashCalls(): number {
    return tweakedHashCalls
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
 * `treeIndex` to the root along the authentication path at `sig[authAt]`.
 * `node` holds the leaf and receives the root; ADRS has the tree's type set.
 * Halving the index is floor(index / 2) whether it was even or odd.
 */
function climb(seedBlock: Buffer, adrs: Buffer, node: Buffer, treeIndex: number, sig: Buffer, authAt: number, height: number) {
    const pair = Buffer.alloc(2 * SLH_N)
    for (let k = 0; k < height; ++k) {
        const auth = authAt + k * SLH_N
        if ((treeIndex & 1) === 0) {
            pair.blitAt(0, node, 0, SLH_N)
            pair.blitAt(SLH_N, sig, auth, SLH_N)
        } else {
            pair.blitAt(0, sig, auth, SLH_N)
            pair.blitAt(SLH_N, node, 0, SLH_N)
        }
        treeIndex >>= 1
        setWord(adrs, ADRS_TREE_HEIGHT, k + 1)
        setWord(adrs, ADRS_TREE_INDEX, treeIndex)
        tweakedHash(seedBlock, adrs, pair, node, 0)
    }
}

/**
 * The last step of Alg. 8 and Alg. 17: T_l over all `values` at an address
 * with the same tree and key pair and type `type` (wotspkADRS, forspkADRS), into `node`.
 */
function compressKeyPair(seedBlock: Buffer, adrs: Buffer, type: number, values: Buffer, node: Buffer) {
    const keyPair = adrs.slice(ADRS_KEY_PAIR, ADRS_KEY_PAIR + 4)
    setTypeAndClear(adrs, type)
    adrs.blitAt(ADRS_KEY_PAIR, keyPair, 0, 4)
    tweakedHash(seedBlock, adrs, values, node, 0)
}

/**
 * Alg. 17 fors_pkFromSig: the FORS public key from SIG_FORS (at `sig[SLH_N]`)
 * and md (the first k·a bits of `hashed`, H_msg's output), into `node`. ADRS
 * has the tree address and key pair.
 */
async function forsPkFromSig(seedBlock: Buffer, adrs: Buffer, sig: Buffer, hashed: Buffer, node: Buffer) {
    const indices = base2b(hashed, 0, SLH_A, SLH_K)
    const roots = Buffer.alloc(SLH_K * SLH_N)
    const leaf = Buffer.alloc(SLH_N)
    for (let i = 0; i < SLH_K; ++i) {
        const skAt = SLH_N + i * (1 + SLH_A) * SLH_N
        const treeIndex = (i << SLH_A) + indices[i]
        leaf.blitAt(0, sig, skAt, SLH_N)
        setWord(adrs, ADRS_TREE_HEIGHT, 0)
        setWord(adrs, ADRS_TREE_INDEX, treeIndex)
        tweakedHash(seedBlock, adrs, leaf, node, 0)
        climb(seedBlock, adrs, node, treeIndex, sig, skAt + SLH_N, SLH_A)
        roots.blitAt(i * SLH_N, node, 0, SLH_N)
        await ds.sleep(0)
    }
    // forspkADRS
    compressKeyPair(seedBlock, adrs, FORS_ROOTS, roots, node)
}

/**
 * Alg. 8 wots_pkFromSig: the WOTS public key from the signature at `sig[sigAt]`
 * and the n-byte message in `node`, into `node`. ADRS has the layer, tree and
 * key pair, type WOTS_HASH. `chains` is len·n bytes of scratch.
 */
async function wotsPkFromSig(seedBlock: Buffer, adrs: Buffer, sig: Buffer, sigAt: number, node: Buffer, chains: Buffer) {
    const msg = base2b(node, 0, SLH_LG_W, LEN1)
    let csum = 0
    for (let i = 0; i < LEN1; ++i) csum += W - 1 - msg[i]
    // csum << ((8 − ((len2·lg_w) mod 8)) mod 8), as toByte(csum, ceil(len2·lg_w / 8)) = 2 bytes
    csum <<= (8 - ((LEN2 * SLH_LG_W) % 8)) % 8
    const checksum = base2b(Buffer.from([csum >> 8, csum & 0xff]), 0, SLH_LG_W, LEN2)
    for (let i = 0; i < LEN2; ++i) msg.push(checksum[i])
    for (let i = 0; i < LEN; ++i) {
        // Alg. 5 chain(sig[i], msg[i], w − 1 − msg[i])
        setWord(adrs, ADRS_CHAIN, i)
        node.blitAt(0, sig, sigAt + i * SLH_N, SLH_N)
        for (let j = msg[i]; j < W - 1; ++j) {
            setWord(adrs, ADRS_HASH, j)
            tweakedHash(seedBlock, adrs, node, node, 0)
        }
        chains.blitAt(i * SLH_N, node, 0, SLH_N)
        await ds.sleep(0)
    }
    // wotspkADRS
    compressKeyPair(seedBlock, adrs, WOTS_PK, chains, node)
}

/**
 * Alg. 13 ht_verify, ending in the comparison with PK.root. `node` holds the
 * FORS public key; ADRS has layer 0 and the tree address idx_tree, which is
 * kept as bytes in ADRS: idx_tree < 2^54 is beyond a double's exact integers.
 */
async function htVerify(seedBlock: Buffer, adrs: Buffer, sig: Buffer, idxLeaf: number, node: Buffer, pkRoot: Buffer): Promise<boolean> {
    const chains = Buffer.alloc(LEN * SLH_N)
    for (let j = 0; j < SLH_D; ++j) {
        // layer 0 uses Alg. 20's idx_leaf and idx_tree
        if (j > 0) {
            // idx_leaf ← idx_tree mod 2^h'; idx_tree ← idx_tree >> h' (h' = 9: one byte, then one bit)
            const last = ADRS_TREE + 7
            idxLeaf = ((adrs[last - 1] & 1) << 8) | adrs[last]
            for (let i = last; i >= ADRS_TREE; --i) {
                const hi = i - 2 >= ADRS_TREE ? adrs[i - 2] : 0
                const lo = i - 1 >= ADRS_TREE ? adrs[i - 1] : 0
                adrs[i] = ((hi & 1) << 7) | (lo >> 1)
            }
            adrs[ADRS_LAYER] = j
        }
        // Alg. 11 xmss_pkFromSig(idx_leaf, SIG_HT.getXMSSSignature(j), node, PK.seed, ADRS)
        const at = SIG_HT_AT + j * XMSS_SIG_BYTES
        setTypeAndClear(adrs, WOTS_HASH)
        setWord(adrs, ADRS_KEY_PAIR, idxLeaf)
        await wotsPkFromSig(seedBlock, adrs, sig, at, node, chains)
        setTypeAndClear(adrs, TREE)
        climb(seedBlock, adrs, node, idxLeaf, sig, at + LEN * SLH_N, SLH_H_PRIME)
    }
    return constantTimeEqual(node, pkRoot)
}

/**
 * Alg. 24 slh_verify: whether `signature` is an SLH-DSA-SHA2-128s signature of
 * `message` under `publicKey` with the context string `context` (default
 * empty), i.e. Alg. 20 slh_verify_internal over M' = toByte(0, 1) ||
 * toByte(|ctx|, 1) || ctx || M. False for a key, signature or context of the
 * wrong size, as Alg. 20 answers a signature of the wrong length: they come
 * from the network. An argument that is not a Buffer is the caller's bug: a `TypeError`.
 */
export async function slhDsaVerify(publicKey: Buffer, message: Buffer, signature: Buffer, context?: Buffer): Promise<boolean> {
    const ctx = context === undefined ? Buffer.alloc(0) : context
    expectBuffer(publicKey, "public key")
    expectBuffer(message, "message")
    expectBuffer(signature, "signature")
    expectBuffer(ctx, "context")
    if (publicKey.length !== SLH_PK_BYTES || signature.length !== SLH_SIG_BYTES || ctx.length > SLH_MAX_CONTEXT_BYTES) return false
    // start with a fresh step budget: the caller may have used much of it
    await ds.sleep(0)
    const pkSeed = publicKey.slice(0, SLH_N)
    const pkRoot = publicKey.slice(SLH_N, SLH_PK_BYTES)
    const r = signature.slice(0, SLH_N)
    // H_msg(R, PK.seed, PK.root, M') = MGF1-SHA-256(R || PK.seed || SHA-256(R || PK.seed || PK.root || M'), m);
    // m = 30 <= 32 bytes: one MGF1 block, counter 0
    const inner = digest("sha256", r, pkSeed, pkRoot, Buffer.from([0, ctx.length]), ctx, message)
    const hashed = digest("sha256", r, pkSeed, inner, Buffer.alloc(4))
    // Alg. 20: idx_tree = toInt(7 bytes) mod 2^54, written straight into ADRS's 8-byte tree address
    // (setTreeAddress); idx_leaf = toInt(2 bytes) mod 2^9; md is read from the digest's start
    const adrs = Buffer.alloc(ADRSC_BYTES)
    adrs.blitAt(ADRS_TREE + 8 - SLH_IDX_TREE_BYTES, hashed, SLH_MD_BYTES, SLH_IDX_TREE_BYTES)
    adrs[ADRS_TREE + 1] &= 0x3f
    const idxLeaf = ((hashed[IDX_LEAF_AT] & 1) << 8) | hashed[IDX_LEAF_AT + 1]
    // PK.seed || toByte(0, 64 − n): the first SHA-256 block of every F, H and T_l
    const seedBlock = Buffer.alloc(64)
    seedBlock.blitAt(0, pkSeed, 0, SLH_N)
    const node = Buffer.alloc(SLH_N)
    setTypeAndClear(adrs, FORS_TREE)
    setWord(adrs, ADRS_KEY_PAIR, idxLeaf)
    await forsPkFromSig(seedBlock, adrs, signature, hashed, node)
    return await htVerify(seedBlock, adrs, signature, idxLeaf, node, pkRoot)
}
