/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) on node:crypto: the server side the
 * registry runs, and a client for the owner tools, tests and benchmarks.
 * The server holds only verifiers (salt, iterations, StoredKey, ServerKey).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto"

export const SCRAM_MECHANISM = "SCRAM-SHA-256"
/** RFC 7677 §4: at least 4096. */
export const SCRAM_MIN_ITERATIONS = 4096
export const SCRAM_MAX_ITERATIONS = 100000
/**
 * Longest client message the server reads. A client-first message is a username (a device id, or an owner
 * name of at most 64 characters) and a nonce; a client-final one a nonce and a proof: both fit many times over.
 * The bound keeps what a stranger can park in a pending exchange small.
 */
export const SCRAM_MAX_CLIENT_MESSAGE = 512

/** What the registry stores per device (RFC 5802 §3). */
export interface ScramVerifier {
    salt: Buffer
    iterations: number
    storedKey: Buffer
    serverKey: Buffer
}

const hmac = (key: Buffer, data: string | Buffer) => createHmac("sha256", key).update(data).digest()
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest()

/** Raised for a message that breaks the protocol. Its text is safe to log. */
export class ScramProtocolError extends Error {}

/** Derives the verifier of a password (for tests and tools; devices compute theirs). */
export function makeVerifier(password: Buffer, salt: Buffer, iterations = SCRAM_MIN_ITERATIONS): ScramVerifier {
    const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256")
    const clientKey = hmac(salted, "Client Key")
    return { salt, iterations, storedKey: sha256(clientKey), serverKey: hmac(salted, "Server Key") }
}

/** Parses `a=1,b=2` (values may contain "="). */
export function parseAttributes(msg: string): Map<string, string> {
    const out = new Map<string, string>()
    for (const part of msg.split(",")) {
        if (part.length < 2 || part[1] !== "=") throw new ScramProtocolError("malformed SCRAM message")
        out.set(part[0], part.slice(2))
    }
    return out
}

/** RFC 5802 §5.1: undo "=2C" and "=3D"; any other "=" is an error. */
function decodeSaslName(name: string): string {
    if (/=(?!2C|3D)/.test(name)) throw new ScramProtocolError("bad username encoding")
    return name.replace(/=2C/g, ",").replace(/=3D/g, "=")
}

/** The parsed client-first-message. */
export interface ClientFirst {
    username: string
    clientNonce: string
    bare: string
}

/** Parses a client-first-message; only "n,," (no channel binding, no authzid) is accepted. */
export function parseClientFirst(msg: string): ClientFirst {
    if (msg.length > SCRAM_MAX_CLIENT_MESSAGE) throw new ScramProtocolError("client-first-message too long")
    if (!msg.startsWith("n,,")) throw new ScramProtocolError("only the gs2 header n,, is supported")
    const bare = msg.slice(3)
    const attrs = parseAttributes(bare)
    const user = attrs.get("n")
    const nonce = attrs.get("r")
    if (attrs.has("m")) throw new ScramProtocolError("unsupported extension")
    if (!user || !nonce || !/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) throw new ScramProtocolError("missing username or nonce")
    return { username: decodeSaslName(user), clientNonce: nonce, bare }
}

/** Server state between the two round trips of one exchange. */
export interface ScramServerExchange {
    username: string
    nonce: string
    authPrefix: string
    verifier: ScramVerifier
}

/** Makes the server-first-message for a verifier. */
export function serverFirst(first: ClientFirst, verifier: ScramVerifier): { message: string; exchange: ScramServerExchange } {
    const nonce = first.clientNonce + randomBytes(18).toString("base64")
    const message = `r=${nonce},s=${verifier.salt.toString("base64")},i=${verifier.iterations}`
    return { message, exchange: { username: first.username, nonce, authPrefix: `${first.bare},${message}`, verifier } }
}

/**
 * Checks the client-final-message. Returns the server-final-message on
 * success, or `undefined` when the proof is wrong.
 */
