import { describe, expect, test } from "@devicescript/test"
import { base32Decode, base32Encode, groupCode } from "../../src/codec/base32"
import { base64Decode, base64Encode } from "../../src/codec/base64"
import { pbkdf2Sha256, ScramClient, ScramError } from "../../src/identity/scram"
import { asyncRefusal, refusal } from "./support"

/** RFC 7677 §3 example exchange. */
const USER = "user"
const PASSWORD = "pencil"
const CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
const SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
const CLIENT_FINAL = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
const SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/** The message of the ScramError with which the client must refuse `serverFirst`. */
async function scramRefusal(serverFirst: string): Promise<string> {
    const c = new ScramClient({ username: USER, password: Buffer.from(PASSWORD), nonce: CLIENT_NONCE })
    c.clientFirst()
    return await asyncRefusal(ScramError, async () => await c.clientFinal(serverFirst))
}

describe("base64 and base32 (RFC 4648 §10 vectors)", () => {
    test("base64", () => {
        const vectors = ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"]
        const plain = ["", "f", "fo", "foo", "foob", "fooba", "foobar"]
        for (let i = 0; i < plain.length; ++i) {
            expect(base64Encode(Buffer.from(plain[i]))).toBe(vectors[i])
            expect(base64Decode(vectors[i]).toString("utf-8")).toBe(plain[i])
        }
        expect(base64Decode("Zm9=")).toBe(undefined) // non-zero unused bits
        expect(base64Decode("Zm9vY")).toBe(undefined)
        expect(base64Decode("Zm=v")).toBe(undefined)
        expect(base64Decode("Zm9v!A==")).toBe(undefined)
    })
    test("base32", () => {
        const vectors = ["", "MY", "MZXQ", "MZXW6", "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI"]
        const plain = ["", "f", "fo", "foo", "foob", "fooba", "foobar"]
        for (let i = 0; i < plain.length; ++i) {
            expect(base32Encode(Buffer.from(plain[i]))).toBe(vectors[i])
            expect(base32Decode(vectors[i]).toString("utf-8")).toBe(plain[i])
        }
        expect(base32Decode("mzxw-6ytb oi").toString("utf-8")).toBe("foobar")
        expect(base32Decode("MZXW1")).toBe(undefined)
        expect(groupCode("ABCDEFGHIJ")).toBe("ABCD-EFGH-IJ")
    })
})

describe("SCRAM-SHA-256 client", () => {
    test("PBKDF2-HMAC-SHA-256 (RFC 7914 §11 vector, c=1)", async () => {
        const dk = await pbkdf2Sha256(Buffer.from("passwd"), Buffer.from("salt"), 1)
        expect(dk.toString("hex")).toBe("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
    })
    test("PBKDF2-HMAC-SHA-256: the RFC 6070 inputs with SHA-256, a NUL in password and salt, a key longer than a block", async () => {
        // first 32 bytes of the derived keys (Node's crypto.pbkdf2Sync agrees); every word of U_i is XORed in
        const vectors: [string, string, number, string][] = [
            ["password", "salt", 1, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"],
            ["password", "salt", 2, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"],
            ["password", "salt", 4096, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"],
            [
                "passwordPASSWORDpassword",
                "saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1",
            ],
            ["pass\0word", "sa\0lt", 4096, "89b69d0516f829893c696226650a86878c029ac13ee276509d5ae58b6466a724"],
        ]
        for (const v of vectors) {
            const dk = await pbkdf2Sha256(Buffer.from(v[0]), Buffer.from(v[1]), v[2])
            expect(dk.toString("hex")).toBe(v[3])
        }
        let long = ""
        for (let i = 0; i < 100; ++i) long += "x"
        const dk = await pbkdf2Sha256(Buffer.from(long), Buffer.from("salt"), 3)
        expect(dk.toString("hex")).toBe("59bfa49750dd5462ce38370a1e7abe0736ff334cf1c2f0d84f23a03435d660d1")
    })
    test("RFC 7677 §3 example exchange", async () => {
        const c = new ScramClient({ username: USER, password: Buffer.from(PASSWORD), nonce: CLIENT_NONCE })
        expect(c.clientFirst()).toBe("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        expect(await c.clientFinal(SERVER_FIRST)).toBe(CLIENT_FINAL)
        c.verifyServerFinal(SERVER_FINAL)
    })
    test("a server that cannot produce the signature is refused", async () => {
        const c = new ScramClient({ username: USER, password: Buffer.from(PASSWORD), nonce: CLIENT_NONCE })
        c.clientFirst()
        await c.clientFinal(SERVER_FIRST)
        const forged = "v=" + base64Encode(Buffer.alloc(32))
        expect(refusal(ScramError, () => c.verifyServerFinal(forged))).toBe("server signature does not verify")
        expect(refusal(ScramError, () => c.verifyServerFinal("e=invalid-proof"))).toBe("server refused: invalid-proof")
    })
    test("weak or malformed server-first messages are refused", async () => {
        const rest = "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        expect((await scramRefusal(`r=someoneelse,${rest}`)).indexOf("nonce") >= 0).toBe(true)
        expect((await scramRefusal(`r=${CLIENT_NONCE},${rest}`)).indexOf("nonce") >= 0).toBe(true)
        expect((await scramRefusal(`r=${CLIENT_NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1`)).indexOf("iteration") >= 0).toBe(true)
        expect((await scramRefusal(`r=${CLIENT_NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x`)).indexOf("iteration") >= 0).toBe(true)
        expect((await scramRefusal(`r=${CLIENT_NONCE}x,i=4096`)).indexOf("salt") >= 0).toBe(true)
        expect((await scramRefusal(`m=ext,r=${CLIENT_NONCE}x,${rest}`)).indexOf("extension") >= 0).toBe(true)
        expect((await scramRefusal("garbage")).indexOf("malformed") >= 0).toBe(true)
    })
})
