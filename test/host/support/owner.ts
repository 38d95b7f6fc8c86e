/**
 * An owner account for registry tests: registered with a random password
 * and logged in, as the owner service does it.
 */
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { ownerLogin, registerOwner, type OwnerLogin, type Transport } from "../../../devs/registry/client.ts"

/** Registers `name` and logs in; returns the login (session token, broker login) and the password. */
export async function ownerSession(t: Transport, name: string): Promise<OwnerLogin & { password: Buffer }> {
    const password = randomBytes(32)
    assert.equal((await registerOwner(t, name, password)).status, 201)
    return { ...(await ownerLogin(t, name, password)), password }
}
