/**
 * Where a server is: the registry, the broker, the update service.
 */

/** A server's host name and TCP port. */
export interface Endpoint {
    host: string
    port: number
}

/** Parses `host:port`; throws `RangeError` on anything else. */
export function parseEndpoint(text: string): Endpoint {
    const colon = text ? text.lastIndexOf(":") : -1
    const port = colon > 0 ? parseInt(text.slice(colon + 1)) : NaN
    if (!(port >= 1 && port <= 65535) || colon <= 0) throw new RangeError(`endpoint "${text}" is not host:port`)
    return { host: text.slice(0, colon), port }
}
