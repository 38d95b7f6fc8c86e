/**
 * Fuzz campaigns of the codecs the network reaches first: the CBOR decoder
 * (RFC 8949) and the MQTT packet parser (MQTT 3.1.1).
 *
 * CBOR, wrong acceptance: an accepted input that is not one well-formed data
 * item (RFC 8949 Appendix C, checked here by a separate walker), a value that
 * does not re-encode and decode to itself, and, for the default deterministic
 * decoder, an input that is not the deterministic encoding of its value
 * (§4.2.1; floats excepted, as a number cannot tell 1.0 from 1).
 *
 * MQTT, wrong acceptance: a packet whose Remaining Length (§2.2.3) or body
 * differs from the spec's decoding, "need more bytes" for a complete packet,
 * a packet over the cap, a PUBLISH whose topic, packet id or payload are
 * not the bytes received, and a topic of ill-formed UTF-8 or with U+0000
 * (§1.5.3: the receiver closes the connection), which the oracle checks
 * against RFC 3629 §4's byte ranges, not the parser's code-point arithmetic;
 * wrong refusal: a well-formed topic refused as ill-formed.
 */
import { CborError, CborMap, CborSimple, CborTag, CborValue, decodeCbor, encodeCbor } from "../../../src/codec/cbor"
import { decodePublish, encodePuback, encodePublish, MqttProtocolError, parsePacket, PacketType } from "../../../src/net/mqtt-packet"
import { APPENDIX_A } from "../../vectors/rfc8949-appendix-a"
import { Campaign, Verdict } from "./fuzzer"

function sameBytes(a: Buffer, b: Buffer): boolean {
    return a.length === b.length && a.toString("hex") === b.toString("hex")
}

/** Deep equality of decoded values: NaN equals NaN, maps compare as sets of entries. */
function sameValue(a: CborValue, b: CborValue): boolean {
    if (typeof a === "number") return typeof b === "number" && (a === b || (a !== a && b !== b))
    if (a instanceof Buffer) return b instanceof Buffer && sameBytes(a, b)
    if (Array.isArray(a)) {
        if (!Array.isArray(b) || a.length !== b.length) return false
        for (let i = 0; i < a.length; ++i) if (!sameValue(a[i], b[i])) return false
        return true
    }
    if (a instanceof CborMap) {
        if (!(b instanceof CborMap) || a.size() !== b.size()) return false
        for (let i = 0; i < a.keys.length; ++i) {
            let found = false
            for (let j = 0; j < b.keys.length; ++j)
                if (sameValue(a.keys[i], b.keys[j])) {
                    if (!sameValue(a.values[i], b.values[j])) return false
                    found = true
                }
            if (!found) return false
        }
        return true
    }
    if (a instanceof CborTag) return b instanceof CborTag && a.tag === b.tag && sameValue(a.value, b.value)
    if (a instanceof CborSimple) return b instanceof CborSimple && a.value === b.value
    return a === b
}

/** What the well-formedness walk found. */
interface WalkState {
    pos: number
    float: boolean
}

const MAX_WALK_DEPTH = 64

/** Walks one data item from `s.pos` (RFC 8949 Appendix C, definite lengths only); false if not well-formed. */
function walkItem(b: Buffer, s: WalkState, depth: number): boolean {
    if (depth > MAX_WALK_DEPTH || s.pos >= b.length) return false
    const ib = b[s.pos++]
    const major = ib >> 5
    const ai = ib & 31
    if (ai >= 28) return false // reserved (28..30), or indefinite (31): outside the subset
    let arg = ai
    let big = false
    if (ai >= 24) {
        const size = 1 << (ai - 24)
        if (s.pos + size > b.length) return false
        if (major === 7) {
            if (ai === 24) {
                if (b[s.pos] < 32) return false // a simple value below 32 in two bytes
            } else s.float = true
            s.pos += size
            return true
        }
        arg = 0
        for (let i = 0; i < size; ++i) {
            if (arg >= 0x1000000) big = true // beyond any length a buffer here can have
            arg = arg * 256 + b[s.pos++]
        }
    }
    if (major === 2 || major === 3) {
        if (big || s.pos + arg > b.length) return false
        s.pos += arg
        return true
    }
    if (major === 4 || major === 5) {
        if (big) return false
        const items = major === 5 ? 2 * arg : arg
        for (let i = 0; i < items; ++i) if (!walkItem(b, s, depth + 1)) return false
        return true
    }
    if (major === 6) return walkItem(b, s, depth + 1)
    return true
}

