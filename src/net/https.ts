/**
 * A small HTTPS/1.1 client over the runtime's one socket. The device only
 * ever opens outbound TLS: there is no plain-HTTP path here at all. The
 * runtime validates the server certificate (simulator: Node's TLS with its
 * CA store plus NODE_EXTRA_CA_CERTS; ESP32: the built-in CA bundle).
 *
 * Unlike the stock `fetch` of @devicescript/net it logs nothing, not even at
 * debug level (requests carry credentials), and it treats the server as
 * hostile: header and body sizes are bounded and malformed replies refused.
 */
import { connect, Socket } from "@devicescript/net"
import { Endpoint } from "./endpoint"
import { isTlsFailure } from "./tls"

/** One request. */
export interface HttpsRequest {
    method: "GET" | "POST"
    path: string
    headers?: { [name: string]: string }
    body?: string
    /** Largest reply body accepted. Default `MAX_BODY_BYTES`; a signed firmware manifest needs more. */
    maxBodyBytes?: number
    /**
     * The body may be returned inside the buffer it arrived in (`HttpsResponse.bodyAt`) rather than copied
     * out: a signed document (~8 KB) that came in one chunk is then the only ~8 KB block the reply takes.
     */
    inPlace?: boolean
}

/** One reply; header names are lower-case. */
export interface HttpsResponse {
    status: number
    headers: { [name: string]: string }
    /** The body: `body` from `bodyAt` to its end. */
    body: Buffer
    /** 0 unless the request asked for the body `inPlace`. */
    bodyAt: number
}

/** Largest header block and (by default) body accepted from a server. */
export const MAX_HEADER_BYTES = 4096
export const MAX_BODY_BYTES = 4096

/**
 * Why a request failed. `tls` failures (certificate refused, handshake failed) are security events;
 * `closed`: the connection ended before any byte of the reply.
 */
export type HttpsFailure = "tls" | "connect" | "timeout" | "closed" | "protocol" | "too-large"

/** Raised when a request fails; the message names the server, never the request's content. */
export class HttpsError extends Error {
    constructor(
        readonly failure: HttpsFailure,
        message: string
    ) {
        super(message)
        this.name = "HttpsError"
    }
}

function indexOfCrlfCrlf(b: Buffer): number {
    for (let i = 0; i + 3 < b.length; ++i) if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i
    return -1
}

function parseHead(head: string, where: string): { status: number; http11: boolean; headers: { [name: string]: string } } {
    const lines = head.split("\r\n")
    const statusLine = lines[0]
    if (statusLine.slice(0, 9) !== "HTTP/1.1 " && statusLine.slice(0, 9) !== "HTTP/1.0 ")
        throw new HttpsError("protocol", `${where}: not an HTTP reply`)
    const status = parseInt(statusLine.slice(9, 12))
    if (!(status >= 100 && status <= 599)) throw new HttpsError("protocol", `${where}: bad status`)
    const headers: { [name: string]: string } = {}
    for (let i = 1; i < lines.length; ++i) {
        const colon = lines[i].indexOf(":")
        if (colon <= 0) throw new HttpsError("protocol", `${where}: malformed header`)
        const name = lines[i].slice(0, colon).trim().toLowerCase()
        const value = lines[i].slice(colon + 1).trim()
        headers[name] = headers[name] !== undefined ? headers[name] + ", " + value : value
    }
    return { status, http11: statusLine.slice(0, 9) === "HTTP/1.1 ", headers }
}

/**
 * A connection to one HTTPS server that stays open between requests (HTTP/1.1
 * persistent connections, RFC 9112 §9.3): a login's two SCRAM requests and
 * the update exchanges after it share one TLS handshake, the most expensive
 * thing the device does. It holds the runtime's one socket until `close()`,
 * so whoever opens one closes it before anything else connects.
 *
 * A server that answers `connection: close` (or HTTP/1.0, or a body without a
 * length) gets a new connection for the next request. A request that finds
 * its kept connection gone before any byte of the reply (the server's idle
 * timeout, or another connection took the socket) is sent once more on a
 * fresh one, as RFC 9112 §9.3.1 allows for a request the server never saw.
 */
export class HttpsConnection {
    /** TLS connections opened so far: each one a handshake. */
    handshakes = 0
    private socket: Socket = undefined
    private readonly where: string

    constructor(
        readonly endpoint: Endpoint,
        private readonly timeoutMs = 20000
    ) {
        this.where = `https://${endpoint.host}:${endpoint.port}`
    }

    /** Sends one request and reads the whole reply, over the kept connection if there is one. */
    async request(req: HttpsRequest): Promise<HttpsResponse> {
        const kept = this.socket !== undefined
        if (kept) {
            try {
                return await this.exchange(req)
            } catch (e: any) {
                if (!(e instanceof HttpsError) || e.failure !== "closed") throw e
            }
        }
        await this.open()
        return await this.exchange(req)
    }

