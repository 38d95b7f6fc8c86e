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

/** One request, to the server at `host:port`. */
export interface HttpsRequest extends Endpoint {
    method: "GET" | "POST"
    path: string
    headers?: { [name: string]: string }
    body?: string
    /** Give up after this long, in milliseconds. Default 20 s. */
    timeoutMs?: number
    /** Largest reply body accepted. Default `MAX_BODY_BYTES`; a signed firmware manifest needs more. */
    maxBodyBytes?: number
}

/** One reply; header names are lower-case. */
export interface HttpsResponse {
    status: number
    headers: { [name: string]: string }
    body: Buffer
}

/** Largest header block and (by default) body accepted from a server. */
export const MAX_HEADER_BYTES = 4096
export const MAX_BODY_BYTES = 4096

/** Why a request failed. `tls` failures (certificate refused, handshake failed) are security events. */
export type HttpsFailure = "tls" | "connect" | "timeout" | "protocol" | "too-large"

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

function parseHead(head: string, where: string): { status: number; headers: { [name: string]: string } } {
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
    return { status, headers }
}

/** Sends one request over a fresh TLS connection and reads the whole reply. */
export async function httpsRequest(req: HttpsRequest): Promise<HttpsResponse> {
    const where = `https://${req.host}:${req.port}`
    const timeoutMs = req.timeoutMs ?? 20000
    const maxBody = req.maxBodyBytes ?? MAX_BODY_BYTES
    let socket: Socket
    try {
        socket = await connect({ host: req.host, port: req.port, proto: "tls", timeout: timeoutMs })
    } catch (e: any) {
        // the runtime refuses an invalid certificate here, before anything is sent
        const msg = e && e.message ? e.message : "connection failed"
        throw new HttpsError(isTlsFailure(msg) ? "tls" : "connect", `${where}: ${msg}`)
    }
    try {
        const body = req.body || ""
        let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${req.host}\r\nconnection: close\r\n`
        const headers = req.headers || {}
        for (const name of Object.keys(headers)) head += `${name}: ${headers[name]}\r\n`
        if (body.length > 0) head += `content-type: application/json\r\ncontent-length: ${Buffer.from(body).length}\r\n`
        await socket.send(head + "\r\n" + body)

        let buf = Buffer.alloc(0)
        let headEnd = -1
        while (headEnd < 0) {
            const chunk = await socket.recv(timeoutMs)
            if (chunk === undefined) throw new HttpsError("timeout", `${where}: no reply`)
            if (chunk === null) throw new HttpsError("protocol", `${where}: closed before the reply`)
            // no copy of a first chunk that may already hold a whole signed manifest
            buf = buf.length > 0 ? buf.concat(chunk) : chunk
            headEnd = indexOfCrlfCrlf(buf)
            if (headEnd < 0 && buf.length > MAX_HEADER_BYTES) throw new HttpsError("too-large", `${where}: headers too large`)
        }
        const parsed = parseHead(buf.slice(0, headEnd).toString("utf-8"), where)
        const lengthText = parsed.headers["content-length"]
        const length = lengthText === undefined ? -1 : parseInt(lengthText)
        if (parsed.headers["transfer-encoding"] !== undefined) throw new HttpsError("protocol", `${where}: chunked replies not supported`)
        if (length > maxBody) throw new HttpsError("too-large", `${where}: body too large`)
        // one buffer of the announced size, filled in place: the VM's heap is small, and
        // growing by concatenation would hold two copies of a signed manifest at once
        const bodyBuf = Buffer.alloc(length >= 0 ? length : maxBody)
        let filled = buf.length - headEnd - 4
        if (filled > bodyBuf.length) throw new HttpsError("too-large", `${where}: body too large`)
        bodyBuf.blitAt(0, buf, headEnd + 4, filled)
        buf = undefined
        while (length < 0 || filled < length) {
            const chunk = await socket.recv(timeoutMs)
            if (chunk === undefined) throw new HttpsError("timeout", `${where}: reply cut off`)
            if (chunk === null) break
            if (filled + chunk.length > bodyBuf.length) throw new HttpsError("too-large", `${where}: body too large`)
            bodyBuf.blitAt(filled, chunk, 0, chunk.length)
            filled += chunk.length
        }
        if (length >= 0 && filled < length) throw new HttpsError("protocol", `${where}: reply cut off`)
        return { status: parsed.status, headers: parsed.headers, body: filled === bodyBuf.length ? bodyBuf : bodyBuf.slice(0, filled) }
    } finally {
        await socket.close()
    }
}
