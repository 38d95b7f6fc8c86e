/**
 * Fuzzing the WSSK gateway (devs/updates/wssk.ts) from the network, with a
 * device side written here from the protocol (HKDF session key, AES-256-CCM
 * with 4-byte tags and counter nonces, as the gateway's module comment
 * teaches it), over real TLS on a free port. Each input is one connection:
 *
 * - `upgrade`: a hand-written HTTP upgrade with a fuzzed path and
 *   `Sec-WebSocket-Protocol`; must be switched (101, then a 24-byte hello
 *   with the magic) only for `/wssk/<a device with a key>` and `devs-key-<32 hex>`.
 * - `auth`: a valid upgrade, then the sealed zeros of the authentication,
 *   mutated (seeded by `mutation`, 0 for none), maybe as a text frame, maybe
 *   after a stray frame; the gateway may authenticate only the exact one.
 * - `reply`: authenticated; the gateway asks for the program's hash and the
 *   device answers with the sealed reply, mutated likewise; the hash may
 *   arrive only from the exact reply.
 * - `raw`: bytes that are not HTTP at all, over TLS.
 *
 * Wrong acceptance: any of the above accepted when it must not be, or
 * accepted with other content. After the inputs no session may be left
 * open, every event must be of a documented kind, and a real device must
 * still connect, authenticate and answer.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connect as tlsConnect } from "node:tls"
import WebSocket from "ws"
import { ensurePki } from "../stack/pki.ts"
import { WsskGateway, type WsskEvent } from "../updates/wssk.ts"
import { mutate, Rng, type Campaign, type Verdict } from "./fuzzer.ts"

/** One connection's worth of input. */
export interface WsskInput {
    kind: "upgrade" | "auth" | "reply" | "raw"
    path: string
    protocol: string
    /** 0: the exact sealed message; otherwise it is mutated by a fuzzer seeded with this. */
    mutation: number
    /** Send the sealed message as a text frame. */
    text?: boolean
    /** A frame sent just before it. */
    stray?: Buffer
    /** For `raw`: the bytes. */
    raw?: Buffer
}

const DEVICE = "fuzzdevice01"
const NONCE_HEX = "00112233445566778899aabbccddeeff"
const MAGIC = 0xcee428ca
const TAG_BYTES = 4
const EVENT_KINDS = [
    "wssk-bad-request",
    "wssk-unknown-device",
    "wssk-auth-failed",
    "wssk-auth-timeout",
    "wssk-bad-tag",
    "wssk-protocol-error",
]
const PATHS = [`/wssk/${DEVICE}`, "/wssk/other", "/wssk/", "/wssk", `/wssk/${DEVICE}/`, `/wssk/${DEVICE}?x=1`, "/", `/WSSK/${DEVICE}`, "*"]
const PROTOCOLS = [`devs-key-${NONCE_HEX}`, "devs-key-", `devs-key-${NONCE_HEX}, chat`, `DEVS-KEY-${NONCE_HEX.toUpperCase()}`, "", "x"]

/** The device end of one direction: the session key and a counter nonce (first byte 1: device to gateway, 2: back). */
class Direction {
    private readonly nonce = Buffer.alloc(13)
    constructor(
        private readonly key: Buffer,
        first: number
    ) {
        this.nonce[0] = first
    }

    private next(): Buffer {
        const n = Buffer.from(this.nonce)
        for (let i = 12; i >= 0; i--) {
            this.nonce[i] = (this.nonce[i] + 1) & 0xff
            if (this.nonce[i] !== 0) break
        }
        return n
    }

    seal(plain: Buffer): Buffer {
        const c = createCipheriv("aes-256-ccm", this.key, this.next(), { authTagLength: TAG_BYTES })
        return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()])
    }

    open(sealed: Buffer): Buffer | undefined {
        const d = createDecipheriv("aes-256-ccm", this.key, this.next(), { authTagLength: TAG_BYTES })
        d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
        try {
            return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()])
        } catch {
            return undefined
        }
    }
}

/** Waits for the next message of `ws`, or undefined once it closes or `ms` pass. */
function nextMessage(ws: WebSocket, ms: number): Promise<Buffer | undefined> {
    return new Promise(resolve => {
        const done = (m: Buffer | undefined) => {
            clearTimeout(timer)
            ws.off("message", onMessage)
            ws.off("close", onClose)
            resolve(m)
        }
        const onMessage = (data: WebSocket.RawData) => done(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer))
        const onClose = () => done(undefined)
        const timer = setTimeout(() => done(undefined), ms)
        ws.on("message", onMessage)
        ws.on("close", onClose)
    })
}

