/**
 * The one argument check of the firmware's byte-level entry points (ciphers,
 * key derivations, signature verification), as @devicescript/crypto checks
 * its own: a wrong argument is the caller's bug, so it throws at once instead
 * of computing something from the wrong bytes.
 */

/** Throws a `TypeError` naming `label` unless `v` is a Buffer, of exactly `length` bytes when given. */
export function expectBuffer(v: Buffer, label: string, length?: number) {
    if (!(v instanceof Buffer)) throw new TypeError(`${label} must be a buffer`)
    if (length !== undefined && v.length !== length) throw new TypeError(`${label} must be ${length} bytes, not ${v.length}`)
}
