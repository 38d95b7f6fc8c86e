/**
 * The owner service's verification path against the independent
 * implementations (cbor2, cose-js), and the defects of issue 12: a message
 * whose protected header is not CBOR or has trailing bytes, an authentic
 * message holding a 64-bit integer, deep nesting, a wrong kid and replays are
 * each a `Rejected` with its reason, never an exception of another kind.
 */
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { describe, test } from "node:test"
import { decode, encode } from "cbor2"
import { CborError, CborTagged, decodeCbor } from "../../devs/owner/cbor.ts"
import { openEncrypt0 as coseOpen, sealEncrypt0 as coseSeal } from "../../devs/owner/cose.ts"
import { encStructure, openEncrypt0, sealEncrypt0 } from "../../devs/owner/encrypt0.ts"
import { channelKeys } from "../../devs/owner/keys.ts"
import { RejectReason, ReplayWindow, UplinkVerifier, type Rejected } from "../../devs/owner/verifier.ts"
import { APPENDIX_A } from "../vectors/rfc8949-appendix-a.ts"

const id = randomBytes(16).toString("hex")
const root = randomBytes(32)
const up = channelKeys(root, id, "up")
const topic = `things/${id}/up/readings`

/** The same value as cbor2 gives it, in the reader's terms (Maps, Buffers, CborTagged, numbers). */
function normalize(v: unknown): unknown {
    if (v instanceof Uint8Array) return Buffer.from(v)
    if (Array.isArray(v)) return v.map(normalize)
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [normalize(k), normalize(x)]))
    if (v && typeof v === "object" && "tag" in v && "contents" in v) return new CborTagged(Number(v.tag), normalize(v.contents) as never)
    if (typeof v === "bigint") return Number(v)
    return v
}

const seal = (plaintext: Buffer, counter: number, t = topic) =>
    coseSeal(plaintext, { key: up.key, kid: up.kid, contextIv: up.contextIv, counter, externalAad: Buffer.from(t) })

function verifier() {
    const device = { up, window: new ReplayWindow() }
    return { device, v: new UplinkVerifier(d => (d === id ? device : undefined)) }
}

/** The reason `verify` gives, or "accepted"; anything but a `Rejected` fails the test. */
function outcome(v: UplinkVerifier, t: string, payload: Buffer): string {
    try {
        v.verify(t, payload)
        return "accepted"
    } catch (e) {
        assert.equal((e as Error).name, "Rejected", `not a rejection: ${(e as Error).stack}`)
        return (e as Rejected).reason
    }
}

/** A COSE_Encrypt0 with hand-made parts (for malformed headers). */
function encrypt0(protectedBytes: Buffer, unprotected: Map<number, unknown>, ciphertext: Buffer, trailing = Buffer.alloc(0)) {
    const body = Buffer.from(encode([protectedBytes, unprotected, ciphertext]))
    return Buffer.concat([Buffer.from([0xd0]), body, trailing])
}

describe("the owner's CBOR reader", () => {
    test("reads RFC 8949 Appendix A as cbor2 does, and refuses what it must (big integers, indefinite lengths) with a CborError", () => {
        let compared = 0
        for (const vector of APPENDIX_A) {
            const bytes = Buffer.from(vector.hex, "hex")
            if (vector.outcome === "refused") {
                assert.throws(() => decodeCbor(bytes), CborError, vector.diag)
                continue
            }
            let mine: unknown
            try {
                mine = decodeCbor(bytes)
            } catch (e) {
                // simple values other than false/true/null/undefined are outside what devices send
                assert.ok(e instanceof CborError && /simple value/.test(e.message), `${vector.diag}: ${(e as Error).message}`)
                continue
            }
            const theirs = decode(bytes, { preferMap: true })
            // cbor2 turns some tags into values (bignums into BigInt, dates into Date, URIs into URL); this reader leaves every tag a
            // CborTagged, which nothing downstream takes
            if (typeof theirs === "bigint" || theirs instanceof Date || theirs instanceof URL) {
                assert.ok(mine instanceof CborTagged && [0, 1, 2, 3, 32].includes(mine.tag), vector.diag)
                continue
            }
            assert.deepEqual(mine, normalize(theirs), vector.diag)
            compared++
        }
        assert.ok(compared >= 60, `${compared} vectors compared`)
    })

    test("refuses trailing bytes, lies about lengths, deep nesting, duplicate keys and bad UTF-8", () => {
        const cases: [string, string][] = [
            ["0000", "trailing"],
            ["9bffffffffffffffff", "integer beyond"],
            ["5a7fffffff00", "bytes needed"],
            ["9a7fffffff", "bytes needed"],
            ["81".repeat(40) + "00", "nesting deeper"],
            ["a2010201 03".replace(" ", ""), "duplicate map key"],
            ["62c328", "UTF-8"],
            ["5f4100ff", "indefinite"],
            ["1c", "reserved"],
        ]
        for (const [hex, why] of cases) assert.throws(() => decodeCbor(Buffer.from(hex, "hex")), new RegExp(why), hex)
        // exactly 2^53 - 1 is read; 2^53 is not
        assert.equal(decodeCbor(Buffer.from("1b001fffffffffffff", "hex")), Number.MAX_SAFE_INTEGER)
        assert.throws(() => decodeCbor(Buffer.from("1b0020000000000000", "hex")), /integer beyond/)
    })
})

