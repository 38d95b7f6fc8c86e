/**
 * Failed-attempt limiting with growing lockouts (seed: "set a limit to the
 * number of authentication attempts per time unit ... log an event whenever
 * this limit is reached").
 *
 * A key (a device id, an owner, a source address) may fail `maxFailures`
 * times within `windowMs`. The failure that reaches the limit locks the key
 * for `baseLockoutMs`, doubled for each earlier lockout, up to `maxLockoutMs`.
 * Attempts while locked are refused without being checked or counted.
 */
import type { RateLimitState, RegistryStore } from "./store.ts"

/** Limits of one kind of attempt. */
export interface RateLimitPolicy {
    maxFailures: number
    windowMs: number
    baseLockoutMs: number
    maxLockoutMs: number
}

/** The default for logins and claims: 5 failures a minute, then 30 s, 60 s, … up to an hour. */
export const DEFAULT_POLICY: RateLimitPolicy = {
    maxFailures: 5,
    windowMs: 60_000,
    baseLockoutMs: 30_000,
    maxLockoutMs: 3_600_000,
}

/** Rate limiter over a store, so lockouts survive a registry restart. */
export class RateLimiter {
    constructor(
        private readonly store: RegistryStore,
        private readonly policy: RateLimitPolicy = DEFAULT_POLICY
    ) {}

    private state(key: string): RateLimitState {
        return this.store.getRateLimit(key) ?? { key, failures: 0, windowStart: 0, lockedUntil: 0, lockouts: 0 }
    }

    /** Milliseconds until `key` may try again; 0 if it may try now. */
    retryAfter(key: string, now: number): number {
        return Math.max(0, this.state(key).lockedUntil - now)
    }

    /**
     * Counts a failure. Returns the lockout it started (ms), or 0 if the limit
     * was not reached by this failure.
     */
    fail(key: string, now: number): number {
        const s = this.state(key)
        if (now - s.windowStart > this.policy.windowMs) {
            s.windowStart = now
            s.failures = 0
        }
        s.failures++
        let lockout = 0
        if (s.failures >= this.policy.maxFailures) {
            lockout = Math.min(this.policy.maxLockoutMs, this.policy.baseLockoutMs * 2 ** s.lockouts)
            s.lockedUntil = now + lockout
            s.lockouts++
            s.failures = 0
            s.windowStart = now
        }
        this.store.putRateLimit(s)
        return lockout
    }

    /** A success clears the failure count (earlier lockouts still make the next one longer). */
    succeed(key: string) {
        const s = this.state(key)
        if (s.failures === 0) return
        s.failures = 0
        this.store.putRateLimit(s)
    }
}
