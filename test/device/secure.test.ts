import { describe, expect, test } from "@devicescript/test"
import { encryptBlock, expandKey256 } from "../../src/secure/aes"
import { ccmOpen, ccmSeal } from "../../src/secure/ccm"
import { CoseError, counterFromPartialIv, nonceFor, open, partialIvFromCounter, seal } from "../../src/secure/cose"
import { CounterError, MessageCounter } from "../../src/secure/counter"
import { deleteKey, writeBytes } from "../../src/storage/settings"
import { asyncRefusal, counting, pattern, refusal } from "./support"

const KEY = counting(32, 0)
const NONCE = counting(13, 0x10)

/** AES-256-CCM, M = 8, L = 2, computed by OpenSSL (Node's aes-256-ccm) for the inputs above. */
const CCM_VECTORS: { aad: number; msg: number; out: string }[] = [
    { aad: 0, msg: 0, out: "81442db84c7d503a" },
    { aad: 8, msg: 4, out: "1abe5dfe49be28a4b34d80e8" },
    { aad: 20, msg: 33, out: "1abe5dfecc8f53524814aea2ed7e3d1a1540d54a47a18392a043d2b64497dba3d9f8aab9d2208b4065" },
    {
        aad: 300,
        msg: 100,
        out:
            "1abe5dfecc8f53524814aea2ed7e3d1a1540d54a47a18392a043d2b64497dba3d9258a31b53ab6606ef0cdafe6e8ca07" +
            "b3003f8ef86a57b5d278eb72a6feaabf340ae4af7ff2ff879abebee5050a8c7f24c44c0a0e6099c65e1550583edfb155" +
            "bf5a10d8e366776e27a8dde6",
    },
]

/** The message of the CoseError that opening `message` must throw. */
async function coseRefusal(message: Buffer, key: Buffer, aad: Buffer, contextIv: Buffer): Promise<string> {
    return await asyncRefusal(CoseError, async () => await open(message, { key, externalAad: aad, contextIv }))
}

describe("AES-256 (FIPS 197)", () => {
    test("Appendix C.3 example", () => {
        // slice(): a hex literal lives in read-only program memory
        const block = hex`00112233445566778899aabbccddeeff`.slice(0, 16)
        encryptBlock(expandKey256(KEY), block)
        expect(block.toString("hex")).toBe("8ea2b7ca516745bfeafc49904b496089")
    })
    test("refuses keys of the wrong size", () => {
        expect(refusal(TypeError, () => expandKey256(Buffer.alloc(16)))).toBe("AES-256 key must be 32 bytes, not 16")
    })
})

describe("AES-256-CCM with associated data (RFC 3610)", () => {
    test("matches OpenSSL for empty, short, multi-block and long inputs", async () => {
        for (const v of CCM_VECTORS) {
            const sealed = await ccmSeal(KEY, NONCE, pattern(v.aad, 3), pattern(v.msg, 5))
            expect(sealed.toString("hex")).toBe(v.out)
            const opened = await ccmOpen(KEY, NONCE, pattern(v.aad, 3), sealed)
            expect(opened.toString("hex")).toBe(pattern(v.msg, 5).toString("hex"))
        }
    })
    test("a key or nonce of the wrong size is the caller's bug: a TypeError", async () => {
        const message = pattern(4, 5)
        expect(await asyncRefusal(TypeError, async () => await ccmSeal(KEY.slice(0, 16), NONCE, Buffer.alloc(0), message))).toBe(
            "AES-256 key must be 32 bytes, not 16"
        )
        expect(await asyncRefusal(TypeError, async () => await ccmOpen(KEY, NONCE.slice(0, 12), Buffer.alloc(0), message))).toBe(
            "CCM nonce must be 13 bytes, not 12"
        )
    })
    test("any flipped bit in ciphertext, tag, AAD or nonce is refused", async () => {
        const aad = pattern(20, 3)
        const sealed = await ccmSeal(KEY, NONCE, aad, pattern(33, 5))
        for (let i = 0; i < sealed.length; i += 5) {
            const bad = sealed.slice(0, sealed.length)
            bad[i] ^= 1 << (i % 8)
            expect(await ccmOpen(KEY, NONCE, aad, bad)).toBe(undefined)
        }
        const badAad = aad.slice(0, aad.length)
        badAad[19] ^= 0x80
        expect(await ccmOpen(KEY, NONCE, badAad, sealed)).toBe(undefined)
        const badNonce = NONCE.slice(0, 13)
        badNonce[12] ^= 1
        expect(await ccmOpen(KEY, badNonce, aad, sealed)).toBe(undefined)
        expect(await ccmOpen(KEY, NONCE, aad, sealed.slice(0, 7))).toBe(undefined)
    })
})