export function serverFinal(exchange: ScramServerExchange, clientFinal: string): string | undefined {
    if (clientFinal.length > SCRAM_MAX_CLIENT_MESSAGE) throw new ScramProtocolError("client-final-message too long")
    const attrs = parseAttributes(clientFinal)
    if (attrs.get("c") !== "biws") throw new ScramProtocolError("channel binding mismatch")
    if (attrs.get("r") !== exchange.nonce) throw new ScramProtocolError("nonce mismatch")
    const proofText = attrs.get("p")
    if (!proofText || !clientFinal.endsWith(`,p=${proofText}`)) throw new ScramProtocolError("missing proof")
    // RFC 5802 §7: proof = "p=" base64, of a 32-byte ClientProof for SHA-256. Node's decoder skips what is
    // not base64 and stops at padding, so many texts decode to the same bytes; only the canonical one counts.
    const proof = Buffer.from(proofText, "base64")
    if (proof.toString("base64") !== proofText) throw new ScramProtocolError("proof is not canonical base64")
    const withoutProof = clientFinal.slice(0, clientFinal.length - proofText.length - 3)
    const authMessage = `${exchange.authPrefix},${withoutProof}`
    const { storedKey, serverKey } = exchange.verifier
    const signature = hmac(storedKey, authMessage)
    if (proof.length !== 32) return undefined
    const clientKey = Buffer.alloc(32)
    for (let i = 0; i < 32; i++) clientKey[i] = proof[i] ^ signature[i]
    if (!timingSafeEqual(sha256(clientKey), storedKey)) return undefined
    return `v=${hmac(serverKey, authMessage).toString("base64")}`
}

/**
 * ClientKey and ServerKey by salt and iteration count: a client may keep them and skip PBKDF2 when the
 * server offers the same salt again (RFC 5802 §5.1), as devices do (src/identity/scram.ts).
 */
export type ScramKeyCache = Map<string, { clientKey: Buffer; serverKey: Buffer }>

/** A SCRAM client (owner tools, tests, benchmarks). */
export class ScramClient {
    private bare = ""
    private authMessage = ""
    private serverKey: Buffer = Buffer.alloc(0)

    constructor(
        private readonly username: string,
        private readonly password: Buffer,
        private readonly nonce = randomBytes(18).toString("base64"),
        private readonly cache?: ScramKeyCache
    ) {}

    first(): string {
        this.bare = `n=${this.username.replace(/=/g, "=3D").replace(/,/g, "=2C")},r=${this.nonce}`
        return `n,,${this.bare}`
    }

    final(serverFirstMessage: string): string {
        const attrs = parseAttributes(serverFirstMessage)
        const nonce = attrs.get("r") ?? ""
        const iterations = Number(attrs.get("i"))
        if (!nonce.startsWith(this.nonce) || nonce === this.nonce) throw new ScramProtocolError("bad server nonce")
        if (!(iterations >= SCRAM_MIN_ITERATIONS && iterations <= SCRAM_MAX_ITERATIONS))
            throw new ScramProtocolError("iteration count out of range")
        const salt = attrs.get("s") ?? ""
        const cached = this.cache?.get(`${salt},${iterations}`)
        const salted = cached ? undefined : pbkdf2Sync(this.password, Buffer.from(salt, "base64"), iterations, 32, "sha256")
        const clientKey = cached?.clientKey ?? hmac(salted!, "Client Key")
        this.serverKey = cached?.serverKey ?? hmac(salted!, "Server Key")
        this.cache?.set(`${salt},${iterations}`, { clientKey, serverKey: this.serverKey })
        const withoutProof = `c=biws,r=${nonce}`
        this.authMessage = `${this.bare},${serverFirstMessage},${withoutProof}`
        const signature = hmac(sha256(clientKey), this.authMessage)
        const proof = Buffer.alloc(32)
        for (let i = 0; i < 32; i++) proof[i] = clientKey[i] ^ signature[i]
        return `${withoutProof},p=${proof.toString("base64")}`
    }

    verify(serverFinalMessage: string) {
        const v = Buffer.from(parseAttributes(serverFinalMessage).get("v") ?? "", "base64")
        const expected = hmac(this.serverKey, this.authMessage)
        if (v.length !== expected.length || !timingSafeEqual(v, expected)) throw new ScramProtocolError("server signature does not verify")
    }
}
