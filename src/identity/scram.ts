/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677), client side, on the runtime's native
 * HMAC-SHA-256. No channel binding: the exchange runs inside TLS that the
 * device validates, and the gs2 header says so ("n,,", RFC 5802 §7).
 *
 * The device proves it knows the password without sending it, and checks the
 * server's signature, so a server that only holds a stolen verifier, or a man
 * in the middle with a valid certificate, cannot complete the exchange.
 */
import * as ds from "@devicescript/core"
import { constantTimeEqual } from "../bytes/constant-time"
import { hmacSha256, nativeDigest, randomBytes, sha256 } from "../bytes/natives"
import { base64Decode, base64Encode } from "../codec/base64"

/** RFC 7677 §4: at least 4096 iterations; a server asking for fewer is refused. */
export const SCRAM_MIN_ITERATIONS = 4096
/** A server asking for more is refused too: it would tie the device up for minutes. */
export const SCRAM_MAX_ITERATIONS = 100000
/** HMAC calls between two yields, to stay inside the VM's step budget. */
const PBKDF2_YIELD_EVERY = 64

/** Raised when the server's messages break the protocol or fail verification. */
export class ScramError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "ScramError"
    }
}

/**
 * PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2) for one 32-byte block: SCRAM's Hi()
 * (RFC 5802 §2.2). The loop is all VM time around 4096 native HMACs, so it
 * calls the runtime's HMAC directly (@devicescript/crypto's `hmac()` checks its
 * arguments and builds a rest array on every call) and XORs U_i into the
 * result a 32-bit word at a time. Yields now and then.
 */
export async function pbkdf2Sha256(password: Buffer, salt: Buffer, iterations: number): Promise<Buffer> {
    let u = hmacSha256(password, [salt, hex`00000001`])
    const out = u.slice(0)
    const input = [u]
    for (let i = 1; i < iterations; ++i) {
        input[0] = u
        u = nativeDigest(password, "sha256", input)
        for (let k = 0; k < 32; k += 4) out.setAt(k, "i32", out.getAt(k, "i32") ^ u.getAt(k, "i32"))
        if (i % PBKDF2_YIELD_EVERY === 0) await ds.sleep(0)
    }
    return out
}

/** What a server keeps instead of a password (RFC 5802 §3). */
export interface ScramVerifier {
    salt: Buffer
    iterations: number
    storedKey: Buffer
    serverKey: Buffer
}

/** Keys derived from the salted password; the client keeps them, never the server. */
interface ScramKeys {
    clientKey: Buffer
    storedKey: Buffer
    serverKey: Buffer
}

async function deriveKeys(password: Buffer, salt: Buffer, iterations: number): Promise<ScramKeys> {
    const salted = await pbkdf2Sha256(password, salt, iterations)
    const clientKey = hmacSha256(salted, ["Client Key"])
    return {
        clientKey,
        storedKey: sha256([clientKey]),
        serverKey: hmacSha256(salted, ["Server Key"]),
    }
}

/** Computes the verifier of a password, with a fresh random salt. */
export async function makeScramVerifier(password: Buffer, iterations = SCRAM_MIN_ITERATIONS): Promise<ScramVerifier> {
    const salt = randomBytes(16)
    const keys = await deriveKeys(password, salt, iterations)
    return { salt, iterations, storedKey: keys.storedKey, serverKey: keys.serverKey }
}

/** RFC 5802 §5.1: "=" and "," in a username are escaped as "=3D" and "=2C". */
function saslName(name: string): string {
    let out = ""
    for (let i = 0; i < name.length; ++i) {
        const c = name[i]
        out += c === "=" ? "=3D" : c === "," ? "=2C" : c
    }
    return out
}

/** Splits `a=1,b=2` into attributes; throws on anything malformed. */
function parseAttributes(msg: string): { [k: string]: string } {
    const out: { [k: string]: string } = {}
    for (const part of msg.split(",")) {
        if (part.length < 2 || part[1] !== "=") throw new ScramError("malformed SCRAM message")
        out[part[0]] = part.slice(2)
    }
    return out
}

