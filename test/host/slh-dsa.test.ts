/**
 * The device's SLH-DSA-SHA2-128s verifier (src/update/slh-dsa.ts) against
 * @noble/post-quantum: keys and signatures are made here at test time, written
 * as a device module with the cases below, and verified in the simulator by
 * test/device/fixtures/slh-verify.ts. Each case is a valid signature or one
 * edit of one (a flipped bit, a new length, another key). For every case the
 * device's verdict must equal noble's and the expected one, and the device must
 * report a fingerprint of exactly the inputs noble checked.
 */
import assert from "node:assert/strict"
import { createHash, randomBytes } from "node:crypto"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { before, describe, test } from "node:test"
import { slh_dsa_sha2_128s as slh } from "@noble/post-quantum/slh-dsa.js"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { deviceLines, runInSimulator } from "../../devs/sim/devs-cli.ts"

const GENERATED = join(PROJECT_ROOT, "test/device/fixtures/generated")

/** Offsets in a signature (FIPS 205 §9.2): R, then k = 14 FORS trees of (1 + a) n-byte values, then d = 7 XMSS signatures. */
const N = 16
const FORS_TREE = (1 + 12) * N
const SIG_HT = N + 14 * FORS_TREE
const XMSS = (35 + 9) * N

/** An edit of one input: flip bit `bit` of byte `at`, or resize to `length` bytes (zero bytes appended). */
type Edit =
    | { field: "pk" | "msg" | "sig" | "ctx"; edit: "flip"; at: number; bit: number }
    | { field: "pk" | "msg" | "sig" | "ctx"; edit: "resize"; length: number }

/** One verification: names of inputs in BYTES, an optional edit, and the verdict both verifiers must give. */
interface Case {
    name: string
    pk: string
    msg: string
    sig: string
    /** Absent: slhDsaVerify is called without a context. */
    ctx?: string
    change?: Edit
    valid: boolean
}

const flip = (field: Edit["field"], at: number, bit = 0): Edit => ({ field, edit: "flip", at, bit })
const resize = (field: Edit["field"], length: number): Edit => ({ field, edit: "resize", length })
const base = { pk: "pkA", msg: "short", sig: "sigShort" }

const CASES: Case[] = [
    { name: "valid-empty-message", pk: "pkA", msg: "empty", sig: "sigEmpty", valid: true },
    { name: "valid-short-message", ...base, valid: true },
    { name: "valid-300-byte-message", pk: "pkA", msg: "long", sig: "sigLong", valid: true },
    { name: "valid-with-context", pk: "pkA", msg: "short", sig: "sigCtx", ctx: "ctx", valid: true },
    { name: "flipped-R", ...base, change: flip("sig", 5, 3), valid: false },
    { name: "flipped-FORS-secret", ...base, change: flip("sig", N + 5 * FORS_TREE + 3, 1), valid: false },
    { name: "flipped-FORS-auth-path", ...base, change: flip("sig", N + 13 * FORS_TREE + N + 11 * N + 8, 6), valid: false },
    { name: "flipped-WOTS-first-layer", ...base, change: flip("sig", SIG_HT + 10 * N + 5, 2), valid: false },
    { name: "flipped-WOTS-last-layer", ...base, change: flip("sig", SIG_HT + 6 * XMSS + 34 * N, 0), valid: false },
    { name: "flipped-XMSS-auth-path", ...base, change: flip("sig", SIG_HT + 3 * XMSS + 35 * N + 4 * N + 7, 4), valid: false },
    { name: "flipped-last-byte", ...base, change: flip("sig", slh.lengths.signature! - 1, 7), valid: false },
    { name: "flipped-message", ...base, change: flip("msg", 0, 0), valid: false },
    { name: "message-extra-byte", ...base, change: resize("msg", 24), valid: false },
    { name: "flipped-PK.seed", ...base, change: flip("pk", 3, 5), valid: false },
    { name: "flipped-PK.root", ...base, change: flip("pk", 31, 0), valid: false },
    { name: "signature-1-short", ...base, change: resize("sig", 7855), valid: false },
    { name: "signature-half", ...base, change: resize("sig", 3928), valid: false },
    { name: "signature-1-long", ...base, change: resize("sig", 7857), valid: false },
    { name: "signature-empty", ...base, change: resize("sig", 0), valid: false },
    { name: "public-key-31-bytes", ...base, change: resize("pk", 31), valid: false },
    { name: "public-key-33-bytes", ...base, change: resize("pk", 33), valid: false },
    { name: "other-key-pair", ...base, pk: "pkB", valid: false },
    { name: "context-missing", pk: "pkA", msg: "short", sig: "sigCtx", valid: false },
    { name: "context-flipped", pk: "pkA", msg: "short", sig: "sigCtx", ctx: "ctx", change: flip("ctx", 2, 0), valid: false },
    { name: "context-unsigned", ...base, ctx: "ctx", valid: false },
    { name: "context-256-bytes", ...base, ctx: "ctx", change: resize("ctx", 256), valid: false },
]

function applyEdit(c: Case, field: Edit["field"], b: Buffer): Buffer {
    const e = c.change
    if (!e || e.field !== field) return b
    if (e.edit === "flip") {
        const out = Buffer.from(b)
        out[e.at] ^= 1 << e.bit
        return out
    }
    return Buffer.concat([b, Buffer.alloc(Math.max(0, e.length - b.length))]).subarray(0, e.length)
}

