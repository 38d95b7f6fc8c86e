/**
 * The owner service never dies of its input. A seeded generator publishes
 * 10,000 hostile messages on a followed device's up topics, through the real
 * Mosquitto, with the device's own broker login (what a compromised device
 * can do): random bytes, mutated and truncated messages, trailing bytes,
 * protected headers that are not CBOR or carry trailing bytes, huge and
 * BigInt-sized integers inside and outside authentic messages, deep nesting,
 * wrong kids, replays and wrong topics. Each is rejected with a reason and
 * counted; valid messages interleaved with them are all accepted and stored;
 * the service keeps answering, and its ingest worker never restarts.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, test } from "node:test"
import { encode } from "cbor2"
import { OwnerApi } from "../../devs/owner/api-client.ts"
import { RejectReason } from "../../devs/owner/verifier.ts"
import { until } from "../../devs/sim/until.ts"
import { startOwnerStack, type EmulatedDevice, type OwnerStack } from "./support/owner-stack.ts"

const SEED = 0x5e17e1
const HOSTILE = 10_000
/** One valid message after every this many hostile ones. */
const VALID_EVERY = 20

const dir = mkdtempSync(join(tmpdir(), "owner-fuzz-test-"))
let o: OwnerStack
before(async () => {
    o = await startOwnerStack(dir)
})
after(async () => {
    await o?.stop()
    rmSync(dir, { recursive: true, force: true })
})

/** mulberry32: a small seeded generator, so a failure can be replayed exactly. */
function random(seed: number) {
    let a = seed >>> 0
    const next = () => {
        a = (a + 0x6d2b79f5) >>> 0
        let t = Math.imul(a ^ (a >>> 15), 1 | a)
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
        return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
    }
    return {
        next,
        int: (n: number) => Math.floor(next() * n),
        bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))),
        pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)],
    }
}

/** A COSE_Encrypt0 put together by hand, for headers a sealer would never make. */
function handMade(protectedBytes: Buffer, unprotected: Map<number, unknown>, ciphertext: Buffer) {
    return Buffer.concat([Buffer.from([0xd0]), Buffer.from(encode([protectedBytes, unprotected, ciphertext]))])
}

