/**
 * Who may use the owner service over HTTP:
 * - a person at the console: a password set at first run, kept as scrypt
 *   (node:crypto, N = 2^15, r = 8, p = 1, 16-byte salt; RFC 7914), and a
 *   session: a random 256-bit id in a cookie (`HttpOnly; SameSite=Strict`,
 *   `Secure` under TLS), kept only as its SHA-256, with a CSRF token every
 *   state-changing request must echo in `x-csrf-token` (the synchronizer
 *   token pattern); failed logins are limited per source and logged;
 * - a program (the CLIs, the bridge): `Authorization: Bearer <api token>`, a
 *   random 256-bit token in a file of mode 0600 beside the store, kept in the
 *   store as its SHA-256. No cookie, so nothing a browser can be tricked into sending.
 */
import { createHash, randomBytes, scryptSync, timingSafeEqual } from "node:crypto"
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { writePrivateFile } from "../files/private.ts"
import type { OwnerStore } from "./store.ts"

/** scrypt's parameters (RFC 7914 §2): cost N, block size r, parallelism p; maxmem above 128·N·r. */
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }
const SALT_BYTES = 16
const HASH_BYTES = 32
/** A console session lasts this long. */
export const SESSION_TTL_MS = 12 * 3_600_000
/** Failed logins per source within the window before a lockout. */
const LOGIN_LIMIT = { failures: 5, windowMs: 60_000, lockoutMs: 60_000 }
/** The file beside the owner store that holds the first run's console setup link. */
export const SETUP_LINK_FILE = "console-setup-link.txt"
/** The shortest password the console takes. */
export const MIN_PASSWORD_LENGTH = 10

const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest()

/** `scrypt$N$r$p$salt$hash` (base64), so the parameters can change without breaking stored hashes. */
export function hashPassword(password: string): string {
    const salt = randomBytes(SALT_BYTES)
    const hash = scryptSync(password.normalize("NFC"), salt, HASH_BYTES, SCRYPT)
    return ["scrypt", SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString("base64"), hash.toString("base64")].join("$")
}

/** Checks a password against a stored hash, in constant time. */
export function checkPassword(password: string, stored: string): boolean {
    const [kind, n, r, p, salt, hash] = stored.split("$")
    if (kind !== "scrypt") return false
    const expected = Buffer.from(hash, "base64")
    const got = scryptSync(password.normalize("NFC"), Buffer.from(salt, "base64"), expected.length, {
        N: Number(n),
        r: Number(r),
        p: Number(p),
        maxmem: SCRYPT.maxmem,
    })
    return timingSafeEqual(got, expected)
}

/** The console's sessions, login limits and API token, over the store. */
export class ConsoleAuth {
    /** The one-time token of the first-run setup page, while no password is set. */
    private setupToken: string | undefined
    /** The file the setup link was written to, removed once a password is set. */
    private setupLinkFile: string | undefined

    constructor(
        private readonly store: OwnerStore,
        private readonly clock: () => number = Date.now
    ) {}

    /** Whether a console password is set. */
    hasPassword(): boolean {
        return this.store.consolePasswordHash() !== undefined
    }

    setPassword(password: string) {
        if (password.length < MIN_PASSWORD_LENGTH) throw new RangeError(`the password needs at least ${MIN_PASSWORD_LENGTH} characters`)
        this.store.setConsolePasswordHash(hashPassword(password), this.clock())
        this.setupToken = undefined
        if (this.setupLinkFile !== undefined) rmSync(this.setupLinkFile, { force: true })
    }

    /**
     * First run: writes a fresh one-time setup link (`baseUrl`/setup?token=…) to `file`, mode 0600, and returns
     * true. The link is a credential: whoever opens it first sets the password, so it goes to a file only the
     * owner's account may read, never to the log. Once a password is set the file is removed (an earlier run's
     * too) and this returns false.
     */
    offerSetupLink(file: string, baseUrl: string): boolean {
        this.setupLinkFile = file
        const token = this.newSetupToken()
        if (token === undefined) {
            rmSync(file, { force: true })
            return false
        }
        writePrivateFile(file, `${baseUrl}/setup?token=${token}\n`)
        return true
    }

    /** A fresh one-time setup token (first run only; undefined once a password is set). */
    newSetupToken(): string | undefined {
        if (this.hasPassword()) return undefined
        this.setupToken = randomBytes(24).toString("base64url")
        return this.setupToken
    }

    checkSetupToken(token: unknown): boolean {
        if (typeof token !== "string" || !this.setupToken || this.hasPassword()) return false
        const [a, b] = [sha256(token), sha256(this.setupToken)]
        return timingSafeEqual(a, b)
    }

    /** Milliseconds before `source` may try to log in again; 0 if it may now. */
    retryAfter(source: string): number {
        return Math.max(0, (this.store.loginAttempts(source)?.lockedUntil ?? 0) - this.clock())
    }

    /**
     * Checks a login attempt; returns a new session (cookie value and CSRF
     * token) or undefined. A failure counts toward the source's limit.
     */
    login(password: unknown, source: string): { sid: string; csrf: string } | undefined {
        const hash = this.store.consolePasswordHash()
        const ok = typeof password === "string" && password.length <= 1024 && hash !== undefined && checkPassword(password, hash)
        const now = this.clock()
        if (!ok) {
            const s = this.store.loginAttempts(source) ?? { failures: 0, windowStart: now, lockedUntil: 0 }
            if (now - s.windowStart > LOGIN_LIMIT.windowMs) Object.assign(s, { failures: 0, windowStart: now })
            s.failures++
            if (s.failures >= LOGIN_LIMIT.failures)
                Object.assign(s, { failures: 0, windowStart: now, lockedUntil: now + LOGIN_LIMIT.lockoutMs })
            this.store.putLoginAttempts(source, s)
            return undefined
        }
        this.store.putLoginAttempts(source, { failures: 0, windowStart: now, lockedUntil: 0 })
        const sid = randomBytes(32).toString("base64url")
        const csrf = randomBytes(24).toString("base64url")
        this.store.addSession(sha256(sid), csrf, now + SESSION_TTL_MS)
        return { sid, csrf }
    }

    /** The session of a cookie value, if it is valid. */
    session(sid: string | undefined): { csrf: string } | undefined {
        if (!sid || sid.length > 64) return undefined
        return this.store.session(sha256(sid), this.clock())
    }

    logout(sid: string | undefined) {
        if (sid) this.store.deleteSession(sha256(sid))
    }

    /** Whether a bearer token is the API token. */
    apiToken(token: string | undefined): boolean {
        return !!token && token.length <= 128 && this.store.hasApiToken(sha256(token))
    }

    /**
     * Makes sure the API token file exists (mode 0600) and is the store's
     * token; a file that does not match is replaced. Returns its path.
     */
    ensureApiTokenFile(path: string): string {
        const current = existsSync(path) ? readFileSync(path, "utf8").trim() : undefined
        if (current && this.apiToken(current)) {
            chmodSync(path, 0o600)
            return path
        }
        const token = randomBytes(32).toString("base64url")
        if (!existsSync(dirname(path))) mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
        writeFileSync(path, token + "\n", { mode: 0o600 })
        chmodSync(path, 0o600)
        this.store.setApiToken(sha256(token), this.clock())
        return path
    }
}
