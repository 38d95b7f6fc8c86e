/**
 * Fuzz campaigns of what the device authenticates: COSE_Encrypt0 open, the
 * owner's downlink commands, and the SCRAM server's messages.
 *
 * COSE and downlink, wrong acceptance: opening a message whose authenticated
 * parts (protected header, IV or Partial IV, ciphertext: what the tag covers,
 * with the external AAD) are not those of a message sealed here, or
 * returning another plaintext; for commands also a counter not above every
 * one accepted before (a replay), or another command than the one sealed.
 * The kid is not authenticated (RFC 9052 §3.1), so it may change.
 *
 * SCRAM (RFC 5802 §5.1, §7), wrong acceptance of a server-first-message: a
 * nonce that does not extend the client's, a salt under 8 bytes, an
 * iteration count outside 4096..100000, a mandatory extension (m=), or a
 * client-final that does not echo that nonce; of a server-final-message: an
 * error (e=), or a verifier that is not the ServerSignature. Attributes are
 * read as the client reads them, the last one of a name counting. PBKDF2 is
 * skipped with the client's own key cache (RFC 5802 §5.1 allows it), primed
 * for the salt and count of each input, so a campaign fits in seconds.
 */
import { digest, hmac } from "@devicescript/crypto"
import { CborMap, CborTag, CborValue, decodeCbor } from "../../../src/codec/cbor"
import { base64Decode, base64Encode } from "../../../src/codec/base64"
import { ScramClient, ScramError, ScramKeyCache } from "../../../src/identity/scram"
import { CoseError, open, partialIvFromCounter, seal } from "../../../src/secure/cose"
import { AcceptedCommand, Command, DownlinkError, DownlinkVerifier, encodeCommand, parseCommand } from "../../../src/uplink/downlink"
import { deleteKey, SettingKey } from "../../../src/storage/settings"
import { counting, pattern } from "../support"
import { Campaign, Verdict } from "./fuzzer"

/** What COSE_Encrypt0's tag covers, besides the key and the external AAD. */
interface Authenticated {
    protectedHeader: Buffer
    /** The IV (label 5) or Partial IV (label 6), with its label in front. */
    iv: Buffer
    ciphertext: Buffer
}

/** The authenticated parts of a COSE_Encrypt0, read leniently; undefined if it has not that shape. */
function authenticatedParts(message: Buffer): Authenticated {
    let v: CborValue
    try {
        v = decodeCbor(message, { deterministic: false, maxBytes: 4096 })
    } catch (e) {
        return undefined
    }
    if (!(v instanceof CborTag) || !Array.isArray(v.value) || v.value.length !== 3) return undefined
    const protectedHeader = v.value[0]
    const unprotected = v.value[1]
    const ciphertext = v.value[2]
    if (!(protectedHeader instanceof Buffer) || !(unprotected instanceof CborMap) || !(ciphertext instanceof Buffer)) return undefined
    const iv = unprotected.get(5)
    const piv = unprotected.get(6)
    const which = iv instanceof Buffer ? Buffer.from([5]).concat(iv) : piv instanceof Buffer ? Buffer.from([6]).concat(piv) : undefined
    return which ? { protectedHeader, iv: which, ciphertext } : undefined
}

function sameBytes(a: Buffer, b: Buffer): boolean {
    return a.length === b.length && a.toString("hex") === b.toString("hex")
}

/** The seed whose authenticated parts `message` carries, or -1. */
function sealedHere(seeds: Authenticated[], message: Buffer): number {
    const parts = authenticatedParts(message)
    if (!parts) return -1
    for (let i = 0; i < seeds.length; ++i) {
        const s = seeds[i]
        if (sameBytes(s.protectedHeader, parts.protectedHeader) && sameBytes(s.iv, parts.iv) && sameBytes(s.ciphertext, parts.ciphertext))
            return i
    }
    return -1
}

const KEY = pattern(32, 11)
const CONTEXT_IV = counting(13, 0x30)
const DEVICE_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
const KID = Buffer.from(DEVICE_ID, "hex")

/** COSE_Encrypt0 open (src/secure/cose.ts) under one key, AAD and Context IV. */
export async function coseCampaign(): Promise<Campaign> {
    const aad = Buffer.from(`things/${DEVICE_ID}/up/readings`)
    const plaintexts = [Buffer.alloc(0), Buffer.from("hello"), pattern(40, 3)]
    const seeds: Buffer[] = []
    for (let i = 0; i < plaintexts.length; ++i)
        seeds.push(
            await seal(plaintexts[i], {
                key: KEY,
                kid: KID,
                externalAad: aad,
                partialIv: partialIvFromCounter(7 + 300 * i),
                contextIv: CONTEXT_IV,
            })
        )
    seeds.push(await seal(plaintexts[1], { key: KEY, kid: KID, externalAad: aad, iv: counting(13, 0x50) }))
    const sealed = seeds.map(authenticatedParts)
    const sealedPlaintext = [...plaintexts, plaintexts[1]]
    return {
        name: "cose",
        seeds,
        maxBytes: 160,
        check: async input => {
            let opened
            try {
                opened = await open(input, { key: KEY, externalAad: aad, contextIv: CONTEXT_IV, maxBytes: 512 })
            } catch (e: any) {
                if (e instanceof CoseError) return "refused"
                throw e
            }
            const i = sealedHere(sealed, input)
            if (i < 0) return { invalid: "opened a message whose authenticated parts were never sealed" }
            if (!sameBytes(opened.plaintext, sealedPlaintext[i])) return { invalid: "opened to another plaintext" }
            return "accepted"
        },
    }
}

