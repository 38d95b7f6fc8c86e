/**
 * What the runtime's connection errors say about TLS. The runtime validates
 * the server's certificate during the handshake (simulator: Node's TLS with
 * its CA store plus NODE_EXTRA_CA_CERTS; ESP32: the built-in CA bundle) and
 * reports a refusal only as an error message, so the message is all there is
 * to tell a refused certificate (a security event) from an unreachable server.
 */

/** Words in the runtime's connection errors that mean the TLS handshake or the certificate failed. */
const TLS_ERROR_WORDS = ["cert", "self-signed", "self signed", "altname", "handshake", "issuer", "expired", "unable to verify"]

/** Whether a connection error message is a TLS refusal rather than an unreachable server. */
export function isTlsFailure(message: string): boolean {
    const m = message.toLowerCase()
    for (const w of TLS_ERROR_WORDS) if (m.indexOf(w) >= 0) return true
    return false
}
