/**
 * MQTT 3.1.1 control packets (OASIS standard, 2014): the subset a sensor
 * node needs. Encoders build whole packets; `parsePacket` reads one packet
 * from the front of a buffer and treats the broker's bytes as hostile:
 * lengths are checked against what is there and against a size cap, and a
 * topic must be well-formed UTF-8 without U+0000 (§1.5.3).
 *
 * Multi-byte integers in MQTT are big-endian (§1.5.2); the VM's
 * `setAt`/`getAt` are little-endian only, so bytes are placed by hand.
 */
import { isValidUtf8 } from "../bytes/utf8"

/** Control packet types (§2.2.1). */
export const enum PacketType {
    Connect = 1,
    Connack = 2,
    Publish = 3,
    Puback = 4,
    Subscribe = 8,
    Suback = 9,
    Pingreq = 12,
    Pingresp = 13,
    Disconnect = 14,
}

/** CONNECT flags (§3.1.2.3); this client sends no will. */
export const enum ConnectFlag {
    CleanSession = 0x02,
    Password = 0x40,
    UserName = 0x80,
}

/** CONNACK return codes (§3.2.2.3). */
export const enum ConnackCode {
    Accepted = 0,
    UnacceptableProtocolVersion = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUserNameOrPassword = 4,
    NotAuthorized = 5,
}

/** SUBACK's return code for a refused subscription (§3.9.3). */
export const SUBACK_FAILURE = 0x80

/** Protocol level of MQTT 3.1.1 (§3.1.2.2). */
const PROTOCOL_LEVEL = 4

/** Raised on a packet that breaks the protocol; the connection must be dropped. */
export class MqttProtocolError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "MqttProtocolError"
    }
}

/** One packet read from the broker. */
export interface MqttPacket {
    type: number
    /** The four low bits of the first byte. */
    flags: number
    body: Buffer
}

function u16(n: number): Buffer {
    const b = Buffer.alloc(2)
    b[0] = (n >> 8) & 0xff
    b[1] = n & 0xff
    return b
}

/** A UTF-8 string or binary field with its two-byte length (§1.5.3). */
function field(data: Buffer): Buffer {
    if (data.length > 0xffff) throw new MqttProtocolError("field longer than 65535 bytes")
    return u16(data.length).concat(data)
}

/** Remaining Length (§2.2.3): 7 bits per byte, at most 4 bytes. */
function remainingLength(n: number): Buffer {
    if (n > 268435455) throw new MqttProtocolError("packet too large")
    const out: number[] = []
    for (;;) {
        const digit = n % 128
        n = Math.floor(n / 128)
        out.push(n > 0 ? digit | 0x80 : digit)
        if (n === 0) return Buffer.from(out)
    }
}

function packet(first: number, body: Buffer): Buffer {
    return Buffer.from([first]).concat(remainingLength(body.length)).concat(body)
}

/** Options of a CONNECT packet. */
export interface ConnectFields {
    clientId: string
    username: string
    password: string
    keepAliveS: number
}

/** CONNECT (§3.1) with a clean session and user name + password. */
export function encodeConnect(c: ConnectFields): Buffer {
    const flags = ConnectFlag.UserName | ConnectFlag.Password | ConnectFlag.CleanSession
    const header = field(Buffer.from("MQTT"))
        .concat(Buffer.from([PROTOCOL_LEVEL, flags]))
        .concat(u16(c.keepAliveS))
    const payload = field(Buffer.from(c.clientId))
        .concat(field(Buffer.from(c.username)))
        .concat(field(Buffer.from(c.password)))
    return packet(PacketType.Connect << 4, header.concat(payload))
}

/** PUBLISH (§3.3); `packetId` only for QoS 1. */
export function encodePublish(topic: string, payload: Buffer, qos: 0 | 1, packetId: number): Buffer {
    let body = field(Buffer.from(topic))
    if (qos !== 0) body = body.concat(u16(packetId))
    return packet((PacketType.Publish << 4) | (qos << 1), body.concat(payload))
}

/** PUBACK (§3.4). */
export function encodePuback(packetId: number): Buffer {
    return packet(PacketType.Puback << 4, u16(packetId))
}

/** SUBSCRIBE (§3.8) to one filter; the fixed header's flags must be 0010. */
export function encodeSubscribe(packetId: number, filter: string, qos: 0 | 1): Buffer {
    return packet(
        (PacketType.Subscribe << 4) | 2,
        u16(packetId)
            .concat(field(Buffer.from(filter)))
            .concat(Buffer.from([qos]))
    )
}

/** PINGREQ (§3.12). */
export function encodePingreq(): Buffer {
    return Buffer.from([PacketType.Pingreq << 4, 0])
}

/** DISCONNECT (§3.14). */
export function encodeDisconnect(): Buffer {
    return Buffer.from([PacketType.Disconnect << 4, 0])
}

/**
 * Reads one packet from the front of `buf`. Returns `undefined` when more
 * bytes are needed, the packet and its length when complete; throws on a
 * malformed length or a packet above `maxBytes`.
 */
export function parsePacket(buf: Buffer, maxBytes: number): { packet: MqttPacket; size: number } {
    if (buf.length < 2) return undefined
    let length = 0
    let multiplier = 1
    let i = 1
    for (;;) {
        if (i > 4) throw new MqttProtocolError("malformed remaining length")
        if (i >= buf.length) return undefined
        const digit = buf[i++]
        length += (digit & 0x7f) * multiplier
        multiplier *= 128
        if ((digit & 0x80) === 0) break
    }
    if (i + length > maxBytes) throw new MqttProtocolError(`packet of ${i + length} bytes exceeds ${maxBytes}`)
    if (buf.length < i + length) return undefined
    return {
        packet: { type: buf[0] >> 4, flags: buf[0] & 15, body: buf.slice(i, i + length) },
        size: i + length,
    }
}

/** Reads a big-endian u16 at `at`, checking bounds. */
export function readU16(b: Buffer, at: number): number {
    if (at + 2 > b.length) throw new MqttProtocolError("packet cut short")
    return (b[at] << 8) | b[at + 1]
}

/** An application message delivered by the broker. */
export interface MqttMessage {
    topic: string
    payload: Buffer
    qos: number
    packetId: number
}

/** Parses the body of an incoming PUBLISH (§3.3.2). */
export function decodePublish(p: MqttPacket): MqttMessage {
    const qos = (p.flags >> 1) & 3
    if (qos > 1) throw new MqttProtocolError(`QoS ${qos} not subscribed to`)
    const topicLength = readU16(p.body, 0)
    if (2 + topicLength > p.body.length) throw new MqttProtocolError("topic cut short")
    const topic = p.body.slice(2, 2 + topicLength)
    // MQTT-1.5.3-1 and -2: a receiver of ill-formed UTF-8 or of U+0000 in a string closes the connection
    if (!isValidUtf8(topic, true)) throw new MqttProtocolError("topic is not UTF-8 without U+0000")
    let at = 2 + topicLength
    let packetId = 0
    if (qos !== 0) {
        packetId = readU16(p.body, at)
        at += 2
    }
    return { topic: topic.toString("utf-8"), payload: p.body.slice(at, p.body.length), qos, packetId }
}