/** Whether `b` is exactly one well-formed data item, and whether it holds a float. */
function wellFormed(b: Buffer): { float: boolean } {
    const s: WalkState = { pos: 0, float: false }
    if (!walkItem(b, s, 0) || s.pos !== b.length) return undefined
    return { float: s.float }
}

/** Decodes with `deterministic` and checks what was accepted; undefined when refused. */
function cborOracle(input: Buffer, deterministic: boolean): Verdict {
    let value: CborValue
    try {
        value = decodeCbor(input, { deterministic })
    } catch (e: any) {
        if (e instanceof CborError) return "refused"
        throw e
    }
    const form = wellFormed(input)
    if (form === undefined) return { invalid: "accepted an input that is not one well-formed data item" }
    let again: Buffer
    try {
        again = encodeCbor(value)
    } catch (e: any) {
        if (e instanceof CborError) return { invalid: `accepted a value it cannot encode: ${e.message}` }
        throw e
    }
    if (!sameValue(decodeCbor(again), value)) return { invalid: `value does not survive re-encoding as ${again.toString("hex")}` }
    if (deterministic && !form.float && !sameBytes(again, input))
        return { invalid: `not the deterministic encoding of its value, ${again.toString("hex")}` }
    return "accepted"
}

const CBOR_SEEDS = [
    ...APPENDIX_A.filter(v => v.outcome === "roundtrip" || v.outcome === "value").map(v => Buffer.from(v.hex, "hex")),
    // a SenML pack and a COSE-like structure: nesting, negative map keys, byte strings
    encodeCbor([
        new CborMap().set(-2, "urn:dev:id:0a1b:").set(-3, 1700000000).set(0, "sht30/temperature").set(1, "Cel").set(2, 21.5),
        new CborMap().set(0, "sht30/humidity").set(1, "%RH").set(2, 44),
    ]),
    encodeCbor(new CborTag(16, [hex`a1010b`, new CborMap().set(4, hex`00112233`).set(6, hex`07`), hex`00112233445566778899aabb`])),
]

/** The CBOR decoder, deterministic (the default) and lenient. */
export const cborCampaign: Campaign = {
    name: "cbor",
    seeds: CBOR_SEEDS,
    maxBytes: 96,
    check: async input => {
        const strict = cborOracle(input, true)
        const lenient = cborOracle(input, false)
        if (strict !== "refused" && strict !== "accepted") return strict
        if (lenient !== "refused" && lenient !== "accepted") return lenient
        if (strict === "accepted" && lenient === "refused")
            return { invalid: "the deterministic decoder accepted what the lenient one refused" }
        return strict === "accepted" || lenient === "accepted" ? "accepted" : "refused"
    },
}

/** The cap the client reads with (src/net/mqtt.ts reads with its own; any cap will do for the parser). */
const MQTT_MAX_BYTES = 512

/** MQTT 3.1.1 §2.2.3's decoding of the Remaining Length: its value and where the body starts, or what is wrong. */
function remainingLength(b: Buffer): { value: number; start: number } | "incomplete" | "malformed" {
    let value = 0
    let multiplier = 1
    for (let i = 1; ; ++i) {
        if (i > 4) return "malformed"
        if (i >= b.length) return "incomplete"
        value += (b[i] & 127) * multiplier
        multiplier *= 128
        if ((b[i] & 128) === 0) return { value, start: i + 1 }
    }
}

function u16(b: Buffer, at: number): number {
    return (b[at] << 8) | b[at + 1]
}

/** The second byte's range after each lead byte of RFC 3629 §4's UTF8-2/3/4 rules; other continuations are 80..BF. */
function secondByteRange(lead: number): [number, number] {
    if (lead === 0xe0) return [0xa0, 0xbf]
    if (lead === 0xed) return [0x80, 0x9f]
    if (lead === 0xf0) return [0x90, 0xbf]
    if (lead === 0xf4) return [0x80, 0x8f]
    return [0x80, 0xbf]
}

/** An MQTT string's bytes by RFC 3629 §4's grammar, U+0000 left out (MQTT-1.5.3-1, -2). */
function mqttUtf8(b: Buffer): boolean {
    for (let i = 0; i < b.length;) {
        const lead = b[i]
        let length = 0
        if (lead >= 0x01 && lead <= 0x7f) length = 1
        else if (lead >= 0xc2 && lead <= 0xdf) length = 2
        else if (lead >= 0xe0 && lead <= 0xef) length = 3
        else if (lead >= 0xf0 && lead <= 0xf4) length = 4
        else return false
        if (i + length > b.length) return false
        const [low, high] = secondByteRange(lead)
        if (length > 1 && (b[i + 1] < low || b[i + 1] > high)) return false
        for (let k = 2; k < length; ++k) if (b[i + k] < 0x80 || b[i + k] > 0xbf) return false
        i += length
    }
    return true
}

