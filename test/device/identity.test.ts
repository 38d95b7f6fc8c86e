import * as ds from "@devicescript/core"
import { describe, expect, test } from "@devicescript/test"
import { base32Decode, canonicalClaimCode } from "../../src/codec/base32"
import {
    decodeIdentity,
    factoryResetRequested,
    IdentityError,
    loadOrCreateIdentity,
    readOwnerEnvelope,
    wipeIdentity,
} from "../../src/identity/credentials"
import { ENVELOPE_AAD } from "../../src/identity/owner-envelope"
import { parseSession, RegistryError } from "../../src/identity/registry-client"
import { pbkdf2Sha256 } from "../../src/identity/scram"
import { CoseError, open } from "../../src/secure/cose"
import { claimProof, envelopeKey, ownerRoot } from "../../src/secure/keys"
import { readBytes, SettingKey, writeBytes } from "../../src/storage/settings"
import { asyncRefusal, refusal } from "./support"

describe("identity", () => {
    test("first boot makes credentials and shows the claim code once", async () => {
        await wipeIdentity()
        const shown: string[] = []
        const first = await loadOrCreateIdentity({ showClaimCode: c => shown.push(c) })
        expect(first.created).toBe(true)
        expect(shown.length).toBe(1)
        // 160 bits: 32 base32 characters in 8 groups of 4
        expect(shown[0].length).toBe(39)
        expect(base32Decode(shown[0]).length).toBe(20)
        expect(first.identity.deviceId.length).toBe(32)
        expect(first.identity.secret.length).toBe(32)
        // the stored verifier is PBKDF2 of the shown code; the code itself is not stored
        const again = await pbkdf2Sha256(Buffer.from(claimProof(shown[0])), first.identity.claim.salt, first.identity.claim.iterations)
        expect(again.toString("hex")).toBe(first.identity.claim.hash.toString("hex"))
        const stored = await readBytes(SettingKey.Identity)
        expect(stored.toString("hex").indexOf(Buffer.from(canonicalClaimCode(shown[0])).toString("hex"))).toBe(-1)

        const second = await loadOrCreateIdentity({ showClaimCode: c => shown.push(c) })
        expect(second.created).toBe(false)
        expect(shown.length).toBe(1)
        expect(second.identity.deviceId).toBe(first.identity.deviceId)
        expect(second.identity.secret.toString("hex")).toBe(first.identity.secret.toString("hex"))
    })

    test("the owner envelope opens only with the claim code, and holds the owner root", async () => {
        await wipeIdentity()
        let code = ""
        const { identity } = await loadOrCreateIdentity({ showClaimCode: c => (code = c) })
        const envelope = await readOwnerEnvelope()
        const opened = await open(envelope, { key: envelopeKey(code, identity.deviceId), externalAad: Buffer.from(ENVELOPE_AAD) })
        expect(opened.plaintext.toString("hex")).toBe(ownerRoot(identity.secret, identity.deviceId).toString("hex"))
        expect(opened.kid.toString("hex")).toBe(identity.deviceId)
        // the root is not the secret, and the proof the registry sees is not the code
        expect(opened.plaintext.toString("hex") === identity.secret.toString("hex")).toBe(false)
        expect(claimProof(code).indexOf(canonicalClaimCode(code))).toBe(-1)
        const wrongKey = envelopeKey("AAAA-BBBB", identity.deviceId)
        const externalAad = Buffer.from(ENVELOPE_AAD)
        const refused = await asyncRefusal(CoseError, async () => await open(envelope, { key: wrongKey, externalAad }))
        expect(refused).toBe("authentication failed")
    })

    test("a reset makes entirely new credentials", async () => {
        const before = (await loadOrCreateIdentity({ showClaimCode: () => {} })).identity
        await writeBytes(SettingKey.ResetRequest, hex`01`)
        expect(await factoryResetRequested()).toBe(true)
        await wipeIdentity()
        expect(await factoryResetRequested()).toBe(false)
        let code = ""
        const after = await loadOrCreateIdentity({ showClaimCode: c => (code = c) })
        expect(after.created).toBe(true)
        expect(code.length).toBe(39)
        expect(after.identity.deviceId === before.deviceId).toBe(false)
        expect(after.identity.secret.toString("hex") === before.secret.toString("hex")).toBe(false)
        expect(after.identity.claim.salt.toString("hex") === before.claim.salt.toString("hex")).toBe(false)
    })

    test("a corrupt stored identity is refused, and left in place", async () => {
        const bad = hex`83 01 02 03`
        await writeBytes(SettingKey.Identity, bad)
        let shown = 0
        const error = await asyncRefusal(IdentityError, async () => await loadOrCreateIdentity({ showClaimCode: () => shown++ }))
        expect(error).toBe("stored identity has an unknown layout")
        expect(shown).toBe(0)
        expect((await readBytes(SettingKey.Identity)).toString("hex")).toBe(bad.toString("hex"))
        // a number, a lone break, and two records cut short
        const identityRefusal = (record: string) => refusal(IdentityError, () => decodeIdentity(Buffer.from(record, "hex")))
        const refusals: string[] = []
        for (const h of ["00", "ff", "8601", "86015000"]) {
            refusals.push(identityRefusal(h))
            await ds.sleep(0)
        }
        expect(refusals.length).toBe(4)
        expect(refusals[0]).toBe("stored identity has an unknown layout")
        for (let i = 1; i < refusals.length; ++i) expect(refusals[i].indexOf("stored identity is not valid CBOR") === 0).toBe(true)
        await wipeIdentity()
    })

    test("a broker grant names every node of a cluster, the first once; a malformed node list is refused", async () => {
        // concatenated, not a template: the compiler drops a "}" that follows a substitution (`${x}}}` gives two)
        const grant = (brokers: string) =>
            Buffer.from(
                '{"claimed":true,"broker":{"host":"a","port":1,"username":"u","password":"p","expiresAt":5,"ttlMs":9' + brokers + "}}"
            )
        const one = parseSession(grant("")).broker
        expect(one.nodes.length).toBe(1)
        expect(one.nodes[0].host).toBe("a")
        const three = parseSession(grant(`,"brokers":[{"host":"a","port":1},{"host":"b","port":2},{"host":"c","port":3}]`)).broker
        expect(three.nodes.length).toBe(3)
        expect(`${three.nodes[1].host}:${three.nodes[1].port} ${three.nodes[2].host}:${three.nodes[2].port}`).toBe("b:2 c:3")
        const malformed = (brokers: string) => refusal(RegistryError, () => parseSession(grant(`,"brokers":${brokers}`)))
        expect(malformed(`"b:2"`)).toBe("malformed broker nodes")
        expect(malformed(`[{"host":"b"}]`)).toBe("malformed broker node")
        expect(malformed(`[null]`)).toBe("malformed broker node")
        const many: string[] = []
        for (let i = 0; i < 9; ++i) many.push('{"host":"n' + i + '","port":' + (i + 1) + "}")
        expect(malformed(`[${many.join(",")}]`)).toBe("malformed broker nodes")
    })
})