/** The commands sealed as seeds, in counter order. */
const COMMANDS: Command[] = [
    { cmd: "state" },
    { cmd: "interval", sensor: "shtc3", ms: 7000 },
    { cmd: "events" },
    { cmd: "update-check" },
    { cmd: "interval", sensor: "bme680", ms: 30000 },
    { cmd: "update", digest: counting(32, 0x40), sequence: 12 },
]

function sameCommand(a: Command, b: Command): boolean {
    if (a.cmd !== b.cmd) return false
    if (a.cmd === "interval" && b.cmd === "interval") return a.sensor === b.sensor && a.ms === b.ms
    if (a.cmd === "update" && b.cmd === "update") return a.sequence === b.sequence && a.digest.toString("hex") === b.digest.toString("hex")
    return true
}

/** Downlink commands as the uplink receives them (src/uplink/downlink.ts): verify, replay-check, parse. */
export async function downlinkCampaign(): Promise<Campaign> {
    const topic = `things/${DEVICE_ID}/down/cmd`
    const keys = { key: KEY, contextIv: CONTEXT_IV, kid: KID }
    const seeds: Buffer[] = []
    for (let i = 0; i < COMMANDS.length; ++i)
        seeds.push(
            await seal(encodeCommand(COMMANDS[i]), {
                key: KEY,
                kid: KID,
                externalAad: Buffer.from(topic),
                partialIv: partialIvFromCounter(i + 1),
                contextIv: CONTEXT_IV,
            })
        )
    const sealed = seeds.map(authenticatedParts)
    // a device that has accepted no command yet
    await deleteKey(SettingKey.DownlinkCounter)
    const verifier = await DownlinkVerifier.open(keys, DEVICE_ID)
    let highest = 0
    return {
        name: "downlink",
        seeds,
        maxBytes: 160,
        check: async input => {
            let accepted: AcceptedCommand
            try {
                accepted = await verifier.accept(topic, input)
            } catch (e: any) {
                if (e instanceof DownlinkError) return "refused"
                throw e
            }
            const i = sealedHere(sealed, input)
            if (i < 0) return { invalid: "accepted a command the owner never sealed" }
            if (i + 1 <= highest) return { invalid: `accepted counter ${i + 1} after ${highest}: a replay` }
            if (accepted.counter !== i + 1) return { invalid: `accepted counter ${accepted.counter} for the command sealed with ${i + 1}` }
            highest = i + 1
            if (!sameCommand(parseCommand(accepted.plaintext), COMMANDS[i]))
                return { invalid: "accepted another command than the one sealed" }
            return "accepted"
        },
    }
}

/** The plaintext of a command (a CBOR map with text keys), parsed after the message verified. */
export const commandCampaign: Campaign = {
    name: "command",
    seeds: COMMANDS.map(encodeCommand),
    maxBytes: 96,
    check: async input => {
        let command: Command
        try {
            command = parseCommand(input)
        } catch (e: any) {
            if (e instanceof DownlinkError) return "refused"
            throw e
        }
        const name: string = command.cmd
        if (command.cmd === "interval") {
            if (typeof command.sensor !== "string" || command.sensor.length > 32) return { invalid: "sensor is not short text" }
            if (typeof command.ms !== "number" || command.ms !== Math.floor(command.ms)) return { invalid: "ms is not whole" }
        } else if (command.cmd === "update") {
            // a sequence the manifest does not carry is refused when the manifest arrives; one below 1 never names a release
            if (!(command.digest instanceof Buffer) || command.digest.length !== 32) return { invalid: "digest is not 32 bytes" }
            if (typeof command.sequence !== "number" || !(command.sequence >= 1)) return { invalid: `sequence ${command.sequence}` }
        } else if (name !== "state" && name !== "events" && name !== "update-check") return { invalid: `unknown command ${name}` }
        const again = parseCommand(encodeCommand(command))
        if (!sameCommand(again, command)) return { invalid: "does not survive re-encoding" }
        return "accepted"
    },
}

/** RFC 7677 §3's exchange, whose server-first-message the campaign mutates. */
const USER = "user"
const CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
const SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"