describe("COSE_Encrypt0 with AES-CCM-16-64-256 (RFC 9052, RFC 9053)", () => {
    const kid = hex`0102030405060708090a0b0c0d0e0f10`
    const contextIv = counting(13, 0xa0)
    const aad = Buffer.from("things/x/up/readings")

    test("partial IV: minimal big-endian counter, XORed into the end of the context IV", () => {
        expect(partialIvFromCounter(0).toString("hex")).toBe("00")
        expect(partialIvFromCounter(255).toString("hex")).toBe("ff")
        expect(partialIvFromCounter(256).toString("hex")).toBe("0100")
        expect(partialIvFromCounter(4294967296).toString("hex")).toBe("0100000000")
        expect(counterFromPartialIv(hex`0100000000`)).toBe(4294967296)
        expect(nonceFor(contextIv, hex`0102`).toString("hex")).toBe("a0a1a2a3a4a5a6a7a8a9aaaaae")
        expect(refusal(CoseError, () => partialIvFromCounter(-1))).toBe("counter out of range")
    })
    test("seals to a tagged Encrypt0 with alg 11 protected, kid and partial IV unprotected, and opens it", async () => {
        const plaintext = Buffer.from("hello, owner")
        const msg = await seal(plaintext, { key: KEY, kid, externalAad: aad, partialIv: partialIvFromCounter(300), contextIv })
        // 0xd0 = tag 16; 0x83 = array(3); 0x43 a1 01 0b = << {1: 11} >>
        expect(msg.slice(0, 6).toString("hex")).toBe("d08343a1010b")
        const opened = await open(msg, { key: KEY, externalAad: aad, contextIv })
        expect(opened.plaintext.toString("utf-8")).toBe("hello, owner")
        expect(opened.kid.toString("hex")).toBe(kid.toString("hex"))
        expect(counterFromPartialIv(opened.partialIv)).toBe(300)
    })
    test("refuses tampering, another topic, another key and malformed messages", async () => {
        const msg = await seal(Buffer.from("reading"), { key: KEY, kid, externalAad: aad, partialIv: partialIvFromCounter(7), contextIv })
        const flipped = msg.slice(0, msg.length)
        flipped[msg.length - 1] ^= 1
        expect(await coseRefusal(flipped, KEY, aad, contextIv)).toBe("authentication failed")
        expect(await coseRefusal(msg, KEY, Buffer.from("things/y/up/readings"), contextIv)).toBe("authentication failed")
        expect(await coseRefusal(msg, counting(32, 1), aad, contextIv)).toBe("authentication failed")
        // the partial IV is authenticated through the nonce: moving it breaks the tag
        const movedIv = msg.slice(0, msg.length)
        // unprotected map ends with 06 41 07: label 6, a one-byte partial IV, 7
        let at = 0
        while (!(movedIv[at] === 6 && movedIv[at + 1] === 0x41 && movedIv[at + 2] === 7)) at++
        movedIv[at + 2] = 8
        expect(await coseRefusal(movedIv, KEY, aad, contextIv)).toBe("authentication failed")
        const cut = await coseRefusal(msg.slice(0, msg.length - 3), KEY, aad, contextIv)
        expect(cut.indexOf("CBOR") >= 0).toBe(true)
        expect(await coseRefusal(hex`d0834040a0`, KEY, aad, contextIv)).toBe("ciphertext is not a byte string")
        expect(await coseRefusal(hex`c0834040a0`, KEY, aad, contextIv)).toBe("not a tagged COSE_Encrypt0")
        // alg 10 (AES-CCM-16-64-128) is not what we speak
        expect(await coseRefusal(hex`d08343a1010aa20441010601484142434445464748`, KEY, aad, contextIv)).toBe(
            "algorithm must be AES-CCM-16-64-256 in the protected header"
        )
        // a partial IV with a leading zero byte would alias another counter
        expect(await coseRefusal(hex`d08343a1010ba204410106420007484142434445464748`, KEY, aad, contextIv)).toBe("partial IV not minimal")
        expect(await coseRefusal(hex`d08343a1010ba1064107484142434445464748`, KEY, aad, contextIv)).toBe("no kid")
    })
})

describe("message counter", () => {
    test("never repeats across reopens (reboots): resumes at the end of the reserved block", async () => {
        await deleteKey("tc_piv")
        const a = await MessageCounter.open({ key: "tc_piv", block: 4 })
        expect(await a.next()).toBe(0)
        expect(await a.next()).toBe(1)
        // power cut here: 2 and 3 were reserved but not used
        const b = await MessageCounter.open({ key: "tc_piv", block: 4 })
        expect(await b.next()).toBe(4)
        for (let i = 5; i < 10; ++i) expect(await b.next()).toBe(i)
        const c = await MessageCounter.open({ key: "tc_piv", block: 4 })
        expect(await c.next()).toBe(12)
    })
    test("an unreadable reservation stops the counter instead of restarting it", async () => {
        await writeBytes("tc_piv", hex`ff00`)
        expect(await asyncRefusal(CounterError, async () => await MessageCounter.open({ key: "tc_piv" }))).toBe("counter tc_piv unreadable")
    })
})