/** Checks an accepted PUBLISH body byte for byte against §3.3.2, and a refused one's topic against §1.5.3. */
function publishOracle(flags: number, body: Buffer): Verdict {
    const topicLength = body.length < 2 ? 0 : u16(body, 0)
    // the topic when the body holds it whole (a slice past the end asks the VM for a buffer that size)
    const topic = 2 + topicLength <= body.length ? body.slice(2, 2 + topicLength) : undefined
    let m
    try {
        m = decodePublish({ type: PacketType.Publish, flags, body })
    } catch (e: any) {
        if (!(e instanceof MqttProtocolError)) throw e
        if (e.message.indexOf("UTF-8") >= 0 && topic !== undefined && mqttUtf8(topic))
            return { invalid: "a well-formed topic refused as ill-formed" }
        return "refused"
    }
    const qos = (flags >> 1) & 3
    if (qos > 1 || m.qos !== qos) return { invalid: `QoS ${qos} accepted as ${m.qos}` }
    if (topic === undefined) return { invalid: "accepted a topic cut short" }
    if (!mqttUtf8(topic)) return { invalid: "a topic of ill-formed UTF-8 or with U+0000 accepted (MQTT-1.5.3-1, -2)" }
    if (!sameBytes(Buffer.from(m.topic), topic)) return { invalid: "topic is not the bytes received" }
    let at = 2 + topicLength
    if (qos === 1) {
        if (m.packetId !== u16(body, at)) return { invalid: "packet id is not the one received" }
        at += 2
    }
    if (at > body.length || !sameBytes(m.payload, body.slice(at, body.length))) return { invalid: "payload is not the bytes received" }
    return "accepted"
}

/** Reads one packet as the client does, then checks it against the spec's decoding. */
async function mqttCheck(input: Buffer): Promise<Verdict> {
    let parsed
    try {
        parsed = parsePacket(input, MQTT_MAX_BYTES)
    } catch (e: any) {
        if (e instanceof MqttProtocolError) return "refused"
        throw e
    }
    const length = input.length < 2 ? "incomplete" : remainingLength(input)
    if (parsed === undefined) {
        if (length === "malformed") return { invalid: "asked for more bytes after a malformed Remaining Length" }
        if (length !== "incomplete" && length.start + length.value > MQTT_MAX_BYTES)
            return { invalid: "asked for more bytes of a packet over the cap" }
        if (length !== "incomplete" && length.start + length.value <= input.length)
            return { invalid: "asked for more bytes of a complete packet" }
        return "refused"
    }
    if (length === "incomplete" || length === "malformed") return { invalid: `parsed a packet whose Remaining Length is ${length}` }
    const size = length.start + length.value
    if (parsed.size !== size) return { invalid: `packet of ${parsed.size} bytes, the spec says ${size}` }
    if (size > MQTT_MAX_BYTES) return { invalid: "packet over the cap" }
    const p = parsed.packet
    if (p.type !== input[0] >> 4 || p.flags !== (input[0] & 15) || !sameBytes(p.body, input.slice(length.start, size)))
        return { invalid: "type, flags or body differ from the bytes" }
    return p.type === PacketType.Publish ? publishOracle(p.flags, p.body) : "accepted"
}

const TOPIC = "things/0a1b2c3d4e5f60718293a4b5c6d7e8f9/down/cmd"

/** The MQTT packet parser and the PUBLISH decoder. */
export const mqttCampaign: Campaign = {
    name: "mqtt",
    seeds: [
        encodePublish(TOPIC, hex`d08343a1010ba2044c0a1b2c3d4e5f6071829306410748656c6c6f`, 1, 7),
        encodePublish(TOPIC, Buffer.alloc(200), 0, 0),
        encodePublish("a", Buffer.alloc(0), 1, 65535),
        // QoS 0, topic "t/" and two-, three- and four-byte sequences (U+00E9, U+20AC, U+1D11E), for mutations to break
        hex`300e 000b 742f c3a9 e282ac f09d849e 01`,
        encodePuback(9),
        hex`20020000`, // CONNACK, accepted
        hex`9003000100`, // SUBACK
        hex`d000`, // PINGRESP
        encodePuback(1).concat(hex`d000`), // two packets in one read
    ],
    maxBytes: 300,
    check: mqttCheck,
}
