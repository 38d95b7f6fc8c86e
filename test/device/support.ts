/**
 * What the device suites share (not a suite itself): refusals that must be of
 * one error class, and byte fillers.
 *
 * A refusal test passes only when the code throws, and throws what it
 * documents: an unexpected error (a TypeError from a bug, say) fails the test
 * with both names, instead of passing for the wrong reason.
 */

/** An error class, as the refusal helpers take it. */
export type ErrorClass<E extends Error> = new (...args: any[]) => E

function expected(errorClass: ErrorClass<Error>): string {
    const name = (errorClass as any).name
    return name ? `a ${name}` : "another error class"
}

function caught<E extends Error>(errorClass: ErrorClass<E>, e: any): E {
    if (e instanceof errorClass) return e
    throw new Error(`expected ${expected(errorClass)}, got ${e instanceof Error ? `${e.name}: ${e.message}` : e}`)
}

/** Runs `fn` and returns what it threw; fails the test unless `fn` throws an instance of `errorClass`. */
export function thrown<E extends Error>(errorClass: ErrorClass<E>, fn: () => any): E {
    try {
        fn()
    } catch (e: any) {
        return caught(errorClass, e)
    }
    throw new Error(`expected ${expected(errorClass)}, but nothing was thrown`)
}

/** Runs `fn`; fails the test unless it throws an instance of `errorClass`; returns the error's message. */
export function refusal<E extends Error>(errorClass: ErrorClass<E>, fn: () => any): string {
    return thrown(errorClass, fn).message
}

/** `refusal` for asynchronous code: awaits `fn`, which must reject with an instance of `errorClass`. */
export async function asyncRefusal<E extends Error>(errorClass: ErrorClass<E>, fn: () => Promise<any>): Promise<string> {
    try {
        await fn()
    } catch (e: any) {
        return caught(errorClass, e).message
    }
    throw new Error(`expected ${expected(errorClass)}, but nothing was thrown`)
}

/** `length` bytes of value `byte`. */
export function filled(length: number, byte: number): Buffer {
    const b = Buffer.alloc(length)
    for (let i = 0; i < length; ++i) b[i] = byte
    return b
}

/** `length` bytes counting up from `from`: from, from + 1, … */
export function counting(length: number, from: number): Buffer {
    const b = Buffer.alloc(length)
    for (let i = 0; i < length; ++i) b[i] = from + i
    return b
}

/** `length` bytes (i·step + 7) mod 256: no two neighbours alike. The CCM vectors of secure.test.ts were computed from it. */
export function pattern(length: number, step: number): Buffer {
    const b = Buffer.alloc(length)
    for (let i = 0; i < length; ++i) b[i] = (i * step + 7) & 255
    return b
}