/** Attributes as the client reads them: `a=1,b=2`, the last of a name counting; undefined if a part has no `x=`. */
function attributes(message: string): { [name: string]: string } {
    const out: { [name: string]: string } = {}
    for (const part of message.split(",")) {
        if (part.length < 2 || part[1] !== "=") return undefined
        out[part[0]] = part.slice(2)
    }
    return out
}

function isDecimal(s: string): boolean {
    if (s === undefined || s.length === 0 || s.length > 9) return false
    for (let i = 0; i < s.length; ++i) if (s.charCodeAt(i) < 0x30 || s.charCodeAt(i) > 0x39) return false
    return true
}

/** Fixed stand-ins for the salted keys: the campaign checks the protocol, not PBKDF2. */
function fakeKeys() {
    const clientKey = pattern(32, 5)
    return { clientKey, storedKey: digest("sha256", clientKey), serverKey: pattern(32, 9) }
}

/** A cache primed for the salt and count `serverFirst` names, so the client skips PBKDF2 when it reads them alike. */
function primedCache(serverFirst: string): ScramKeyCache {
    const attrs = attributes(serverFirst)
    const salt = attrs && attrs["s"] !== undefined ? base64Decode(attrs["s"]) : undefined
    const iterations = attrs && isDecimal(attrs["i"]) ? parseInt(attrs["i"]) : undefined
    return { salt, iterations, keys: fakeKeys() }
}

/** The client-side reading of server-first-messages (src/identity/scram.ts). */
export const scramFirstCampaign: Campaign = {
    name: "scram-first",
    seeds: [
        Buffer.from(SERVER_FIRST),
        Buffer.from("r=rOprNGfwEbeRWgbNEkqOx,s=AAAAAAAAAAA=,i=100000"),
        Buffer.from("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=ext"),
    ],
    maxBytes: 120,
    check: async input => {
        const serverFirst = input.toString("utf-8")
        const client = new ScramClient({
            username: USER,
            password: Buffer.from("pencil"),
            nonce: CLIENT_NONCE,
            cache: primedCache(serverFirst),
        })
        client.clientFirst()
        let final: string
        try {
            final = await client.clientFinal(serverFirst)
        } catch (e: any) {
            if (e instanceof ScramError) return "refused"
            throw e
        }
        const attrs = attributes(serverFirst)
        if (!attrs) return { invalid: "accepted a message that is not attributes" }
        const nonce = attrs["r"]
        if (nonce === undefined || nonce.length <= CLIENT_NONCE.length || nonce.slice(0, CLIENT_NONCE.length) !== CLIENT_NONCE)
            return { invalid: "accepted a nonce that does not extend the client's" }
        const salt = attrs["s"] === undefined ? undefined : base64Decode(attrs["s"])
        if (salt === undefined || salt.length < 8) return { invalid: "accepted a missing or short salt" }
        const iterations = isDecimal(attrs["i"]) ? parseInt(attrs["i"]) : -1
        if (iterations < 4096 || iterations > 100000) return { invalid: `accepted iteration count ${attrs["i"]}` }
        if (attrs["m"] !== undefined) return { invalid: "accepted a mandatory extension" }
        const echoed = `c=biws,r=${nonce},p=`
        if (final.slice(0, echoed.length) !== echoed || final.length !== echoed.length + 44) return { invalid: `client-final ${final}` }
        return "accepted"
    },
}

/** The client's check of server-final-messages: only the ServerSignature of this exchange passes. */
export async function scramFinalCampaign(): Promise<Campaign> {
    const client = new ScramClient({
        username: USER,
        password: Buffer.from("pencil"),
        nonce: CLIENT_NONCE,
        cache: primedCache(SERVER_FIRST),
    })
    const first = client.clientFirst()
    const final = await client.clientFinal(SERVER_FIRST)
    const withoutProof = final.slice(0, final.indexOf(",p="))
    const authMessage = `${first.slice(3)},${SERVER_FIRST},${withoutProof}`
    const signature = hmac(fakeKeys().serverKey, "sha256", authMessage)
    const verifier = `v=${base64Encode(signature)}`
    return {
        name: "scram-final",
        seeds: [Buffer.from(verifier), Buffer.from(`${verifier},x=extension`)],
        maxBytes: 80,
        check: async input => {
            const serverFinal = input.toString("utf-8")
            try {
                client.verifyServerFinal(serverFinal)
            } catch (e: any) {
                if (e instanceof ScramError) return "refused"
                throw e
            }
            const attrs = attributes(serverFinal)
            if (!attrs || attrs["e"] !== undefined) return { invalid: "accepted a server error or a message that is not attributes" }
            const v = attrs["v"] === undefined ? undefined : base64Decode(attrs["v"])
            if (v === undefined || !sameBytes(v, signature)) return { invalid: "accepted a verifier that is not the ServerSignature" }
            return "accepted"
        },
    }
}
