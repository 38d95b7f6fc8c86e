import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { CborMap, encodeCbor } from "../../src/codec/cbor"
import { decodePublish, encodeConnect, encodePublish, encodeSubscribe, MqttProtocolError, parsePacket } from "../../src/net/mqtt-packet"
import { EventLog } from "../../src/events/log"
import { deleteKey, writeBytes } from "../../src/storage/settings"
import { Command, DownlinkError, encodeCommand, parseCommand } from "../../src/uplink/downlink"
import { MAX_QUEUED_BYTES, OutboundQueue } from "../../src/uplink/queue"
import { asyncRefusal, filled, refusal, thrown } from "./support"

async function emptyQueue(prefix: string, ramCapacity: number, flashSlots: number, events?: EventLog): Promise<OutboundQueue> {
    const q = await OutboundQueue.open({ prefix, ramCapacity, flashSlots })
    while (q.size() > 0) await q.remove(await q.peek())
    return await OutboundQueue.open({ prefix, ramCapacity, flashSlots, events })
}

/** A payload that says who sent it (`from`) and its place in that sender's order (`i`). */
function tagged(from: number, i: number): Buffer {
    const p = filled(20, from)
    p[1] = i
    return p
}

describe("MQTT 3.1.1 packets", () => {
    test("CONNECT: protocol MQTT level 4, clean session, user name and password flags (§3.1)", () => {
        const p = encodeConnect({ clientId: "c", username: "u", password: "p", keepAliveS: 60 })
        expect(p.toString("hex")).toBe("101300044d51545404c2003c0001630001750001 70".split(" ").join(""))
    })
    test("PUBLISH QoS 1 and SUBSCRIBE (§3.3, §3.8), with a two-byte remaining length", () => {
        expect(encodePublish("a/b", hex`0102`, 1, 10).toString("hex")).toBe("3209" + "0003612f62" + "000a" + "0102")
        expect(encodeSubscribe(7, "x/#", 1).toString("hex")).toBe("8208" + "0007" + "0003782f23" + "01")
        const big = encodePublish("t", filled(200, 0), 0, 0)
        // 3 + 200 = 203 = 0xcb 0x01 in the variable-length encoding
        expect(big.slice(0, 3).toString("hex")).toBe("30cb01")
        expect(parsePacket(big, 1024).size).toBe(big.length)
    })
    test("parsing waits for whole packets and refuses malformed or oversized ones", () => {
        const p = encodePublish("a/b", hex`0102`, 1, 10)
        expect(parsePacket(p.slice(0, 5), 1024)).toBe(undefined)
        const parsed = parsePacket(p.concat(hex`d000`), 1024)
        expect(parsed.size).toBe(p.length)
        const m = decodePublish(parsed.packet)
        expect(m.topic).toBe("a/b")
        expect(m.packetId).toBe(10)
        expect(m.payload.toString("hex")).toBe("0102")
        expect(refusal(MqttProtocolError, () => parsePacket(hex`30ffffffff01`, 1024))).toBe("malformed remaining length")
        expect(refusal(MqttProtocolError, () => parsePacket(hex`30ff7f`, 1024)).indexOf("exceeds") >= 0).toBe(true)
        // a topic length pointing past the end, and QoS 2 (never subscribed to)
        expect(refusal(MqttProtocolError, () => decodePublish(parsePacket(hex`3004 0009 6162`, 64).packet))).toBe("topic cut short")
        expect(refusal(MqttProtocolError, () => decodePublish(parsePacket(hex`3403 0001 61`, 64).packet))).toBe("QoS 2 not subscribed to")
        expect(new MqttProtocolError("x") instanceof Error).toBe(true)
    })
    test("a topic of ill-formed UTF-8 or with U+0000 is refused (§1.5.3: the connection is closed)", () => {
        /** A QoS 0 PUBLISH of topic `topic` (bytes) and payload 01, parsed and decoded. */
        const publish = (topic: Buffer) => {
            const body = Buffer.from([topic.length >> 8, topic.length & 0xff])
                .concat(topic)
                .concat(hex`01`)
            return decodePublish({ type: 3, flags: 0, body })
        }
        const wellFormed = hex`742f c3a9 e282ac f09d849e f48fbfbf` // t/, U+00E9, U+20AC, U+1D11E, U+10FFFF
        expect(Buffer.from(publish(wellFormed).topic).toString("hex")).toBe(wellFormed.toString("hex"))
        const illFormed = [
            hex`c0af`, // "/" overlong in two bytes
            hex`e080af`, // … in three
            hex`f08080af`, // … in four
            hex`c1bf`, // C1 is never a lead
            hex`eda080`, // U+D800, a surrogate
            hex`edbfbf`, // U+DFFF
            hex`f4908080`, // U+110000, above the last code point
            hex`f5808080`,
            hex`f8`,
            hex`fc`,
            hex`fe`,
            hex`ff`,
            hex`61c3`, // cut short at the end
            hex`61e282`,
            hex`61f09d84`,
            hex`c341`, // a lead without its continuation
            hex`80`, // a continuation without its lead
            hex`610062`, // U+0000 (MQTT-1.5.3-2)
            hex`00`,
        ]
        illFormed.forEach(topic => expect(refusal(MqttProtocolError, () => publish(topic))).toBe("topic is not UTF-8 without U+0000"))
    })
})