/** What the fixture prints for the inputs it verified (see fingerprint() there). */
function fingerprint(parts: Buffer[]): string {
    const h = createHash("sha256")
    for (const p of parts) {
        const len = Buffer.alloc(4)
        len.writeUInt32BE(p.length)
        h.update(len).update(p)
    }
    return h.digest("hex")
}

/** Noble's verdict; it throws for some malformed inputs (wrong key length, context over 255 bytes): a rejection. */
function nobleVerify(sig: Buffer, msg: Buffer, pk: Buffer, ctx?: Buffer): boolean {
    try {
        return slh.verify(sig, msg, pk, ctx ? { context: ctx } : {})
    } catch {
        return false
    }
}

interface Result {
    noble: boolean
    inputs: string
    device?: { verdict: boolean; inputs: string }
    /** The device's verdict with the signature at an offset in a larger buffer (cases that edit nothing or the signature). */
    deviceAt?: boolean
}
const results = new Map<string, Result>()

before(async () => {
    const a = slh.keygen(randomBytes(48))
    const b = slh.keygen(randomBytes(48))
    const short = Buffer.from("sentinel-node manifest")
    const long = randomBytes(300)
    const ctx = Buffer.from("sentinel-node/ota")
    const bytes: Record<string, Buffer> = {
        pkA: Buffer.from(a.publicKey),
        pkB: Buffer.from(b.publicKey),
        empty: Buffer.alloc(0),
        short,
        long,
        ctx,
        sigEmpty: Buffer.from(slh.sign(new Uint8Array(0), a.secretKey)),
        sigShort: Buffer.from(slh.sign(short, a.secretKey)),
        sigLong: Buffer.from(slh.sign(long, a.secretKey)),
        sigCtx: Buffer.from(slh.sign(short, a.secretKey, { context: ctx })),
    }
    for (const c of CASES) {
        const pk = applyEdit(c, "pk", bytes[c.pk])
        const msg = applyEdit(c, "msg", bytes[c.msg])
        const sig = applyEdit(c, "sig", bytes[c.sig])
        const ctxBytes = c.ctx ? applyEdit(c, "ctx", bytes[c.ctx]) : undefined
        results.set(c.name, {
            noble: nobleVerify(sig, msg, pk, ctxBytes),
            inputs: fingerprint(ctxBytes ? [pk, msg, sig, ctxBytes] : [pk, msg, sig]),
        })
    }

    mkdirSync(GENERATED, { recursive: true })
    const hexes = Object.entries(bytes).map(([k, v]) => `    ${k}: "${v.toString("hex")}",`)
    writeFileSync(
        join(GENERATED, "slh-vectors.ts"),
        [
            "// Generated by test/host/slh-dsa.test.ts with @noble/post-quantum; do not edit or commit.",
            "/** One verification: see the Case interface in test/host/slh-dsa.test.ts. */",
            "export interface SlhCase {",
            "    name: string",
            "    pk: string",
            "    msg: string",
            "    sig: string",
            "    ctx?: string",
            "    change?: { field: string; edit: string; at?: number; bit?: number; length?: number }",
            "}",
            "/** Inputs, as hex. */",
            "export const BYTES: { [name: string]: string } = {",
            ...hexes,
            "}",
            "/** The cases, in order. */",
            `export const CASES: SlhCase[] = ${JSON.stringify(
                CASES.map(({ valid: _valid, ...c }) => c),
                null,
                4
            )}`,
            "",
        ].join("\n")
    )

    const run = await runInSimulator("test/device/fixtures/slh-verify.ts", { timeoutMs: 180000 })
    assert.equal(run.code, 0, run.output)
    for (const line of deviceLines(run.output)) {
        const at = /^slh-case-at (\S+) (accept|reject)$/.exec(line.trim())
        if (at) {
            const r = results.get(at[1])
            assert.ok(r && r.deviceAt === undefined, `unexpected or repeated case ${at[1]} at an offset`)
            r.deviceAt = at[2] === "accept"
        }
        const m = /^slh-case (\S+) (accept|reject) ([0-9a-f]{64})$/.exec(line.trim())
        if (!m) continue
        const r = results.get(m[1])
        assert.ok(r && !r.device, `unexpected or repeated case ${m[1]}`)
        r.device = { verdict: m[2] === "accept", inputs: m[3] }
    }
})

describe("SLH-DSA-SHA2-128s on the device, against @noble/post-quantum", () => {
    for (const c of CASES) {
        test(`${c.name}: ${c.valid ? "accepted" : "rejected"}`, () => {
            const r = results.get(c.name)!
            assert.ok(r.device, "the device did not report this case")
            assert.equal(r.device.inputs, r.inputs, "the device verified other inputs than noble")
            assert.equal(r.noble, c.valid, "noble's verdict")
            assert.equal(r.device.verdict, c.valid, "the device's verdict")
            // the same signature read where it lies in a larger buffer, as a received document holds it
            if (!c.change || c.change.field === "sig")
                assert.equal(r.deviceAt, c.valid, "the device's verdict on the signature at an offset")
        })
    }
})
