/**
 * The auth-param lists of HTTP authentication headers (RFC 7235 §2.1), as
 * the SCRAM exchange of RFC 7804 carries them in `Authorization`,
 * `WWW-Authenticate` and `Authentication-Info`: both the registry and its
 * client read them.
 */

/** Parses `SCRAM-SHA-256 a=b, c="d"`: the scheme and its parameters (names lower-cased). */
export function parseAuthorization(header: string): { scheme: string; params: Map<string, string> } {
    const sp = header.indexOf(" ")
    const scheme = sp < 0 ? header : header.slice(0, sp)
    const params = new Map<string, string>()
    const rest = sp < 0 ? "" : header.slice(sp + 1)
    const re = /\s*([A-Za-z][A-Za-z0-9-]*)\s*=\s*("([^"]*)"|[^,\s]*)\s*(,|$)/gy
    let m: RegExpExecArray | null
    while (re.lastIndex < rest.length && (m = re.exec(rest))) params.set(m[1].toLowerCase(), m[3] ?? m[2])
    return { scheme, params }
}