    /** Closes the connection, if one is open. */
    async close() {
        const s = this.socket
        this.socket = undefined
        if (s) await s.close()
    }

    private async open() {
        await this.close()
        try {
            this.socket = await connect({ host: this.endpoint.host, port: this.endpoint.port, proto: "tls", timeout: this.timeoutMs })
        } catch (e: any) {
            // the runtime refuses an invalid certificate here, before anything is sent
            const msg = e && e.message ? e.message : "connection failed"
            throw new HttpsError(isTlsFailure(msg) ? "tls" : "connect", `${this.where}: ${msg}`)
        }
        this.handshakes++
    }

    /** Reads the next chunk: `null` when the server closed, `HttpsError` on a timeout or a socket error. */
    private async recv(what: string): Promise<Buffer> {
        let chunk: Buffer
        try {
            chunk = await this.socket.recv(this.timeoutMs)
        } catch (e: any) {
            chunk = null
        }
        if (chunk === undefined) throw new HttpsError("timeout", `${this.where}: ${what}`)
        return chunk
    }

    /** One request and its reply on the open socket; closes it on any failure and when the server will not keep it. */
    private async exchange(req: HttpsRequest): Promise<HttpsResponse> {
        try {
            const response = await this.roundTrip(req)
            if (!response.keep) await this.close()
            return response.reply
        } catch (e: any) {
            await this.close()
            throw e
        }
    }

    private async roundTrip(req: HttpsRequest): Promise<{ reply: HttpsResponse; keep: boolean }> {
        const where = this.where
        const maxBody = req.maxBodyBytes ?? MAX_BODY_BYTES
        const body = req.body || ""
        let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${this.endpoint.host}\r\n`
        const headers = req.headers || {}
        for (const name of Object.keys(headers)) head += `${name}: ${headers[name]}\r\n`
        if (body.length > 0) head += `content-type: application/json\r\ncontent-length: ${Buffer.from(body).length}\r\n`
        try {
            await this.socket.send(head + "\r\n" + body)
        } catch (e: any) {
            throw new HttpsError("closed", `${where}: connection closed`)
        }

        let buf = Buffer.alloc(0)
        let headEnd = -1
        // one local for every chunk: a block's own would keep the first (~8 KB) alive while the body fills
        let chunk: Buffer
        while (headEnd < 0) {
            chunk = await this.recv("no reply")
            if (chunk === null) throw new HttpsError(buf.length === 0 ? "closed" : "protocol", `${where}: closed before the reply`)
            // no copy of a first chunk that may already hold a whole signed manifest
            buf = buf.length > 0 ? buf.concat(chunk) : chunk
            headEnd = indexOfCrlfCrlf(buf)
            if (headEnd < 0 && buf.length > MAX_HEADER_BYTES) throw new HttpsError("too-large", `${where}: headers too large`)
        }
        chunk = undefined
        const parsed = parseHead(buf.slice(0, headEnd).toString("utf-8"), where)
        const lengthText = parsed.headers["content-length"]
        const length = lengthText === undefined ? -1 : parseInt(lengthText)
        if (parsed.headers["transfer-encoding"] !== undefined) throw new HttpsError("protocol", `${where}: chunked replies not supported`)
        if (length > maxBody) throw new HttpsError("too-large", `${where}: body too large`)
        // RFC 9112 §9.3: HTTP/1.1 keeps the connection unless either side says close
        const keep = length >= 0 && parsed.http11 && (parsed.headers["connection"] || "").toLowerCase().indexOf("close") < 0
        if (req.inPlace && length >= 0 && buf.length - headEnd - 4 === length)
            return { reply: { status: parsed.status, headers: parsed.headers, body: buf, bodyAt: headEnd + 4 }, keep }
        // one buffer of the announced size, filled in place: the VM's heap is small, and
        // growing by concatenation would hold two copies of a signed manifest at once
        const bodyBuf = Buffer.alloc(length >= 0 ? length : maxBody)
        let filled = buf.length - headEnd - 4
        if (filled > bodyBuf.length) throw new HttpsError("too-large", `${where}: body too large`)
        bodyBuf.blitAt(0, buf, headEnd + 4, filled)
        buf = undefined
        let closed = false
        while (length < 0 || filled < length) {
            chunk = await this.recv("reply cut off")
            if (chunk === null) {
                closed = true
                break
            }
            if (filled + chunk.length > bodyBuf.length) throw new HttpsError("too-large", `${where}: body too large`)
            bodyBuf.blitAt(filled, chunk, 0, chunk.length)
            filled += chunk.length
        }
        if (length >= 0 && filled < length) throw new HttpsError("protocol", `${where}: reply cut off`)
        const reply = {
            status: parsed.status,
            headers: parsed.headers,
            body: filled === bodyBuf.length ? bodyBuf : bodyBuf.slice(0, filled),
            bodyAt: 0,
        }
        return { reply, keep: keep && !closed }
    }
}