describe("outbound queue", () => {
    test("FIFO through RAM and flash; full flash drops the oldest and counts it", async () => {
        const q = await emptyQueue("tq", 2, 3)
        for (let i = 0; i < 7; ++i) await q.push({ topic: "readings", payload: filled(10 + i, i) })
        // 7 pushed into 2 RAM + 3 flash: the two oldest were dropped
        expect(q.size()).toBe(5)
        expect(q.dropped).toBe(2)
        for (let i = 2; i < 7; ++i) {
            const head = await q.peek()
            expect(head.payload.length).toBe(10 + i)
            expect(head.payload[0]).toBe(i)
            await q.remove(head)
        }
        expect(await q.peek()).toBe(undefined)
    })
    test("flash-held messages survive a reopen (reboot), multi-chunk ones whole", async () => {
        const q = await emptyQueue("tr", 1, 4)
        await q.push({ topic: "events", payload: filled(MAX_QUEUED_BYTES, 0xab) })
        await q.push({ topic: "readings", payload: filled(300, 0xcd) })
        await q.push({ topic: "readings", payload: filled(5, 0xef) }) // stays in RAM: lost at reboot
        const after = await OutboundQueue.open({ prefix: "tr", ramCapacity: 1, flashSlots: 4 })
        expect(after.size()).toBe(2)
        const first = await after.peek()
        expect(first.topic).toBe("events")
        expect(first.payload.length).toBe(MAX_QUEUED_BYTES)
        expect(first.payload[MAX_QUEUED_BYTES - 1]).toBe(0xab)
        await after.remove(first)
        expect((await after.peek()).payload.length).toBe(300)
        const tooLarge = filled(MAX_QUEUED_BYTES + 1, 0)
        const refused = await asyncRefusal(RangeError, async () => await after.push({ topic: "x", payload: tooLarge }))
        expect(refused).toBe(`message of ${MAX_QUEUED_BYTES + 1} bytes exceeds ${MAX_QUEUED_BYTES}`)
        expect(after.size()).toBe(1)
    })
    test("a corrupt or missing flash slot is discarded and counted, the rest delivered", async () => {
        const q = await emptyQueue("ts", 1, 4)
        for (let i = 0; i < 3; ++i) await q.push({ topic: "readings", payload: filled(20, i) })
        // slot 0 header garbage; slot 1 loses its chunk
        await writeBytes("ts00", hex`ff`)
        await deleteKey("ts010")
        const after = await OutboundQueue.open({ prefix: "ts", ramCapacity: 1, flashSlots: 4 })
        const head = await after.peek()
        expect(head).toBe(undefined)
        expect(after.corrupt).toBe(2)
    })
    test("fibers at once: a burst, a steady producer and the sender; each message sent once in order, or dropped and counted", async () => {
        // as on the device: readings from the pipeline's fiber, a burst of command replies and the sender from the uplink's
        const q = await emptyQueue("tc", 2, 4)
        const errors: string[] = []
        let producing = 2
        const produce = async (from: number, pause: boolean) => {
            try {
                for (let i = 0; i < 12; ++i) {
                    await q.push({ topic: "readings", payload: tagged(from, i) })
                    if (pause) await ds.sleep(0)
                }
            } catch (e: any) {
                errors.push(`push: ${e.name}: ${e.message}`)
            }
            producing--
        }
        produce.start(1, true)
        produce.start(2, false)
        const sent: number[][] = [[], [], []]
        for (let round = 0; round < 1000; ++round) {
            try {
                const head = await q.peek()
                if (head) {
                    // the PUBACK's round trip, while the producers go on
                    await ds.sleep(3)
                    sent[head.payload[0]].push(head.payload[1])
                    await q.remove(head)
                } else if (producing === 0) break
                else await ds.sleep(1)
            } catch (e: any) {
                errors.push(`send: ${e.name}: ${e.message}`)
            }
        }
        // before the fix: "StorageError: setting "tc000": write not taken", a message sent before an older one, 8 lost uncounted
        expect(errors.join("; ")).toBe("")
        expect(q.size()).toBe(0)
        expect(sent[1].length + sent[2].length + q.dropped).toBe(24)
        for (const from of [1, 2]) for (let k = 1; k < sent[from].length; ++k) expect(sent[from][k] > sent[from][k - 1]).toBe(true)
        expect(q.storageFailures).toBe(0)
    })
    test("a message dropped while in flight is not taken for the next; it counts as dropped only if never acknowledged", async () => {
        const q = await emptyQueue("td", 1, 2)
        for (let i = 0; i < 3; ++i) await q.push({ topic: "readings", payload: tagged(1, i) })
        const inFlight = await q.peek()
        expect(inFlight.payload[1]).toBe(0)
        // flash full: the next push drops the oldest, the one on its way to the broker
        await q.push({ topic: "readings", payload: tagged(1, 3) })
        // its acknowledgement removes nothing else, and it was not lost
        await q.remove(inFlight)
        expect(q.size()).toBe(3)
        expect(q.dropped).toBe(0)
        const next = await q.peek()
        expect(next.payload[1]).toBe(1)
        // this one is dropped too, and its connection dies before the acknowledgement: lost, once
        await q.push({ topic: "readings", payload: tagged(1, 4) })
        expect(q.dropped).toBe(0)
        expect((await q.peek()).payload[1]).toBe(2)
        expect(q.dropped).toBe(1)
        await q.peek()
        expect(q.dropped).toBe(1)
    })
    test("flash that fails is a counted drop and a storage-failed event, never an exception", async () => {
        const events = await EventLog.open({ boot: 0, prefix: "tf", capacity: 4 })
        await events.clear()
        const q = await emptyQueue("te", 1, 2, events)
        // chunk keys the settings store refuses (14 characters, over MAX_KEY_LENGTH) stand for a flash that does not take writes
        const broken = await OutboundQueue.open({ prefix: "te-broken-p", ramCapacity: 1, flashSlots: 2, events })
        for (let i = 0; i < 3; ++i) await broken.push({ topic: "readings", payload: tagged(1, i) })
        expect(broken.size()).toBe(1)
        expect(broken.dropped).toBe(2)
        expect(broken.storageFailures).toBe(2)
        const logged = await events.list()
        expect(logged.length).toBe(2)
        expect(logged[0].kind).toBe("storage-failed")
        expect(logged[0].detail.indexOf("#0 dropped") >= 0).toBe(true)
        // the working queue beside it is untouched
        await q.push({ topic: "readings", payload: tagged(2, 0) })
        expect(q.size()).toBe(1)
        expect(q.storageFailures).toBe(0)
    })
})

describe("downlink commands", () => {
    test("round trip and refusal of bad commands", () => {
        const c: Command = { cmd: "interval", sensor: "shtc3", ms: 7000 }
        const back = parseCommand(encodeCommand(c))
        expect(back.cmd).toBe("interval")
        expect((back as any).ms).toBe(7000)
        const reason = (b: Buffer) => thrown(DownlinkError, () => parseCommand(b)).reason
        expect(reason(encodeCbor(new CborMap().set("cmd", "reboot")))).toBe("unknown")
        expect(reason(encodeCbor(new CborMap().set("cmd", "interval").set("sensor", "x").set("ms", 1.5)))).toBe("malformed")
        expect(reason(encodeCbor([1, 2]))).toBe("malformed")
        expect(reason(hex`ff`)).toBe("malformed")
        expect(parseCommand(encodeCbor(new CborMap().set("cmd", "events"))).cmd).toBe("events")
    })
})
