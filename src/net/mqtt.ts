/**
 * A small MQTT 3.1.1 client over TLS, used instead of the stock one in
 * @devicescript/net because that one prints the CONNECT packet, password
 * included, at debug level. This one logs nothing at all.
 *
 * One fiber drives it: `publish`, `subscribe` and `poll` each read the socket
 * until what they wait for arrives, handing any application message to
 * `onMessage` on the way (the handler must not call back into the client).
 * Clean sessions only: after a reconnect the caller subscribes again and
 * resends what was not acknowledged.
 */
import * as ds from "@devicescript/core"
import { connect, Socket } from "@devicescript/net"
import { Endpoint } from "./endpoint"
import { isTlsFailure } from "./tls"
import {
    ConnackCode,
    decodePublish,
    encodeConnect,
    encodeDisconnect,
    encodePingreq,
    encodePuback,
    encodePublish,
    encodeSubscribe,
    MqttMessage,
    MqttPacket,
    PacketType,
    parsePacket,
    readU16,
    SUBACK_FAILURE,
} from "./mqtt-packet"

/** Options of a connection to the broker at `host:port`. */
export interface MqttConnectOptions extends Endpoint {
    clientId: string
    username: string
    password: string
    /** Keep Alive (§3.1.2.10), seconds. Default 60. */
    keepAliveS?: number
    /** Longest wait for a CONNACK, PUBACK, SUBACK or PINGRESP, in milliseconds. Default 10 s. */
    timeoutMs?: number
    /** Largest packet accepted from the broker. Default 2048 bytes. */
    maxPacketBytes?: number
}

/** Why a connection failed or ended. `tls` (certificate refused), `refused` (bad credentials) and `protocol` are security events. */
export type MqttFailure = "tls" | "connect" | "refused" | "timeout" | "protocol" | "closed"

/** Raised when the connection fails; the message names the broker, never a credential. */
export class MqttError extends Error {
    constructor(
        readonly failure: MqttFailure,
        message: string
    ) {
        super(message)
        this.name = "MqttError"
    }
}

/** What each CONNACK return code means (§3.2.2.3), indexed by `ConnackCode`. */
const CONNACK_REASONS = [
    "accepted",
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
]

/** A connected client. */
export class MqttClient {
    /** Receives each application message; runs inline, so it should only queue work. */
    onMessage: (message: MqttMessage) => Promise<void> = undefined
    private buf: Buffer = Buffer.alloc(0)
    private nextPacketId = 1
    private lastSentMs = 0
    private pingSentMs = -1
    private ended = false
    private readonly where: string
    private readonly timeoutMs: number
    private readonly keepAliveMs: number
    private readonly maxPacketBytes: number

    private constructor(
        private readonly socket: Socket,
        options: MqttConnectOptions
    ) {
        this.where = `mqtts://${options.host}:${options.port}`
        this.timeoutMs = options.timeoutMs ?? 10000
        this.keepAliveMs = (options.keepAliveS ?? 60) * 1000
        this.maxPacketBytes = options.maxPacketBytes ?? 2048
    }

    /**
     * Opens a TLS connection and logs in. The certificate is checked by the
     * runtime during the handshake, so a refused server never sees CONNECT.
     */
    static async connect(options: MqttConnectOptions): Promise<MqttClient> {
        const where = `mqtts://${options.host}:${options.port}`
        let socket: Socket
        try {
            socket = await connect({ host: options.host, port: options.port, proto: "tls", timeout: options.timeoutMs ?? 10000 })
        } catch (e: any) {
            const msg = e && e.message ? e.message : "connection failed"
            throw new MqttError(isTlsFailure(msg) ? "tls" : "connect", `${where}: ${msg}`)
        }
        const client = new MqttClient(socket, options)
        try {
            const { clientId, username, password } = options
            await client.send(encodeConnect({ clientId, username, password, keepAliveS: options.keepAliveS ?? 60 }))
            const ack = await client.waitFor(PacketType.Connack, -1)
            const code = ack.body.length === 2 ? ack.body[1] : 255
            if (code !== ConnackCode.Accepted) {
                const reason = code < CONNACK_REASONS.length ? CONNACK_REASONS[code] : "malformed CONNACK"
                const badCredentials = code === ConnackCode.BadUserNameOrPassword || code === ConnackCode.NotAuthorized
                throw new MqttError(badCredentials ? "refused" : "protocol", `${where}: ${reason}`)
            }
        } catch (e) {
            await client.close(false)
            throw e
        }
        return client
    }

    /** Publishes; for QoS 1 resolves only once the broker acknowledged (PUBACK). */
    async publish(topic: string, payload: Buffer, qos: 0 | 1): Promise<void> {
        const id = qos !== 0 ? this.packetId() : 0
        await this.send(encodePublish(topic, payload, qos, id))
        if (qos !== 0) await this.waitFor(PacketType.Puback, id)
    }

