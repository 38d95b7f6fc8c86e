/**
 * The updater's fetch, decode and verification of signed copies fits a
 * fragmented VM heap (64 KB, first-fit, non-moving): each ~8 KB copy of a
 * root or key list must take one contiguous ~8 KB block at a time, from the
 * TLS chunk it arrives in to the end of its SLH-DSA verification. Three runs
 * of 2-of-3 key-list verification once the VM's heap holds nothing free but
 * one 12 KB block and 2 KB after the last block (test/device/fixtures/heap-fetch.ts,
 * fed copies signed here with keys made at test time); the first run measures
 * how many 512-byte blocks fill the heap after one verification.
 */
import assert from "node:assert/strict"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { test } from "node:test"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { deviceLines, runInSimulator } from "../../devs/sim/devs-cli.ts"
import { generateSigningKey } from "../../devs/updates/cose-sign1.ts"
import { encodeKeyList, encodeRoot, signDocument } from "../../devs/updates/trust.ts"

const GENERATED = join(PROJECT_ROOT, "test/device/fixtures/generated")
/** The one free block big enough for a copy: room for one ~8 KB block and the small ones around it, not for two. */
const HOLE_BYTES = 12288
/** 512-byte blocks left free after the last one held. */
const SLACK_BLOCKS = 4
const ROUNDS = 3

const hex = (b: Uint8Array) => `hex\`${Buffer.from(b).toString("hex")}\``

function writeFixture(mode: string, probedBlocks: number, root: Buffer, copies: Buffer[]) {
    mkdirSync(GENERATED, { recursive: true })
    writeFileSync(
        join(GENERATED, "heap-fetch.ts"),
        `export const MODE: string = "${mode}"\n` +
            `export const PROBED_BLOCKS = ${probedBlocks}\n` +
            `export const HOLE_BYTES = ${HOLE_BYTES}\n` +
            `export const SLACK_BLOCKS = ${SLACK_BLOCKS}\n` +
            `export const ROUNDS = ${ROUNDS}\n` +
            `export const ROOT = ${hex(root)}\n` +
            `export const COPIES = [${copies.map(hex).join(", ")}]\n`
    )
}

test("a key list's 2-of-3 signed copies verify, one after another, in a heap with a single free 12 KB block", async t => {
    const rootKeys = [generateSigningKey(), generateSigningKey(), generateSigningKey()]
    const root = encodeRoot({ version: 1, threshold: 2, keys: rootKeys.map(k => k.publicKey) })
    const list = encodeKeyList({ version: 1, rootVersion: 1, keys: [generateSigningKey().publicKey] })
    const copies = signDocument(list, rootKeys.slice(0, 2))
    assert.ok(copies.every(c => c.length > 7856))

    writeFixture("probe", 0, root, copies)
    const probe = await runInSimulator("test/device/fixtures/heap-fetch.ts", { timeoutMs: 180_000 })
    assert.ok(probe.output.includes("OutOfMemory"), `the probe did not fill the heap:\n${probe.output}`)
    const counts = deviceLines(probe.output)
        .map(l => /^heap-probe (\d+)$/.exec(l)?.[1])
        .filter(n => n !== undefined)
    const blocks = Number(counts[counts.length - 1])
    t.diagnostic(`${blocks} blocks of 512 B free after one verification; copies of ${copies.map(c => c.length).join(", ")} B`)
    // enough free heap for the two copies' worth the test takes away from it
    assert.ok(blocks * 512 > HOLE_BYTES + SLACK_BLOCKS * 512, `only ${blocks} blocks free after one verification`)

    writeFixture("fragment", blocks, root, copies)
    const run = await runInSimulator("test/device/fixtures/heap-fetch.ts", { timeoutMs: 300_000 })
    const lines = deviceLines(run.output)
    assert.ok(
        lines.some(l => l.startsWith("heap-fetch fragmented ")),
        run.output
    )
    assert.ok(!run.output.includes("OutOfMemory"), `out of memory in a fragmented heap (${blocks} blocks probed):\n${run.output}`)
    assert.deepEqual(
        lines.filter(l => l.startsWith("heap-fetch verified ")),
        Array.from({ length: ROUNDS }, (_, i) => `heap-fetch verified ${i + 1} 1`),
        run.output
    )
    assert.ok(lines.includes("heap-fetch done"), run.output)
})
