/**
 * The owner service's account at the registry when a start was stopped in
 * the middle (Ctrl-C during npm start's first run): the store keeps the
 * account before it registers it, so an account the registry never took is
 * registered on the next start, with the same password; one the registry
 * confirmed is only logged in to; and a store whose name someone else holds
 * is still refused.
 */
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, test } from "node:test"
import { freePort } from "../../devs/net/ports.ts"
import { OwnerService } from "../../devs/owner/service.ts"
import { OwnerStore } from "../../devs/owner/store.ts"
import { httpsTransport } from "../../devs/registry/client.ts"
import { startLocalStack, type LocalStack } from "../../devs/stack/local.ts"

const dir = mkdtempSync(join(tmpdir(), "owner-account-test-"))
const log: string[] = []
let stack: LocalStack

before(async () => {
    stack = await startLocalStack({
        dir,
        brokerPort: await freePort(),
        registryPort: await freePort(),
        updatesPort: await freePort(),
        onLog: (_s, line) => log.push(line),
    })
})
after(async () => {
    await stack?.stop()
    rmSync(dir, { recursive: true, force: true })
})

/** A service on `store` signed in to the registry (no broker). */
async function signIn(store: OwnerStore) {
    const url = `https://localhost:${stack.registryPort}`
    const ca = readFileSync(stack.pki.caCert)
    const service = new OwnerService({ store, registry: httpsTransport(url, ca), registryUrl: url, brokerCa: ca, log: l => log.push(l) })
    try {
        await service.signIn()
    } finally {
        await service.stop()
    }
}

const registrations = () => log.filter(l => /owner-registered/.test(l)).length

test("an account kept but never registered is registered on the next start; a confirmed one only logs in", async () => {
    const store = new OwnerStore(join(dir, "interrupted", "owner.db"))
    // what a stop between keeping the account and the registry's answer leaves
    store.setAccount({ name: "interrupted", registry: "https://localhost", password: randomBytes(32) }, Date.now())
    await signIn(store)
    assert.equal(registrations(), 1)
    assert.ok(log.some(l => /owner account interrupted registered/.test(l)))
    await signIn(store)
    assert.equal(registrations(), 1, "registered again")
    assert.ok(log.filter(l => /owner-login .*identity=interrupted/.test(l)).length >= 2)

    // the same name with another password: someone else's
    const other = new OwnerStore(join(dir, "other", "owner.db"))
    other.setAccount({ name: "interrupted", registry: "https://localhost", password: randomBytes(32) }, Date.now())
    await assert.rejects(signIn(other), /the owner name interrupted is taken/)
    assert.equal(other.account(), undefined)
    store.close()
    other.close()
})