function isDecimal(s: string): boolean {
    if (!s || s.length > 9) return false
    for (let i = 0; i < s.length; ++i) if (s.charCodeAt(i) < 0x30 || s.charCodeAt(i) > 0x39) return false
    return true
}

function xor(a: Buffer, b: Buffer): Buffer {
    const out = Buffer.alloc(a.length)
    for (let i = 0; i < a.length; ++i) out[i] = a[i] ^ b[i]
    return out
}

/** Options of a SCRAM client. */
export interface ScramClientOptions {
    username: string
    password: Buffer
    /** Client nonce; random unless given (tests use the RFC's). */
    nonce?: string
    /** Keys cached from an earlier exchange with the same salt and count, to skip PBKDF2. */
    cache?: ScramKeyCache
}

/** Salted keys remembered in RAM between logins (RFC 5802 §5.1 allows the client to cache them). */
export interface ScramKeyCache {
    salt?: Buffer
    iterations?: number
    keys?: ScramKeys
}

/** One SCRAM-SHA-256 exchange, client side. */
export class ScramClient {
    private readonly nonce: string
    private clientFirstBare: string
    private authMessage: string
    private keys: ScramKeys

    constructor(private readonly options: ScramClientOptions) {
        this.nonce = options.nonce || base64Encode(randomBytes(18))
    }

    /** The client-first-message. */
    clientFirst(): string {
        this.clientFirstBare = `n=${saslName(this.options.username)},r=${this.nonce}`
        return "n,," + this.clientFirstBare
    }

    /** Checks the server-first-message and returns the client-final-message. */
    async clientFinal(serverFirst: string): Promise<string> {
        if (!this.clientFirstBare) throw new ScramError("clientFirst() not called")
        const attrs = parseAttributes(serverFirst)
        if (attrs["m"] !== undefined) throw new ScramError("server requires an unknown extension")
        const nonce = attrs["r"]
        const salt = attrs["s"] !== undefined ? base64Decode(attrs["s"]) : undefined
        const iterations = isDecimal(attrs["i"]) ? parseInt(attrs["i"]) : NaN
        if (!nonce || nonce.length <= this.nonce.length || nonce.slice(0, this.nonce.length) !== this.nonce)
            throw new ScramError("server nonce does not extend ours")
        if (!salt || salt.length < 8) throw new ScramError("missing or short salt")
        if (!(iterations >= SCRAM_MIN_ITERATIONS && iterations <= SCRAM_MAX_ITERATIONS))
            throw new ScramError(`iteration count ${attrs["i"]} outside ${SCRAM_MIN_ITERATIONS}..${SCRAM_MAX_ITERATIONS}`)
        const cache = this.options.cache
        if (cache && cache.keys && cache.iterations === iterations && constantTimeEqual(cache.salt, salt)) this.keys = cache.keys
        else {
            this.keys = await deriveKeys(this.options.password, salt, iterations)
            if (cache) {
                cache.salt = salt
                cache.iterations = iterations
                cache.keys = this.keys
            }
        }
        // "biws" is base64("n,,"): no channel binding, no authzid
        const withoutProof = `c=biws,r=${nonce}`
        this.authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`
        const signature = hmacSha256(this.keys.storedKey, [this.authMessage])
        return `${withoutProof},p=${base64Encode(xor(this.keys.clientKey, signature))}`
    }

    /** Checks the server-final-message: the server must prove it knows the ServerKey. */
    verifyServerFinal(serverFinal: string) {
        if (!this.authMessage) throw new ScramError("clientFinal() not called")
        const attrs = parseAttributes(serverFinal)
        if (attrs["e"] !== undefined) throw new ScramError(`server refused: ${attrs["e"]}`)
        const got = attrs["v"] !== undefined ? base64Decode(attrs["v"]) : undefined
        const expected = hmacSha256(this.keys.serverKey, [this.authMessage])
        if (!constantTimeEqual(got, expected)) throw new ScramError("server signature does not verify")
    }
}
