/**
 * Key files on the owner's or the service's machine: created once, readable
 * by their owner only, in a folder only the owner can enter.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"

/** Creates `path` (mode 0600, folder 0700) with `contents`; throws if it exists, so a key is never overwritten. */
export function createSecretFile(path: string, contents: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    // "wx": exclusive create, and the mode applies only to a file made here
    writeFileSync(path, contents, { mode: 0o600, flag: "wx" })
}
