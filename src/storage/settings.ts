/**
 * Raw byte values in the device's settings store (flash), with the limits the
 * runtime does not enforce itself checked before every write.
 *
 * Measured on this runtime: keys longer than 13 characters are refused, and a
 * value whose stored form passes about 220 bytes aborts the whole VM with no
 * catchable error. Values here are capped well below that.
 *
 * The settings service hides nothing: any Jacdac client on the device's bus
 * can read any key it knows, `$`-prefixed ones included (jacdac-c
 * services/settings.c answers GET for every key). Secrets at rest rely on the
 * ESP32's flash encryption; see the README.
 */
import * as ds from "@devicescript/core"
import { settings } from "@devicescript/settings"

/** Longest key the settings service accepts. */
export const MAX_KEY_LENGTH = 13
/** Largest value written; keeps the stored form far from the ~220-byte abort. */
export const MAX_VALUE_BYTES = 160

/** Raised before a write that the store could not take safely. */
export class StorageError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "StorageError"
    }
}

function checkKey(key: string) {
    if (!key || key.length > MAX_KEY_LENGTH)
        throw new StorageError(`setting key "${key}" must be 1..${MAX_KEY_LENGTH} characters`)
}

/** Reads a value; `undefined` when the key is absent or empty. */
export async function readBytes(key: string): Promise<Buffer> {
    checkKey(key)
    const pkt = await ds.actionReport(
        settings,
        "get",
        async () => await settings.get(key),
        p => p.decode()[0] === key
    )
    const value = pkt.decode()[1] as Buffer
    return value && value.length ? value : undefined
}

/** Writes a value after checking key and size; throws `StorageError` instead of writing too much. */
export async function writeBytes(key: string, value: Buffer): Promise<void> {
    checkKey(key)
    if (!(value instanceof Buffer) || value.length === 0)
        throw new StorageError(`setting "${key}": value must be a non-empty buffer`)
    if (value.length > MAX_VALUE_BYTES)
        throw new StorageError(`setting "${key}": ${value.length} bytes exceeds ${MAX_VALUE_BYTES}`)
    await settings.set(key, value)
}

/** Deletes a key (absent keys are fine). */
export async function deleteKey(key: string): Promise<void> {
    checkKey(key)
    await settings.delete(key)
}
