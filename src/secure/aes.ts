/**
 * AES-256 block encryption (FIPS 197), forward direction only: CCM needs no
 * inverse cipher. The runtime has AES natively but exposes it only as
 * AES-CCM without associated data, which cannot compute the CBC-MAC that
 * COSE's Enc_structure needs (see `ccm.ts`), so the MAC's blocks come from here.
 *
 * Byte-oriented and table-light: the S-box is the one table. Checked in the
 * tests against FIPS 197 Appendix C.3.
 */
import { expectBuffer } from "../bytes/expect-buffer"

/** The S-box (FIPS 197 §5.1.1, Figure 7). */
const SBOX = hex`637c777bf26b6fc53001672bfed7ab76ca82c97dfa5947f0add4a2af9ca472c0b7fd9326363ff7cc34a5e5f171d8311504c723c31896059a071280e2eb27b27509832c1a1b6e5aa0523bd6b329e32f8453d100ed20fcb15b6acbbe394a4c58cfd0efaafb434d338545f9027f503c9fa851a3408f929d38f5bcb6da2110fff3d2cd0c13ec5f974417c4a77e3d645d197360814fdc222a908846eeb814de5e0bdbe0323a0a4906245cc2d3ac629195e479e7c8376d8dd54ea96c56f4ea657aae08ba78252e1ca6b4c6e8dd741f4bbd8b8a703eb5664803f60e613557b986c11d9ee1f8981169d98e949b1e87e9ce5528df8ca1890dbfe6426841992d0fb054bb16`

/** Rounds of AES-256 (Nr, FIPS 197 §5). */
const ROUNDS = 14
/** Key length of AES-256 in bytes (4·Nk). */
export const AES256_KEY_BYTES = 32
/** Block length in bytes. */
export const AES_BLOCK_BYTES = 16

/** xtime (FIPS 197 §4.2.1): multiplication by x in GF(2^8), as a table because calls cost more than lookups on the VM. */
const XTIME = Buffer.alloc(256)
for (let i = 0; i < 256; ++i) XTIME[i] = ((i << 1) ^ (i & 0x80 ? 0x1b : 0)) & 0xff

/** KeyExpansion (FIPS 197 §5.2) for Nk = 8: 240 bytes of round keys. */
export function expandKey256(key: Buffer): Buffer {
    expectBuffer(key, "AES-256 key", AES256_KEY_BYTES)
    const w = Buffer.alloc(AES_BLOCK_BYTES * (ROUNDS + 1))
    w.blitAt(0, key, 0, AES256_KEY_BYTES)
    let rcon = 1
    for (let i = 8; i < 60; ++i) {
        let t0 = w[4 * i - 4]
        let t1 = w[4 * i - 3]
        let t2 = w[4 * i - 2]
        let t3 = w[4 * i - 1]
        if (i % 8 === 0) {
            // SubWord(RotWord(temp)) xor Rcon[i/Nk]
            const r = t0
            t0 = SBOX[t1] ^ rcon
            t1 = SBOX[t2]
            t2 = SBOX[t3]
            t3 = SBOX[r]
            rcon = XTIME[rcon]
        } else if (i % 8 === 4) {
            t0 = SBOX[t0]
            t1 = SBOX[t1]
            t2 = SBOX[t2]
            t3 = SBOX[t3]
        }
        w[4 * i] = w[4 * i - 32] ^ t0
        w[4 * i + 1] = w[4 * i - 31] ^ t1
        w[4 * i + 2] = w[4 * i - 30] ^ t2
        w[4 * i + 3] = w[4 * i - 29] ^ t3
    }
    return w
}

/** Scratch state of `encryptBlock`. */
const next = Buffer.alloc(16)

/**
 * Cipher (FIPS 197 §5.1): encrypts the 16 bytes of `block` in place under
 * expanded key `w`. The state is column-major as in the standard, so byte
 * (row r, column c) is at 4c + r and ShiftRows takes row r from column c + r.
 */
export function encryptBlock(w: Buffer, block: Buffer) {
    const s = block
    for (let i = 0; i < 16; ++i) s[i] ^= w[i]
    for (let k = 16; k < 16 * ROUNDS; k += 16) {
        for (let c = 0; c < 16; c += 4) {
            // SubBytes and ShiftRows, then MixColumns (§5.1.3) and AddRoundKey
            const a0 = SBOX[s[c]]
            const a1 = SBOX[s[(c + 5) & 15]]
            const a2 = SBOX[s[(c + 10) & 15]]
            const a3 = SBOX[s[(c + 15) & 15]]
            const t = a0 ^ a1 ^ a2 ^ a3
            next[c] = a0 ^ t ^ XTIME[a0 ^ a1] ^ w[k + c]
            next[c + 1] = a1 ^ t ^ XTIME[a1 ^ a2] ^ w[k + c + 1]
            next[c + 2] = a2 ^ t ^ XTIME[a2 ^ a3] ^ w[k + c + 2]
            next[c + 3] = a3 ^ t ^ XTIME[a3 ^ a0] ^ w[k + c + 3]
        }
        s.blitAt(0, next, 0, 16)
    }
    // the last round has no MixColumns
    const k = 16 * ROUNDS
    for (let c = 0; c < 16; c += 4) {
        next[c] = SBOX[s[c]] ^ w[k + c]
        next[c + 1] = SBOX[s[(c + 5) & 15]] ^ w[k + c + 1]
        next[c + 2] = SBOX[s[(c + 10) & 15]] ^ w[k + c + 2]
        next[c + 3] = SBOX[s[(c + 15) & 15]] ^ w[k + c + 3]
    }
    s.blitAt(0, next, 0, 16)
}
