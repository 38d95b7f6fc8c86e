/**
 * The gateway side of WSSK, the DeviceScript runtime's own encrypted
 * WebSocket channel (runtime/devicescript/network/wssk.c, wssk_health.c),
 * served over TLS. The runtime dials it when its program sets a connection
 * string `wss://wssk:<64 hex master key>@host:port/wssk/<deviceId>`; this
 * side authenticates the device with the master key it holds for that id and
 * can then read the hash of the running program and deploy a new one.
 *
 * Handshake, as the runtime does it:
 *   device:  GET /wssk/<id>, Sec-WebSocket-Protocol: devs-key-<16-byte client nonce, hex>
 *   gateway: hello = magic 0xcee428ca and version 2 (u32 little endian each), 16-byte random seed
 *   both:    session key = HKDF-SHA-256(no salt, master key, clientNonce || seed), 32 bytes
 *   device:  32 zero bytes sealed (auth); gateway checks, then answers the same
 * Every later message is one command byte and its payload, sealed with
 * AES-256-CCM (13-byte nonce, 4-byte tag, no associated data): ciphertext || tag.
 * The nonce is a 13-byte big-endian counter per direction, starting at
 * 01 00.. (device to gateway) and 02 00.. (gateway to device).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto"
import type { IncomingMessage } from "node:http"
import { createServer, type Server } from "node:https"
import type { AddressInfo, Socket } from "node:net"
import type { Duplex } from "node:stream"
import { WebSocketServer, type RawData, type WebSocket } from "ws"
import { TLS_SERVER_OPTIONS } from "../net/tls.ts"

/** A security-relevant event at the gateway (never carries key material). */
export interface WsskEvent {
    /**
     * `wssk-bad-request` (upgrade without a device path or devs-key protocol), `wssk-unknown-device`
     * (no master key: 401), `wssk-auth-failed`, `wssk-auth-timeout`, `wssk-bad-tag` (a later message
     * did not verify) or `wssk-protocol-error`.
     */
    kind: string
    deviceId?: string
    /** The address the connection came from: event floods are counted per source (devs/registry/events.ts). */
    source?: string
    detail: string
}

/** Options of a gateway. */
export interface WsskGatewayOptions {
    /** Certificate chain and private key (PEM) the gateway presents. */
    tls: { key: string | Buffer; cert: string | Buffer }
    /** Port to listen on; 0 picks a free one (see `port` after `start`). */
    port: number
    /** Address to listen on. Default 127.0.0.1. */
    host?: string
    /** The 32-byte master key shared with a device, or undefined for a device the gateway does not know. */
    masterKeyFor(deviceId: string): Buffer | undefined | Promise<Buffer | undefined>
    /** Receives security events: refused upgrades, failed authentication, forged messages. */
    onEvent?(event: WsskEvent): void
    /** Called with each session once the device has authenticated. */
    onConnect?(session: WsskSession): void
    /** How long a device may take to answer a command (and to authenticate). Default 10 s. */
    replyTimeoutMs?: number
}

/** Bytes a session moved. */
export interface WsskTraffic {
    /** TCP bytes from and to the device: TLS handshake and records, the HTTP upgrade, WebSocket framing. */
    wireIn: number
    wireOut: number
    /** WSSK messages from and to the device (the hello, then sealed messages) and their bytes. */
    messagesIn: number
    messagesOut: number
    payloadIn: number
    payloadOut: number
}

/** Called after each acknowledged write of a deploy. */
export type DeployProgress = (written: number, total: number) => void

const MAGIC = 0xcee428ca
const VERSION = 2
const KEY_BYTES = 32
const NONCE_BYTES = 13
const TAG_BYTES = 4
const AUTH_BYTES = 32
/** Deploy writes must be a multiple of 32 bytes and smaller than a flash page (devsmgr.c); 128 fits every board. */
const WRITE_BYTES = 128
const IMAGE_ALIGN = 32

/** Command codes (jacdac services/wssk.md). */
const Cmd = {
    error: 0xff,
    pingCloud: 0x92,
    getHash: 0x93,
    deployStart: 0x94,
    deployWrite: 0x95,
    deployFinish: 0x96,
} as const

const PROTOCOL = /^devs-key-([0-9a-f]{32})$/i
const PATH = /^\/wssk\/([0-9A-Za-z_-]{1,64})$/

/** The first nonce of a direction: `first` then zeros. */
function firstNonce(first: number): Buffer {
    const nonce = Buffer.alloc(NONCE_BYTES)
    nonce[0] = first
    return nonce
}

