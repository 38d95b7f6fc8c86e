/**
 * Attempt limiting with growing lockouts that fade (seed: "set a limit to the
 * number of authentication attempts per time unit ... log an event whenever
 * this limit is reached").
 *
 * A key may count `limit` attempts within `windowMs`. The attempt that
 * reaches the limit locks the key for `baseLockoutMs`, doubled for each
 * earlier lockout, up to `maxLockoutMs`. Attempts while locked are refused
 * without being checked or counted. Counts fade: a window that has passed
 * starts from zero, and each `forgiveMs` after a lockout ends forgives one
 * earlier lockout, so a key that stops is back to the first lockout in time.
 *
 * What is counted, and under which keys, follows from what the limits are for.
 * A device's password is 256 random bits and its claim code 160: online
 * guessing is hopeless at any rate (10^9 guesses a second for the age of the
 * universe finds a 256-bit secret with odds below 2^-170). The limits are
 * there to stop floods, which cost the registry work, rows and events. So
 * they count what a stranger controls, the source (./source.ts: an address,
 * or an IPv6 /64), never a device alone: a limit on a device id, which is
 * public, would let anyone who knows it lock the device out, from anywhere,
 * for as long as they keep trying. The keys are:
 *
 * - `login-ip:<source>`, `claim-ip:<source>`: failed logins and claims of a
 *   source, whatever id it tries. A flooding source locks itself out.
 * - `login:<source>:<id>`, `claim:<source>:<id>`: failures of a source on
 *   one device, for the event that names the device tried.
 * - `enroll-ip:<source>`: refused enrollments (an id already taken);
 *   `enroll-new:<source>`: successful ones, under `ENROLLMENT_POLICY`, so
 *   anonymous requests cannot grow the database without bound.
 *
 * A device behind the same address as an attacker shares the attacker's
 * lockout; a device elsewhere never does. A botnet of N sources gets N times
 * the rate, which changes nothing for 256-bit secrets, and each of its
 * sources floods no more than one. Owner accounts, whose passwords people
 * choose, need a limit per account as well; that limit should slow an
 * account down (a delay that grows with its failures) rather than lock it,
 * for the same reason.
 */
import type { RegistryStore } from "./store.ts"

/** Limits of one kind of attempt. */
export interface RateLimitPolicy {
    /** Attempts a key may make in a window; the one that reaches it starts a lockout. */
    limit: number
    windowMs: number
    baseLockoutMs: number
    maxLockoutMs: number
    /** Each `forgiveMs` after a lockout ends forgives one earlier lockout. */
    forgiveMs: number
}

/** Failed logins and claims: 5 a minute, then 30 s, 60 s, … up to an hour; one lockout forgiven per quiet hour. */
export const DEFAULT_POLICY: RateLimitPolicy = {
    limit: 5,
    windowMs: 60_000,
    baseLockoutMs: 30_000,
    maxLockoutMs: 3_600_000,
    forgiveMs: 3_600_000,
}

/**
 * Successful enrollments of new ids from one source: 20 an hour (a house of devices set up at once),
 * then an hour's wait, growing to a day for a source that keeps it up.
 */
export const ENROLLMENT_POLICY: RateLimitPolicy = {
    limit: 20,
    windowMs: 3_600_000,
    baseLockoutMs: 3_600_000,
    maxLockoutMs: 86_400_000,
    forgiveMs: 86_400_000,
}

/** A key untouched this long has nothing left to remember under these policies: its row is dropped. */
export const FORGET_AFTER_MS = 7 * 86_400_000

/**
 * Rate limiter over a store, so lockouts survive a registry restart and every registry on one store
 * counts the same attempts: a flood spread over several registries is limited at the same count as on one.
 */
export class RateLimiter {
    constructor(
        private readonly store: RegistryStore,
        private readonly policy: RateLimitPolicy = DEFAULT_POLICY
    ) {}

    /** Milliseconds until `key` may try again; 0 if it may try now. */
    async retryAfter(key: string, now: number): Promise<number> {
        return Math.max(0, ((await this.store.getRateLimit(key))?.lockedUntil ?? 0) - now)
    }

    /**
     * Counts an attempt. Returns the lockout it started (ms), or 0 if the limit
     * was not reached by this attempt.
     */
    async count(key: string, now: number): Promise<number> {
        let lockout = 0
        await this.store.updateRateLimit(key, state => {
            const s = state ?? { key, attempts: 0, windowStart: 0, lockedUntil: 0, lockouts: 0 }
            if (now - s.windowStart > this.policy.windowMs) {
                s.windowStart = now
                s.attempts = 0
            }
            if (s.lockouts > 0 && now > s.lockedUntil)
                s.lockouts = Math.max(0, s.lockouts - Math.floor((now - s.lockedUntil) / this.policy.forgiveMs))
            s.attempts++
            lockout = 0
            if (s.attempts >= this.policy.limit) {
                lockout = Math.min(this.policy.maxLockoutMs, this.policy.baseLockoutMs * 2 ** s.lockouts)
                s.lockedUntil = now + lockout
                // past the longest lockout, more lockouts would only take longer to forgive
                if (lockout < this.policy.maxLockoutMs) s.lockouts++
                s.attempts = 0
                s.windowStart = now
            }
            return s
        })
        return lockout
    }

    /** A success clears the count of failures (earlier lockouts still make the next one longer, until forgiven). */
    async succeed(key: string) {
        await this.store.updateRateLimit(key, s => (s && s.attempts !== 0 ? { ...s, attempts: 0 } : undefined))
    }
}
