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
const SBOX = hex`
    63 7c 77 7b f2 6b 6f c5 30 01 67 2b fe d7 ab 76
    ca 82 c9 7d fa 59 47 f0 ad d4 a2 af 9c a4 72 c0
    b7 fd 93 26 36 3f f7 cc 34 a5 e5 f1 71 d8 31 15
    04 c7 23 c3 18 96 05 9a 07 12 80 e2 eb 27 b2 75
    09 83 2c 1a 1b 6e 5a a0 52 3b d6 b3 29 e3 2f 84
    53 d1 00 ed 20 fc b1 5b 6a cb be 39 4a 4c 58 cf
    d0 ef aa fb 43 4d 33 85 45 f9 02 7f 50 3c 9f a8
    51 a3 40 8f 92 9d 38 f5 bc b6 da 21 10 ff f3 d2
    cd 0c 13 ec 5f 97 44 17 c4 a7 7e 3d 64 5d 19 73
    60 81 4f dc 22 2a 90 88 46 ee b8 14 de 5e 0b db
    e0 32 3a 0a 49 06 24 5c c2 d3 ac 62 91 95 e4 79
    e7 c8 37 6d 8d d5 4e a9 6c 56 f4 ea 65 7a ae 08
    ba 78 25 2e 1c a6 b4 c6 e8 dd 74 1f 4b bd 8b 8a
    70 3e b5 66 48 03 f6 0e 61 35 57 b9 86 c1 1d 9e
    e1 f8 98 11 69 d9 8e 94 9b 1e 87 e9 ce 55 28 df
    8c a1 89 0d bf e6 42 68 41 99 2d 0f b0 54 bb 16
`

/** Rounds of AES-256 (Nr, FIPS 197 §5). */
const ROUNDS = 14
/** Key length of AES-256 in bytes (4·Nk). */
export const AES256_KEY_BYTES = 32
/** Block length in bytes. */
export const AES_BLOCK_BYTES = 16

/** xtime (FIPS 197 §4.2.1): multiplication by x in GF(2^8), as a table because calls cost more than lookups on the VM. */
const XTIME = Buffer.alloc(256)
for (let i = 0; i < 256; ++i) XTIME[i] = ((i << 1) ^ ((i & 0x80) !== 0 ? 0x1b : 0)) & 0xff

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