/** Increments a nonce as a big-endian counter, in place (inc_nonce in wssk.c). */
function increment(nonce: Buffer) {
    for (let i = NONCE_BYTES - 1; i >= 0; i--) {
        nonce[i] = (nonce[i] + 1) & 0xff
        if (nonce[i] !== 0) return
    }
}

/** A pending command: the reply code it waits for. */
interface Waiter {
    cmd: number
    resolve(payload: Buffer): void
    reject(error: Error): void
    timer: NodeJS.Timeout
}

/** What a session needs from its gateway. */
interface SessionContext {
    replyTimeoutMs: number
    event(event: WsskEvent): void
    authenticated(session: WsskSession): void
}

/**
 * One device connection. The gateway hands it out only once the device has
 * authenticated. Commands run one at a time: replies carry no request id.
 */
export class WsskSession {
    /** Resolves when the connection has ended, for whatever reason. */
    readonly closed: Promise<void>
    private readonly key: Buffer
    private readonly rx = firstNonce(1)
    private readonly tx = firstNonce(2)
    private authenticated = false
    private waiter: Waiter | undefined
    private queue: Promise<unknown> = Promise.resolve()
    private ended = false
    private readonly counts = { messagesIn: 0, messagesOut: 0, payloadIn: 0, payloadOut: 0 }

    /** @internal sends the hello; the gateway made the WebSocket and checked the device is known. */
    constructor(
        readonly deviceId: string,
        master: Buffer,
        clientNonce: Buffer,
        private readonly ws: WebSocket,
        private readonly wire: Socket,
        private readonly context: SessionContext
    ) {
        const seed = randomBytes(16)
        this.key = Buffer.from(hkdfSync("sha256", master, Buffer.alloc(0), Buffer.concat([clientNonce, seed]), KEY_BYTES))
        const authTimer = setTimeout(
            () => this.fail("wssk-auth-timeout", `no authentication within ${context.replyTimeoutMs} ms`),
            context.replyTimeoutMs
        )
        this.closed = new Promise(resolve =>
            ws.once("close", () => {
                clearTimeout(authTimer)
                this.ended = true
                this.waiter?.reject(new Error(`wssk ${deviceId}: connection closed`))
                this.settle()
                // the key is no use once the connection is gone
                this.key.fill(0)
                resolve()
            })
        )
        // ws closes the connection itself after a protocol error (bad frame, message over maxPayload)
        ws.on("error", e => context.event({ kind: "wssk-protocol-error", deviceId, detail: e.message }))
        ws.on("message", (data, isBinary) => {
            const sealed = toBuffer(data)
            this.counts.messagesIn++
            this.counts.payloadIn += sealed.length
            if (!isBinary) return this.fail("wssk-protocol-error", "text message")
            if (this.authenticated) return this.receive(sealed)
            clearTimeout(authTimer)
            this.authenticate(sealed)
        })
        const hello = Buffer.alloc(24)
        hello.writeUInt32LE(MAGIC, 0)
        hello.writeUInt32LE(VERSION, 4)
        seed.copy(hello, 8)
        this.sendRaw(hello)
    }

    /** SHA-256 of the program image the device runs (32 zero bytes if it has none). */
    getHash(): Promise<Buffer> {
        return this.serial(async () => {
            const hash = await this.request(Cmd.getHash)
            if (hash.length !== 32) throw new Error(`wssk ${this.deviceId}: hash of ${hash.length} bytes`)
            return hash
        })
    }

    /**
     * Replaces the device's program with `image` (a compiled .devs file); the
     * runtime starts it once the last write is acknowledged. Refuses an empty
     * image or one whose length is not a multiple of 32 before sending anything.
     */
    deploy(image: Buffer, onProgress?: DeployProgress): Promise<void> {
        if (image.length === 0 || image.length % IMAGE_ALIGN !== 0)
            return Promise.reject(new RangeError(`image of ${image.length} bytes: not a positive multiple of ${IMAGE_ALIGN}`))
        return this.serial(async () => {
            const size = Buffer.alloc(4)
            size.writeUInt32LE(image.length)
            // deploy_start stops the running program and erases the program area
            await this.request(Cmd.deployStart, size)
            for (let offset = 0; offset < image.length; offset += WRITE_BYTES) {
                const chunk = image.subarray(offset, offset + WRITE_BYTES)
                await this.request(Cmd.deployWrite, chunk)
                onProgress?.(offset + chunk.length, image.length)
            }
            // the runtime checks that every byte arrived, then starts the new image
            await this.request(Cmd.deployFinish)
        })
    }

    /** Ends the connection; the runtime redials later while its connection string is set. */
    close() {
        this.ws.close(1000)
    }

