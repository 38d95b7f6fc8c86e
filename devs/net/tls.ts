/**
 * The TLS policy of every listener we run (the registry, the WSSK gateway,
 * Mosquitto; the owner's console when it serves): TLS 1.3, and TLS 1.2 only
 * with an ECDHE key exchange and an AEAD cipher, as RFC 9325 (BCP 195) §4.2
 * recommends. ECDHE gives forward secrecy: a server key stolen later opens no
 * recorded session. AEAD (AES-GCM, ChaCha20-Poly1305) leaves out the CBC
 * suites, whose MAC-then-encrypt construction gave padding oracles (Lucky
 * Thirteen, RFC 7457 §2.8). TLS 1.1 and older are refused (RFC 8996).
 *
 * Both ECDSA and RSA certificates are named, so a deployment can use either;
 * the local CA issues ECDSA P-256. An ESP32's mbedTLS and Node's OpenSSL both
 * speak the first suite of each list.
 */

/** TLS 1.3 suites (RFC 8446 §9.1: AES-128-GCM is the one every implementation must have). */
const TLS13_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]

/** TLS 1.2 suites, in OpenSSL's names: ECDHE key exchange, AEAD ciphers (RFC 9325 §4.2, RFC 7905). */
const TLS12_SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
]

/** Options for node:tls and node:https servers: the oldest version, and the suites, ours preferred. */
export const TLS_SERVER_OPTIONS = {
    minVersion: "TLSv1.2",
    // Node reads the TLS 1.3 suites (TLS_*) and the TLS 1.2 ones from the one list
    ciphers: [...TLS13_SUITES, ...TLS12_SUITES].join(":"),
    honorCipherOrder: true,
} as const

/** The same policy as rabbitmq.conf lines for every TLS listener (Erlang's ssl takes OpenSSL's suite names). */
export const RABBITMQ_TLS_LINES = [
    "ssl_options.versions.1 = tlsv1.3",
    "ssl_options.versions.2 = tlsv1.2",
    ...[...TLS13_SUITES, ...TLS12_SUITES].map((suite, i) => `ssl_options.ciphers.${i + 1} = ${suite}`),
    "ssl_options.honor_cipher_order = true",
]

/** The same policy as mosquitto.conf lines for a listener (Mosquitto 2: `tls_version` is the oldest version). */
export const MOSQUITTO_TLS_LINES = ["tls_version tlsv1.2", `ciphers ${TLS12_SUITES.join(":")}`, `ciphers_tls1.3 ${TLS13_SUITES.join(":")}`]