    /** Subscribes to one filter; throws when the broker refuses it (SUBACK 0x80, §3.9.3). */
    async subscribe(filter: string, qos: 0 | 1): Promise<number> {
        const id = this.packetId()
        await this.send(encodeSubscribe(id, filter, qos))
        const ack = await this.waitFor(PacketType.Suback, id)
        const granted = ack.body.length === 3 ? ack.body[2] : SUBACK_FAILURE
        if (granted === SUBACK_FAILURE) throw new MqttError("refused", `${this.where}: subscription refused`)
        return granted
    }

    /**
     * Reads and dispatches incoming messages for up to `ms` milliseconds and
     * keeps the connection alive (PINGREQ when idle for half the keep-alive).
     */
    async poll(ms: number): Promise<void> {
        const until = ds.millis() + ms
        while (ds.millis() < until) {
            await this.keepAlive()
            const p = await this.readPacket(Math.min(until - ds.millis(), 1000))
            if (p) await this.dispatch(p, undefined, -1)
        }
        await this.keepAlive()
    }

    /** Says goodbye (DISCONNECT, §3.14) when `graceful`, then closes the socket. */
    async close(graceful = true): Promise<void> {
        if (this.ended) return
        try {
            if (graceful) await this.socket.send(encodeDisconnect())
        } catch (e) {
            // closing anyway
        }
        this.ended = true
        await this.socket.close()
    }

    private packetId(): number {
        const id = this.nextPacketId
        this.nextPacketId = id >= 0xffff ? 1 : id + 1
        return id
    }

    private async send(data: Buffer) {
        if (this.ended) throw new MqttError("closed", `${this.where}: connection closed`)
        try {
            await this.socket.send(data)
        } catch (e: any) {
            await this.fail("closed", "send failed")
        }
        this.lastSentMs = ds.millis()
    }

    private async fail(failure: MqttFailure, what: string) {
        await this.close(false)
        throw new MqttError(failure, `${this.where}: ${what}`)
    }

    private async keepAlive() {
        const now = ds.millis()
        if (this.pingSentMs >= 0 && now - this.pingSentMs > this.timeoutMs) await this.fail("timeout", "no PINGRESP")
        if (this.pingSentMs < 0 && now - this.lastSentMs >= this.keepAliveMs / 2) {
            await this.send(encodePingreq())
            this.pingSentMs = ds.millis()
        }
    }

    /** Reads one packet, waiting at most `ms`; `undefined` when none came. */
    private async readPacket(ms: number): Promise<MqttPacket> {
        const until = ds.millis() + ms
        for (;;) {
            let parsed: { packet: MqttPacket; size: number }
            try {
                parsed = parsePacket(this.buf, this.maxPacketBytes)
            } catch (e: any) {
                await this.fail("protocol", e.message)
            }
            if (parsed) {
                this.buf = this.buf.slice(parsed.size, this.buf.length)
                return parsed.packet
            }
            const left = until - ds.millis()
            if (left <= 0) return undefined
            let chunk: Buffer
            try {
                chunk = await this.socket.recv(left)
            } catch (e: any) {
                await this.fail("closed", "connection lost")
            }
            if (chunk === undefined) return undefined
            if (chunk === null) await this.fail("closed", "broker closed the connection")
            this.buf = this.buf.concat(chunk)
        }
    }

    /** Handles one packet; returns it when it is the `type` (none when undefined) and `packetId` (any when -1) awaited. */
    private async dispatch(p: MqttPacket, type: PacketType, packetId: number): Promise<MqttPacket> {
        if (p.type === PacketType.Publish) {
            let m: MqttMessage
            try {
                m = decodePublish(p)
            } catch (e: any) {
                await this.fail("protocol", e.message)
            }
            if (m.qos !== 0) await this.send(encodePuback(m.packetId))
            if (this.onMessage) await this.onMessage(m)
            return undefined
        }
        if (p.type === PacketType.Pingresp) {
            this.pingSentMs = -1
            return undefined
        }
        if (p.type === type) {
            if (packetId < 0) return p
            let id: number
            try {
                id = readU16(p.body, 0)
            } catch (e: any) {
                await this.fail("protocol", e.message)
            }
            if (id === packetId) return p
            return undefined // a late acknowledgement of something given up on
        }
        await this.fail("protocol", `unexpected packet type ${p.type}`)
        return undefined
    }

    private async waitFor(type: PacketType, packetId: number): Promise<MqttPacket> {
        const until = ds.millis() + this.timeoutMs
        while (ds.millis() < until) {
            await this.keepAlive()
            const p = await this.readPacket(until - ds.millis())
            if (!p) break
            const match = await this.dispatch(p, type, packetId)
            if (match) return match
        }
        await this.fail("timeout", `no reply (packet type ${type})`)
        return undefined
    }
}
