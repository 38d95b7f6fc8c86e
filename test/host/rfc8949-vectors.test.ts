/**
 * Checks the shared RFC 8949 Appendix A table (test/vectors) against cbor2,
 * so the device suite's expectations do not rest on our reading of the RFC alone.
 */
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { decode } from "cbor2"
import { APPENDIX_A } from "../vectors/rfc8949-appendix-a.ts"

const cbor = { decode: (b: Uint8Array) => decode(b, { preferMap: true }) as unknown }

describe("RFC 8949 Appendix A table", () => {
    test("lists no example twice", () => {
        assert.equal(new Set(APPENDIX_A.map(v => v.hex)).size, APPENDIX_A.length)
    })

    test("every example is well-formed CBOR that cbor2 reads", () => {
        for (const v of APPENDIX_A) assert.doesNotThrow(() => cbor.decode(Buffer.from(v.hex, "hex")), v.diag)
    })

    test("numbers and texts decode to the values listed", () => {
        for (const v of APPENDIX_A) {
            const got = cbor.decode(Buffer.from(v.hex, "hex"))
            if (v.number !== undefined) assert.ok(Object.is(got, v.number), `${v.diag}: ${got}`)
            if (v.text !== undefined) assert.equal(got, v.text, v.diag)
        }
    })

    test("integers refused by the firmware are exactly those beyond 2^53", () => {
        const indefinite = /^(5f|7f|9f|bf)|9f|bf/
        for (const v of APPENDIX_A.filter(x => x.outcome === "refused" && !indefinite.test(x.hex))) {
            const got = cbor.decode(Buffer.from(v.hex, "hex"))
            assert.equal(typeof got, "bigint", v.diag)
            assert.ok((got as bigint) > 2n ** 53n || (got as bigint) < -(2n ** 53n), v.diag)
        }
    })
})
