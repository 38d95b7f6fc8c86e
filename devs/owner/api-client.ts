/**
 * A client of the owner service's HTTP API, for the CLIs and the bridge:
 * `Authorization: Bearer <api token>` (the token file the service keeps,
 * mode 0600), JSON requests, and the server-sent event stream.
 */
import { request as httpRequest, type IncomingMessage } from "node:http"
import { request as httpsRequest } from "node:https"

/** An answer of the API that is not a success; its message is the service's own sentence. */
export class ApiError extends Error {
    constructor(
        readonly status: number,
        message: string
    ) {
        super(message)
        this.name = "ApiError"
    }
}

/** One server-sent event. */
export interface StreamEvent {
    event: string
    data: unknown
}

/** The owner service at `baseUrl`, reached with `token`; `ca` (PEM) for a service under TLS. */
export class OwnerApi {
    private readonly base: URL

    constructor(
        baseUrl: string,
        private readonly token: string,
        private readonly ca?: Buffer
    ) {
        this.base = new URL(baseUrl)
    }

    private open(method: string, path: string, body?: unknown): Promise<IncomingMessage> {
        const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
        const send = this.base.protocol === "https:" ? httpsRequest : httpRequest
        return new Promise((resolve, reject) => {
            const req = send(
                {
                    host: this.base.hostname,
                    port: this.base.port,
                    path,
                    method,
                    ...(this.ca ? { ca: this.ca } : {}),
                    headers: {
                        authorization: `Bearer ${this.token}`,
                        ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
                    },
                },
                resolve
            )
            req.on("error", reject)
            req.end(payload)
        })
    }

    /** One request; resolves with the JSON answer, rejects with `ApiError` on a 4xx or 5xx. */
    async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
        const res = await this.open(method, path, body)
        const chunks: Buffer[] = []
        for await (const c of res) chunks.push(c as Buffer)
        let answer: Record<string, unknown> = {}
        try {
            answer = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        } catch {
            // not JSON: the status says enough
        }
        const status = res.statusCode ?? 0
        if (status >= 400) throw new ApiError(status, String(answer.error ?? `HTTP ${status}`))
        return answer as T
    }

    /** Follows the event stream until `signal` aborts (resolves true) or the service ends it (resolves false). */
    async stream(onEvent: (e: StreamEvent) => void, signal?: AbortSignal): Promise<boolean> {
        const res = await this.open("GET", "/api/stream")
        if ((res.statusCode ?? 0) >= 400) throw new ApiError(res.statusCode ?? 0, `the event stream was refused (HTTP ${res.statusCode})`)
        signal?.addEventListener("abort", () => res.destroy())
        let buffer = ""
        try {
            for await (const chunk of res) {
                buffer += (chunk as Buffer).toString("utf8")
                let end: number
                while ((end = buffer.indexOf("\n\n")) >= 0) {
                    const block = buffer.slice(0, end)
                    buffer = buffer.slice(end + 2)
                    const event = /^event: (.*)$/m.exec(block)?.[1]
                    const data = /^data: (.*)$/m.exec(block)?.[1]
                    if (event && data !== undefined) onEvent({ event, data: JSON.parse(data) })
                }
            }
        } catch (e) {
            // the service stopping resets the connection: an end like any other
            if (!signal?.aborted && (e as NodeJS.ErrnoException).code !== "ECONNRESET") throw e
        }
        return signal?.aborted === true
    }
}
