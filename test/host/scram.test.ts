/** SCRAM-SHA-256 on the host: the RFC 7677 §3 example, and server behaviour. */
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { describe, test } from "node:test"
import {
    makeVerifier,
    parseClientFirst,
    SCRAM_MAX_CLIENT_MESSAGE,
    ScramClient,
    ScramProtocolError,
    type ScramKeyCache,
    serverFinal,
    serverFirst,
} from "../../devs/registry/scram.ts"

const SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"

describe("SCRAM-SHA-256 (host)", () => {
    test("RFC 7677 §3 example: client messages and server signature", () => {
        const c = new ScramClient("user", Buffer.from("pencil"), "rOprNGfwEbeRWgbNEkqO")
        assert.equal(c.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        assert.equal(
            c.final(SERVER_FIRST),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        )
        c.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        assert.throws(() => c.verify("v=AAAA"), ScramProtocolError)
    })

    test("RFC 7677 §3 example: the server accepts the RFC's proof with only the verifier", () => {
        const verifier = makeVerifier(Buffer.from("pencil"), Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"), 4096)
        const first = parseClientFirst("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        const exchange = {
            username: "user",
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            authPrefix: `${first.bare},${SERVER_FIRST}`,
            verifier,
        }
        const final = serverFinal(
            exchange,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        )
        assert.equal(final, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        // the same proof bytes in other texts Node's base64 decoder would take: refused, not verified
        const prefix = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p="
        for (const proof of [
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=junk",
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
            "dHzb ZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "dHzbZapWIk4jUhN-Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        ])
            assert.throws(() => serverFinal(exchange, prefix + proof), /not canonical base64/, proof)
    })

    test("a wrong password fails, a right one passes, both against a fresh verifier", () => {
        const verifier = makeVerifier(Buffer.from("right"), randomBytes(16))
        for (const [pw, ok] of [
            ["right", true],
            ["wrong", false],
        ] as const) {
            const c = new ScramClient("dev", Buffer.from(pw))
            const { message, exchange } = serverFirst(parseClientFirst(c.first()), verifier)
            const result = serverFinal(exchange, c.final(message))
            assert.equal(result !== undefined, ok)
            if (result) c.verify(result)
        }
    })

    test("a client that keeps its keys (RFC 5802 §5.1) logs in again without the password's PBKDF2", () => {
        const verifier = makeVerifier(Buffer.from("right"), randomBytes(16))
        const cache: ScramKeyCache = new Map()
        for (const pw of ["right", "not even asked"]) {
            const c = new ScramClient("dev", Buffer.from(pw), undefined, cache)
            const { message, exchange } = serverFirst(parseClientFirst(c.first()), verifier)
            c.verify(serverFinal(exchange, c.final(message))!)
        }
        assert.equal(cache.size, 1)
    })

    test("protocol violations are refused", () => {
        assert.throws(() => parseClientFirst("y,,n=a,r=b"), ScramProtocolError)
        assert.throws(() => parseClientFirst("p=tls-unique,,n=a,r=b"), ScramProtocolError)
        assert.throws(() => parseClientFirst("n,,n=a"), ScramProtocolError)
        assert.throws(() => parseClientFirst("n,,n=a=41,r=b"), ScramProtocolError)
        const verifier = makeVerifier(Buffer.from("x"), randomBytes(16))
        const c = new ScramClient("dev", Buffer.from("x"))
        const { exchange } = serverFirst(parseClientFirst(c.first()), verifier)
        assert.throws(() => serverFinal(exchange, "c=biws,r=other,p=AAAA"), ScramProtocolError)
        assert.throws(() => serverFinal(exchange, `c=eSws,r=${exchange.nonce},p=AAAA`), ScramProtocolError)
    })

    test("a client message longer than the server reads is refused before it is parsed: a stranger parks little in an exchange", () => {
        const nonce = "r".repeat(24)
        assert.equal(parseClientFirst(`n,,n=${"u".repeat(SCRAM_MAX_CLIENT_MESSAGE - 35)},r=${nonce}`).clientNonce, nonce)
        assert.throws(() => parseClientFirst(`n,,n=${"u".repeat(SCRAM_MAX_CLIENT_MESSAGE)},r=${nonce}`), /too long/)
        const verifier = makeVerifier(Buffer.from("x"), randomBytes(16))
        const { exchange } = serverFirst(parseClientFirst(new ScramClient("dev", Buffer.from("x")).first()), verifier)
        assert.throws(
            () => serverFinal(exchange, `c=biws,r=${exchange.nonce},x=${"x".repeat(SCRAM_MAX_CLIENT_MESSAGE)},p=AAAA`),
            /too long/
        )
    })
})
