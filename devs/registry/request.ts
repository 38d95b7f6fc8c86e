/**
 * What every registry endpoint reads from a request, checked once here: the
 * JSON body (at most `MAX_BODY_BYTES`, an object) and base64 fields of a
 * bounded length. A refusal is an `HttpError`, whose message is safe to send
 * and to log.
 */

/** The largest body an endpoint reads; a larger one is 413. */
export const MAX_BODY_BYTES = 4096

/** A client error with a status code; its message is safe to send and log. */
export class HttpError extends Error {
    constructor(
        readonly status: number,
        message: string,
        readonly headers: Record<string, string> = {}
    ) {
        super(message)
    }
}

/** The body as a JSON object, or 413 / 400. */
export function jsonBody(body: Buffer): Record<string, unknown> {
    if (body.length > MAX_BODY_BYTES) throw new HttpError(413, "body too large")
    try {
        const v = JSON.parse(body.toString("utf8"))
        if (v && typeof v === "object" && !Array.isArray(v)) return v
    } catch {
        // fall through
    }
    throw new HttpError(400, "body must be a JSON object")
}

/** A base64 field (RFC 4648 §4, padded) of `min`..`max` bytes, or 400 naming it. */
export function base64Field(field: unknown, name: string, min: number, max: number): Buffer {
    if (typeof field !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(field) || field.length % 4 !== 0)
        throw new HttpError(400, `${name} must be base64`)
    const b = Buffer.from(field, "base64")
    if (b.length < min || b.length > max) throw new HttpError(400, `${name} must be ${min}..${max} bytes`)
    return b
}
