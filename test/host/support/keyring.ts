/**
 * An owner's firmware keys made at test time (devs/updates/keyring.ts): a root of 2 of 3 keys and one
 * release key, in a temporary folder of their own, and an update service's chain that holds them.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { SigningKey } from "../../../devs/updates/cose-sign1.ts"
import { Keyring, publishDocuments } from "../../../devs/updates/keyring.ts"
import type { UpdateService } from "../../../devs/updates/service.ts"

/** A fresh keyring and its current release key; `remove` deletes the folder. */
export function testKeyring(): { keyring: Keyring; release: SigningKey; remove: () => void } {
    const dir = mkdtempSync(join(tmpdir(), "keyring-test-"))
    const keyring = new Keyring(dir)
    keyring.create()
    return { keyring, release: keyring.releaseKey(), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Hands the service every document of the keyring it does not hold yet. */
export async function trustAll(service: UpdateService, keyring: Keyring) {
    await publishDocuments(service, keyring.documents())
}
