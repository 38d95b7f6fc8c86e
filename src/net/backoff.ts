/**
 * How long to wait before trying a server again.
 */

/** Delay before retry `attempt` (from 0): exponential from `minMs`, capped at `maxMs`, with ±25 % jitter so fleets do not stampede. */
export function backoffMs(attempt: number, minMs: number, maxMs: number): number {
    const base = Math.min(maxMs, minMs * Math.pow(2, Math.min(attempt, 20)))
    return Math.round(base * (0.75 + Math.random() * 0.5))
}