/** The WSSK gateway fuzzing campaign; `close()` stops the gateway. */
export async function wsskCampaign(): Promise<Campaign<WsskInput>> {
    const dir = mkdtempSync(join(tmpdir(), "fuzz-wssk-"))
    const pki = ensurePki(join(dir, "pki"))
    const ca = readFileSync(pki.caCert)
    const master = randomBytes(32)
    const hash = randomBytes(32)
    const events: WsskEvent[] = []
    const gateway = new WsskGateway({
        tls: { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) },
        port: 0,
        masterKeyFor: id => (id === DEVICE ? master : undefined),
        onEvent: e => events.push(e),
        replyTimeoutMs: 2000,
    })
    const port = await gateway.start()
    // an exception in the gateway's handlers would end the process: count it instead, as a crash of this input
    let uncaught: unknown
    const onUncaught = (e: unknown) => (uncaught = e)
    process.on("uncaughtException", onUncaught)

    /** Opens a WebSocket as the device; resolves with it and the hello, or undefined if refused. */
    async function open(path: string, protocol: string) {
        const ws = new WebSocket(`wss://localhost:${port}${path}`, [protocol], { ca })
        ws.on("error", () => {})
        const hello = await nextMessage(ws, 3000)
        return hello ? { ws, hello } : undefined
    }

    /** Opens and authenticates (the auth message mutated per `input`); the directions, and whether the gateway accepted. */
    async function authenticate(input: WsskInput) {
        const opened = await open(`/wssk/${DEVICE}`, `devs-key-${NONCE_HEX}`)
        if (!opened) throw new Error("the gateway refused a valid upgrade")
        const { ws, hello } = opened
        if (hello.length !== 24 || hello.readUInt32LE(0) !== MAGIC) throw new Error("hello without the magic")
        const key = Buffer.from(
            hkdfSync("sha256", master, Buffer.alloc(0), Buffer.concat([Buffer.from(NONCE_HEX, "hex"), hello.subarray(8)]), 32)
        )
        const up = new Direction(key, 1)
        const down = new Direction(key, 2)
        const right = up.seal(Buffer.alloc(32))
        const sent = input.kind === "auth" && input.mutation ? mutate(new Rng(input.mutation), right, Buffer.alloc(0), 128) : right
        if (input.kind === "auth" && input.stray) ws.send(input.stray)
        ws.send(sent, { binary: !(input.kind === "auth" && input.text) })
        const answer = await nextMessage(ws, 3000)
        const accepted = answer !== undefined && down.open(answer)?.equals(Buffer.alloc(32)) === true
        const exact = sent.equals(right) && !(input.kind === "auth" && (input.text || input.stray))
        return { ws, up, down, accepted, exact }
    }

    async function closed(ws: WebSocket) {
        if (ws.readyState === WebSocket.CLOSED) return
        await new Promise<void>(resolve => {
            ws.once("close", () => resolve())
            ws.terminate()
        })
    }

    async function upgrade(input: WsskInput): Promise<Verdict> {
        const request =
            `GET ${input.path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
            `Sec-WebSocket-Protocol: ${input.protocol}\r\n\r\n`
        const answer = await rawExchange(Buffer.from(request, "latin1"))
        const switched = answer.startsWith("HTTP/1.1 101")
        if (!switched) return "refused"
        // what HTTP makes of them: the request target ends at a space or line end, a header value at the line end
        const target = input.path.split(/[ \r\n]/)[0]
        const protocol = input.protocol.split(/[\r\n]/)[0].trim()
        const valid = target === `/wssk/${DEVICE}` && /^devs-key-[0-9a-f]{32}$/i.test(protocol)
        return valid
            ? "accepted"
            : { invalid: `switched protocols for path ${JSON.stringify(input.path)}, protocol ${JSON.stringify(input.protocol)}` }
    }

    /** Sends `bytes` over TLS; resolves with what came back (latin1) once the gateway closes or 2 s pass. */
    function rawExchange(bytes: Buffer): Promise<string> {
        return new Promise(resolve => {
            let got = ""
            const socket = tlsConnect({ host: "localhost", port, ca, servername: "localhost" }, () => socket.write(bytes))
            const done = () => {
                clearTimeout(timer)
                socket.destroy()
                resolve(got)
            }
            const timer = setTimeout(done, 2000)
            socket.on("data", (d: Buffer) => {
                got += d.toString("latin1")
                // a switched connection stays open: its hello is enough
                if (got.startsWith("HTTP/1.1 101") && got.includes("\r\n\r\n")) done()
            })
            socket.on("error", done)
            socket.on("close", done)
        })
    }

    async function auth(input: WsskInput): Promise<Verdict> {
        const { ws, accepted, exact } = await authenticate(input)
        await closed(ws)
        if (!accepted) return "refused"
        return exact ? "accepted" : { invalid: "authenticated with an altered authentication message" }
    }

    async function reply(input: WsskInput): Promise<Verdict> {
        const { ws, up, down, accepted } = await authenticate({ ...input, kind: "reply" })
        if (!accepted) throw new Error("the exact authentication was refused")
        const session = await gateway.waitForDevice(DEVICE, 3000)
        const asked = session.getHash().then(
            h => ({ hash: h }),
            (e: Error) => ({ error: e.message })
        )
        const request = await nextMessage(ws, 3000)
        const plain = request ? down.open(request) : undefined
        if (!plain || plain[0] !== 0x93) throw new Error("the gateway's hash request did not verify")
        const right = up.seal(Buffer.concat([Buffer.of(0x93), hash]))
        const sent = input.mutation ? mutate(new Rng(input.mutation), right, Buffer.alloc(0), 128) : right
        if (input.stray) ws.send(input.stray)
        ws.send(sent, { binary: !input.text })
        const answer = await asked
        await closed(ws)
        await session.closed
        if ("error" in answer) return "refused"
        if (!answer.hash.equals(hash)) return { invalid: "a hash other than the device's" }
        return sent.equals(right) && !input.text && !input.stray ? "accepted" : { invalid: "took a hash from an altered reply" }
    }

    return {
        name: "wssk",
        seeds: [
            { kind: "upgrade", path: `/wssk/${DEVICE}`, protocol: `devs-key-${NONCE_HEX}`, mutation: 0 },
            { kind: "auth", path: "", protocol: "", mutation: 0 },
            { kind: "reply", path: "", protocol: "", mutation: 0 },
        ],
        random: rng => ({ kind: "raw", path: "", protocol: "", mutation: 0, raw: rng.bytes(rng.below(512)) }),
        mutate: (rng, seed) => {
            const m: WsskInput = { ...seed }
            const what = rng.below(6)
            if (seed.kind === "upgrade") {
                if (what < 3)
                    m.path = rng.below(3) ? mutate(rng, Buffer.from(seed.path), Buffer.alloc(0), 200).toString("latin1") : rng.pick(PATHS)
                else
                    m.protocol = rng.below(3)
                        ? mutate(rng, Buffer.from(seed.protocol), Buffer.alloc(0), 200).toString("latin1")
                        : rng.pick(PROTOCOLS)
            } else {
                m.mutation = 1 + rng.below(1 << 30)
                if (what === 0) m.text = true
                if (what === 1) m.stray = rng.bytes(rng.below(64))
                // the exact message with only a stray frame or a text frame around it
                if (what === 2 && (m.text || m.stray)) m.mutation = 0
            }
            return m
        },
        check: async input => {
            uncaught = undefined
            let verdict: Verdict
            if (input.kind === "upgrade") verdict = await upgrade(input)
            else if (input.kind === "auth") verdict = await auth(input)
            else if (input.kind === "reply") verdict = await reply(input)
            else
                verdict = (await rawExchange(input.raw ?? Buffer.alloc(0))).startsWith("HTTP/1.1 101")
                    ? { invalid: "switched protocols for raw bytes" }
                    : "refused"
            // let the gateway finish with the connection before the next one
            await new Promise(resolve => setImmediate(resolve))
            if (uncaught !== undefined) throw uncaught
            return verdict
        },
        show: input =>
            JSON.stringify({ ...input, stray: input.stray?.toString("hex"), raw: input.raw ? `${input.raw.length} bytes` : undefined }),
        after: async () => {
            const wrong: string[] = []
            await new Promise(resolve => setTimeout(resolve, 100))
            if (gateway.session(DEVICE)) wrong.push("a session is left open")
            const odd = events.filter(e => !EVENT_KINDS.includes(e.kind))
            if (odd.length) wrong.push(`events of undocumented kinds: ${[...new Set(odd.map(e => e.kind))].join(", ")}`)
            try {
                if ((await reply({ kind: "reply", path: "", protocol: "", mutation: 0 })) !== "accepted")
                    wrong.push("a real device no longer gets through")
            } catch (e) {
                wrong.push(`a real device no longer gets through: ${(e as Error).message}`)
            }
            return wrong
        },
        close: async () => {
            process.off("uncaughtException", onUncaught)
            await gateway.stop()
            rmSync(dir, { recursive: true, force: true })
        },
    }
}