test("10,000 hostile messages are each rejected with a reason; every valid one between them is stored; the service stays up", async () => {
    const d: EmulatedDevice = await o.device()
    const api = new OwnerApi(o.owner.url, o.token)
    await api.call("POST", "/api/devices/claim", { id: d.id, code: d.claimCode })
    await d.connect()
    const rnd = random(SEED)
    const up = (kind: string) => `things/${d.id}/up/${kind}`
    const kid = Buffer.from(d.id, "hex")
    let counter = 0
    const valid: Buffer[] = []
    const kinds: Record<string, () => Promise<[string, Buffer]>> = {
        "random bytes": async () => [up(rnd.pick(["readings", "events", "state"])), rnd.bytes(rnd.int(300))],
        "a valid message with a byte changed": async () => {
            const m = Buffer.from(rnd.pick(valid))
            m[rnd.int(m.length)] ^= 1 + rnd.int(255)
            return [up("readings"), m]
        },
        "a valid message cut short": async () => {
            const m = rnd.pick(valid)
            return [up("readings"), m.subarray(0, rnd.int(m.length))]
        },
        "trailing bytes": async () => [up("readings"), Buffer.concat([rnd.pick(valid), rnd.bytes(1 + rnd.int(8))])],
        "a protected header that is not CBOR": async () => [
            up("readings"),
            handMade(
                Buffer.from([0xff, ...rnd.bytes(rnd.int(4))]),
                new Map<number, unknown>([
                    [4, kid],
                    [6, Buffer.from([1])],
                ]),
                rnd.bytes(20)
            ),
        ],
        "a protected header with trailing bytes": async () => [
            up("readings"),
            handMade(
                Buffer.concat([Buffer.from("a1010b", "hex"), rnd.bytes(1 + rnd.int(3))]),
                new Map<number, unknown>([
                    [4, kid],
                    [6, Buffer.from([1])],
                ]),
                rnd.bytes(20)
            ),
        ],
        "huge integers": async () => [up("state"), Buffer.from(encode(rnd.pick([2n ** 64n - 1n, -(2n ** 64n), 2n ** 63n, 2n ** 200n])))],
        "an authentic message with a 64-bit integer": async () => [
            up("state"),
            await d.seal("state", encode(new Map([["uptime", 2n ** 63n + BigInt(rnd.int(1000))]])), ++counter),
        ],
        "deep nesting": async () => [up("readings"), Buffer.from("d083" + "81".repeat(100 + rnd.int(5000)) + "00", "hex")],
        "authentic deep nesting": async () => [
            up("events"),
            await d.seal("events", Buffer.from("81".repeat(10 + rnd.int(100)) + "00", "hex"), ++counter),
        ],
        "a wrong kid": async () => [up("readings"), await d.seal("readings", d.readings(2), ++counter, rnd.bytes(16))],
        "a fresh message with its tag changed": async () => {
            const m = await d.seal("readings", d.readings(2), ++counter)
            m[m.length - 1 - rnd.int(8)] ^= 1 + rnd.int(255)
            return [up("readings"), m]
        },
        "a fresh message moved to another topic": async () => [up("state"), await d.seal("readings", d.readings(2), ++counter)],
        "a replay": async () => [up("readings"), rnd.pick(valid)],
        "a wrong topic": async () => [rnd.pick([up("bogus"), up("readings/x"), up(""), `things/${d.id}/up/readings/`]), rnd.pick(valid)],
    }
    const seen = new Map<string, number>()
    let validSent = 0
    const publish = (topic: string, payload: Buffer) => d.client.publishAsync(topic, payload, { qos: 1 })
    const validMessage = async () => {
        const m = await d.seal("readings", d.readings(2, 20 + (validSent % 10)), ++counter)
        valid.push(m)
        validSent++
        return publish(up("readings"), m)
    }
    await validMessage()
    const names = Object.keys(kinds)
    // in windows, so the broker's queue for the owner (1000 messages) never overflows
    for (let sent = 0; sent < HOSTILE;) {
        const window: Promise<unknown>[] = []
        for (let i = 0; i < 200 && sent < HOSTILE; i++, sent++) {
            const name = rnd.pick(names)
            seen.set(name, (seen.get(name) ?? 0) + 1)
            const [topic, payload] = await kinds[name]()
            window.push(publish(topic, payload))
            if (sent % VALID_EVERY === 0) window.push(validMessage())
        }
        await Promise.all(window)
        await o.owner.service.drain()
    }
    await until(
        "every message counted",
        () =>
            o.owner.service.counts.verified + [...o.owner.service.counts.rejected.values()].reduce((a, b) => a + b, 0) ===
            HOSTILE + validSent,
        60_000
    )
    await o.owner.service.drain()
    const { counts } = o.owner.service
    const rejected = [...counts.rejected.values()].reduce((a, b) => a + b, 0)
    assert.equal(counts.verified, validSent, "every valid message accepted")
    assert.equal(rejected, HOSTILE, "every hostile message rejected")
    for (const name of names) assert.ok((seen.get(name) ?? 0) >= 500, `${name}: ${seen.get(name)}`)
    for (const reason of [
        RejectReason.Malformed,
        RejectReason.Forged,
        RejectReason.Replayed,
        RejectReason.Content,
        RejectReason.WrongKid,
        RejectReason.Topic,
    ])
        assert.ok((counts.rejected.get(reason) ?? 0) > 0, `no ${reason}`)
    // the store agrees: every valid reading kept, every rejection counted with its reason
    const stored = o.owner.store.rejectionCounts().reduce((n, r) => n + r.count, 0)
    assert.equal(stored, HOSTILE)
    assert.equal(o.owner.store.readings(d.id, { limit: 100_000 }).length, validSent * 2)
    // still up: it answers, and its worker never had to start again
    const list = await api.call<{ devices: { id: string; rejected: number }[] }>("GET", "/api/devices")
    assert.equal(list.devices.find(x => x.id === d.id)!.rejected, HOSTILE)
    assert.equal(o.log.filter(l => /ingest worker/.test(l)).length, 0, o.log.filter(l => /ingest worker/.test(l)).join("\n"))
    console.log(
        `fuzz: ${HOSTILE} hostile messages rejected ` +
            `(${[...counts.rejected].map(([r, n]) => `${r} ${n}`).join(", ")}), ${validSent} valid accepted`
    )
})