    /** Bytes this session moved so far (final once `closed` has resolved). */
    traffic(): WsskTraffic {
        return { wireIn: this.wire.bytesRead, wireOut: this.wire.bytesWritten, ...this.counts }
    }

    /** The device's first message: 32 zero bytes sealed under the session key. */
    private authenticate(sealed: Buffer) {
        const auth = sealed.length === AUTH_BYTES + TAG_BYTES ? open(this.key, this.rx, sealed) : undefined
        // a wrong master key on either side shows here: the device's sealed zeros do not authenticate
        if (!auth || auth.some(b => b !== 0))
            return this.fail("wssk-auth-failed", `authentication message of ${sealed.length} bytes did not verify`)
        this.authenticated = true
        this.send(Buffer.alloc(AUTH_BYTES))
        this.context.authenticated(this)
    }

    private receive(sealed: Buffer) {
        const message = open(this.key, this.rx, sealed)
        // wssk.c closes on a tag error too; under TLS a bad tag means a broken or hostile peer
        if (!message || message.length === 0) return this.fail("wssk-bad-tag", `message of ${sealed.length} bytes did not verify`)
        const cmd = message[0]
        if (cmd === Cmd.pingCloud) {
            // the device pings after 16 s of silence and redials after 32 s without any message
            this.send(Buffer.of(Cmd.pingCloud))
            return
        }
        const waiter = this.waiter
        if (waiter && (cmd === waiter.cmd || cmd === Cmd.error)) {
            this.settle()
            if (cmd === Cmd.error) waiter.reject(new Error(`wssk ${this.deviceId}: device refused command 0x${waiter.cmd.toString(16)}`))
            else waiter.resolve(message.subarray(1))
        }
        // anything else (d2c, dmesg, exception reports) is not used here
    }

    private fail(kind: string, detail: string) {
        this.context.event({ kind, deviceId: this.deviceId, detail })
        this.ws.close(1008)
    }

    private send(plain: Buffer) {
        this.sendRaw(seal(this.key, this.tx, plain))
    }

    private sendRaw(message: Buffer) {
        this.counts.messagesOut++
        this.counts.payloadOut += message.length
        this.ws.send(message)
    }

    private request(cmd: number, payload: Buffer = Buffer.alloc(0)): Promise<Buffer> {
        if (this.ended) return Promise.reject(new Error(`wssk ${this.deviceId}: connection closed`))
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.settle()
                reject(new Error(`wssk ${this.deviceId}: no answer to command 0x${cmd.toString(16)} in ${this.context.replyTimeoutMs} ms`))
            }, this.context.replyTimeoutMs)
            this.waiter = { cmd, resolve, reject, timer }
            this.send(Buffer.concat([Buffer.of(cmd), payload]))
        })
    }

    private settle() {
        if (this.waiter) clearTimeout(this.waiter.timer)
        this.waiter = undefined
    }

    private serial<T>(job: () => Promise<T>): Promise<T> {
        const run = this.queue.then(job, job)
        this.queue = run.catch(() => undefined)
        return run
    }
}

/** Seals `plain` under the direction's nonce, then advances it. */
function seal(key: Buffer, nonce: Buffer, plain: Buffer): Buffer {
    const cipher = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: TAG_BYTES })
    const sealed = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
    increment(nonce)
    return sealed
}

/**
 * Opens a sealed message and advances the nonce (as wssk.c does, even on failure);
 * undefined if the tag does not match. A 32-bit tag alone would be weak against
 * forgery; TLS under it is what keeps a network attacker from trying.
 */
function open(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer | undefined {
    if (sealed.length < TAG_BYTES) return undefined
    const decipher = createDecipheriv("aes-256-ccm", key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
    increment(nonce)
    try {
        const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES))
        decipher.final()
        return plain
    } catch {
        return undefined
    }
}