describe("COSE_Encrypt0 on node:crypto", () => {
    test("opens what cose-js seals, and cose-js opens what it seals; the Enc_structure is cbor2's", async () => {
        // (cose-js cannot seal an empty plaintext; devices never send one)
        for (const size of [1, 13, 100, 300]) {
            const plaintext = randomBytes(size)
            const counter = Math.floor(Math.random() * 2 ** 32)
            const byCose = await seal(plaintext, counter)
            assert.deepEqual(openEncrypt0(byCose, up, Buffer.from(topic)).plaintext, plaintext)
            const byUs = sealEncrypt0(plaintext, up, counter, Buffer.from(topic))
            assert.deepEqual(byUs, byCose, "the same bytes as cose-js")
            const opened = await coseOpen(byUs, { key: up.key, contextIv: up.contextIv, externalAad: Buffer.from(topic) })
            assert.deepEqual(opened.plaintext, plaintext)
        }
        const prot = Buffer.from("a1010b", "hex")
        assert.deepEqual(
            encStructure(prot, Buffer.from(topic)),
            Buffer.from(encode(["Encrypt0", new Uint8Array(prot), new Uint8Array(Buffer.from(topic))]))
        )
    })
})

describe("the uplink verifier", () => {
    test("the crashes of issue 12 are rejections: protected headers not CBOR or with trailing bytes, bytes after the message", async () => {
        const { v } = verifier()
        const good = await seal(Buffer.from(encode([])), 1)
        const [, unprot, ciphertext] = decode(good.subarray(1)) as unknown[] as [Uint8Array, Map<number, unknown>, Uint8Array]
        const u = new Map([...unprot].map(([k, x]) => [Number(k), x]))
        const cases: [string, Buffer][] = [
            ["protected header not CBOR", encrypt0(Buffer.from([0xff, 0x00]), u, Buffer.from(ciphertext))],
            ["protected header with trailing bytes", encrypt0(Buffer.from("a1010b00", "hex"), u, Buffer.from(ciphertext))],
            ["protected header a 64-bit integer", encrypt0(Buffer.from("1bffffffffffffffff", "hex"), u, Buffer.from(ciphertext))],
            ["trailing bytes after the message", Buffer.concat([good, Buffer.from([0])])],
            ["not CBOR at all", Buffer.from("not cbor")],
            ["a huge integer instead of the message", Buffer.from("1bffffffffffffffff", "hex")],
            ["deep nesting", Buffer.from("d083" + "81".repeat(5000) + "00", "hex")],
            ["untagged", good.subarray(1)],
            ["empty", Buffer.alloc(0)],
        ]
        for (const [what, payload] of cases) assert.equal(outcome(v, topic, payload), RejectReason.Malformed, what)
        // and the real message is still accepted afterwards
        assert.equal(outcome(v, topic, good), "accepted")
    })

    test("an authentic message with a 64-bit integer, BigInt-sized values or deep nesting: content, and no window moved", async () => {
        const { v, device } = verifier()
        const state = `things/${id}/up/state`
        const big = Buffer.from(encode(new Map([["uptime", 2n ** 63n]])))
        assert.equal(outcome(v, state, await seal(big, 5, state)), RejectReason.Content)
        const nested = Buffer.from("81".repeat(50) + "00", "hex")
        assert.equal(outcome(v, `things/${id}/up/events`, await seal(nested, 6, `things/${id}/up/events`)), RejectReason.Content)
        const senmlWrongTypes = Buffer.from(
            encode([
                new Map<number, unknown>([
                    [0, 7],
                    [2, 1],
                ]),
            ])
        )
        assert.equal(outcome(v, topic, await seal(senmlWrongTypes, 7)), RejectReason.Content)
        assert.equal(device.window.highest, -1)
        // a state with a big but exact integer, bytes and a nested map comes out JSON-safe
        const ok = Buffer.from(
            encode(
                new Map<string, unknown>([
                    ["uptime", 2 ** 40],
                    ["digest", new Uint8Array([0xab, 0xcd])],
                    ["intervals", new Map([["shtc3", 7000]])],
                ])
            )
        )
        const m = v.verify(state, await seal(ok, 8, state))
        assert.equal(m.kind, "state")
        assert.equal(JSON.stringify(m.kind === "state" && m.state), '{"uptime":1099511627776,"digest":"abcd","intervals":{"shtc3":7000}}')
    })

    test("an update report is read with its fields; any other shape of it is content, and moves no window", async () => {
        const { v, device } = verifier()
        const t = `things/${id}/up/update`
        const digest = randomBytes(32)
        const report = (fields: [string, unknown][]) => Buffer.from(encode(new Map(fields)))
        const fields: [string, unknown][] = [
            ["digest", new Uint8Array(digest)],
            ["sequence", 8],
            ["step", "refused"],
            ["reason", "rollback: sequence 1 is not above the security counter 8"],
        ]
        const bad: [string, [string, unknown][]][] = [
            ["a 31-byte digest", [["digest", new Uint8Array(31)], ...fields.slice(1)]],
            ["a digest as text", [["digest", digest.toString("hex")], ...fields.slice(1)]],
            ["a negative sequence", [fields[0], ["sequence", -1], ...fields.slice(2)]],
            ["a fractional sequence", [fields[0], ["sequence", 1.5], ...fields.slice(2)]],
            ["an unknown step", [...fields.slice(0, 2), ["step", "installed"]]],
            ["no step", fields.slice(0, 2)],
            ["a reason of 65 characters", [...fields.slice(0, 3), ["reason", "x".repeat(65)]]],
            ["a field it should not have", [...fields, ["extra", 1]]],
            ["a number as key", [...fields.slice(0, 3), [7 as unknown as string, 1]]],
        ]
        let counter = 1
        for (const [what, f] of bad) assert.equal(outcome(v, t, await seal(report(f), counter++, t)), RejectReason.Content, what)
        assert.equal(outcome(v, t, await seal(Buffer.from(encode(["refused"])), counter++, t)), RejectReason.Content, "not a map")
        assert.equal(device.window.highest, -1)
        const m = v.verify(t, await seal(report(fields), counter, t))
        assert.deepEqual(m.kind === "update" && m.report, {
            digest: digest.toString("hex"),
            sequence: 8,
            step: "refused",
            reason: "rollback: sequence 1 is not above the security counter 8",
        })
        assert.equal(device.window.highest, counter)
        // under another topic's AAD it does not open: a report cannot pass for a reading or back
        assert.equal(outcome(v, topic, await seal(report(fields), counter + 1, t)), RejectReason.Forged)
    })

    test("kid, topic, key and counter: each mismatch has its reason", async () => {
        const { v } = verifier()
        const readings = Buffer.from(
            encode([
                new Map<number, unknown>([
                    [0, "s/temperature"],
                    [1, "Cel"],
                    [2, 21.5],
                ]),
            ])
        )
        const other = randomBytes(16).toString("hex")
        const wrongKid = await coseSeal(readings, {
            key: up.key,
            kid: Buffer.from(other, "hex"),
            contextIv: up.contextIv,
            counter: 1,
            externalAad: Buffer.from(topic),
        })
        assert.equal(outcome(v, topic, wrongKid), RejectReason.WrongKid)
        const m10 = await seal(readings, 10)
        assert.equal(outcome(v, `things/${other}/up/readings`, m10), RejectReason.UnknownDevice)
        assert.equal(outcome(v, `things/${id}/up/other`, m10), RejectReason.Topic)
        assert.equal(outcome(v, `things/${id}/up/readings/x`, m10), RejectReason.Topic)
        assert.equal(outcome(v, `things/${id}/up/state`, m10), RejectReason.Forged)
        const wrongKey = await coseSeal(readings, {
            key: randomBytes(32),
            kid: up.kid,
            contextIv: up.contextIv,
            counter: 11,
            externalAad: Buffer.from(topic),
        })
        assert.equal(outcome(v, topic, wrongKey), RejectReason.Forged)
        // replays: the same counter twice, an old one below the window; late arrivals inside the window once each
        assert.equal(outcome(v, topic, m10), "accepted")
        assert.equal(outcome(v, topic, m10), RejectReason.Replayed)
        assert.equal(outcome(v, topic, await seal(readings, 80)), "accepted")
        assert.equal(outcome(v, topic, await seal(readings, 17)), "accepted")
        assert.equal(outcome(v, topic, await seal(readings, 17)), RejectReason.Replayed)
        assert.equal(outcome(v, topic, await seal(readings, 16)), RejectReason.Replayed, "64 below 80: outside the window")
        assert.equal(outcome(v, topic, await seal(readings, 80)), RejectReason.Replayed)
    })
})
