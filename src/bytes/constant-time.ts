/**
 * Comparison of secret-dependent bytes (MACs, proofs, digests, stored secrets).
 */

/** Compares without an early exit, so timing says nothing about where two values differ. False if either is missing. */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
    if (!a || !b || a.length !== b.length) return false
    let diff = 0
    for (let i = 0; i < a.length; ++i) diff |= a[i] ^ b[i]
    return diff === 0
}