function toBuffer(data: RawData): Buffer {
    if (Buffer.isBuffer(data)) return data
    return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

/** Answers an upgrade request with a bare HTTP status and drops the connection. */
function refuse(socket: Duplex, status: number, text: string) {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
}

/** A WSSK gateway over HTTPS; plain HTTP requests get 404. */
export class WsskGateway {
    private readonly server: Server
    private readonly wss: WebSocketServer
    private readonly sessions = new Map<string, WsskSession>()
    private readonly waiting = new Map<string, ((session: WsskSession) => void)[]>()
    /** Raw TCP sockets by remote address, to count wire bytes under TLS. */
    private readonly raw = new Map<string, Socket>()
    private readonly replyTimeoutMs: number

    constructor(private readonly options: WsskGatewayOptions) {
        this.replyTimeoutMs = options.replyTimeoutMs ?? 10_000
        this.server = createServer({ key: options.tls.key, cert: options.tls.cert, ...TLS_SERVER_OPTIONS })
        // hello and auth are small; the largest device message is a 256-byte dmesg chunk
        this.wss = new WebSocketServer({
            noServer: true,
            maxPayload: 4096,
            handleProtocols: protocols => [...protocols].find(p => PROTOCOL.test(p)) ?? false,
        })
        this.server.on("connection", (socket: Socket) => {
            const name = `${socket.remoteAddress}:${socket.remotePort}`
            this.raw.set(name, socket)
            socket.once("close", () => this.raw.delete(name))
        })
        this.server.on("request", (_req, res) => res.writeHead(404).end())
        this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
            // a key store that fails is the gateway's trouble, not the device's: 503, and the device comes back later
            this.upgrade(req, socket, head).catch(() => refuse(socket, 503, "Service Unavailable"))
        })
    }

    /** Starts listening; resolves with the port. */
    async start(): Promise<number> {
        await new Promise<void>((resolve, reject) => {
            this.server.once("error", reject)
            this.server.listen(this.options.port, this.options.host ?? "127.0.0.1", () => resolve())
        })
        return this.port
    }

    /** The port the gateway listens on. */
    get port(): number {
        return (this.server.address() as AddressInfo).port
    }

    /** The authenticated session of a device, if it is connected. */
    session(deviceId: string): WsskSession | undefined {
        return this.sessions.get(deviceId)
    }

    /** Resolves with the device's session once it is connected and authenticated; rejects after `timeoutMs`. */
    waitForDevice(deviceId: string, timeoutMs: number): Promise<WsskSession> {
        const current = this.sessions.get(deviceId)
        if (current) return Promise.resolve(current)
        return new Promise((resolve, reject) => {
            const waiter = (session: WsskSession) => {
                clearTimeout(timer)
                resolve(session)
            }
            const timer = setTimeout(() => {
                this.waiting.set(
                    deviceId,
                    (this.waiting.get(deviceId) ?? []).filter(w => w !== waiter)
                )
                reject(new Error(`wssk ${deviceId}: not connected within ${timeoutMs} ms`))
            }, timeoutMs)
            this.waiting.set(deviceId, [...(this.waiting.get(deviceId) ?? []), waiter])
        })
    }

    /** Closes every session and stops listening. */
    async stop() {
        for (const client of this.wss.clients) client.terminate()
        await Promise.all([...this.sessions.values()].map(s => s.closed))
        const closed = new Promise<void>(resolve => this.server.close(() => resolve()))
        this.server.closeAllConnections()
        await closed
    }

    private event(event: WsskEvent) {
        this.options.onEvent?.(event)
    }

    private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
        const path = PATH.exec(req.url ?? "")
        const nonce = PROTOCOL.exec(String(req.headers["sec-websocket-protocol"] ?? "").trim())
        const source = req.socket.remoteAddress
        if (!path || !nonce) {
            this.event({ kind: "wssk-bad-request", source, detail: `upgrade refused: ${path ? "no devs-key protocol" : "bad path"}` })
            return refuse(socket, 400, "Bad Request")
        }
        const deviceId = path[1]
        const master = await this.options.masterKeyFor(deviceId)
        if (!master || master.length !== KEY_BYTES) {
            this.event({ kind: "wssk-unknown-device", deviceId, source, detail: "upgrade refused: no master key for this device" })
            return refuse(socket, 401, "Unauthorized")
        }
        const clientNonce = Buffer.from(nonce[1], "hex")
        this.wss.handleUpgrade(req, socket, head, ws => {
            const tls = socket as Socket
            const wire = this.raw.get(`${tls.remoteAddress}:${tls.remotePort}`) ?? tls
            new WsskSession(deviceId, master, clientNonce, ws, wire, {
                replyTimeoutMs: this.replyTimeoutMs,
                event: e => this.event({ ...e, source: tls.remoteAddress }),
                authenticated: session => this.connected(session),
            })
        })
    }

    private connected(session: WsskSession) {
        // the runtime has one socket: a new connection means the old one is dead
        this.sessions.get(session.deviceId)?.close()
        this.sessions.set(session.deviceId, session)
        void session.closed.then(() => {
            if (this.sessions.get(session.deviceId) === session) this.sessions.delete(session.deviceId)
        })
        this.options.onConnect?.(session)
        const waiters = this.waiting.get(session.deviceId) ?? []
        this.waiting.delete(session.deviceId)
        for (const w of waiters) w(session)
    }
}
