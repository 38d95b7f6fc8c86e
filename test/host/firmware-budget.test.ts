/**
 * The firmware's budgets (devs/bench/budget.ts), which `npm run bench`
 * prints:
 * - code: every image's function code ends below CODE_BUDGET_BYTES, read from
 *   the image's header; the runtime's verifier refuses an image whose code
 *   reaches CODE_END_LIMIT_BYTES (shown here on a generated program on each
 *   side of it), and the header's figure agrees with the compiler's debug map;
 * - size: every image below IMAGE_BUDGET_BYTES in all;
 * - RAM: at least RAM_HEADROOM_BYTES of the VM heap free at the heaviest
 *   moments (a signed manifest being decoded, SLH-DSA verification, the
 *   largest downlink), with the firmware's state resident.
 * `npm run build`, one of npm test's static checks, holds the code and size
 * budgets too, before any suite runs.
 */
import assert from "node:assert/strict"
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, test } from "node:test"
import {
    CODE_BUDGET_BYTES,
    CODE_END_LIMIT_BYTES,
    firmwareImages,
    IMAGE_BUDGET_BYTES,
    type ImageSize,
    measureImage,
    RAM_HEADROOM_BYTES,
    RAM_MOMENTS,
    ramHeadroom,
} from "../../devs/bench/budget.ts"
import { PROJECT_ROOT } from "../../devs/project.ts"

describe("firmware code and size budgets", () => {
    for (const entry of firmwareImages())
        test(`${entry}: code ends below ${CODE_BUDGET_BYTES} B, ${IMAGE_BUDGET_BYTES} B in all at most`, async () => {
            const image = await measureImage(entry)
            assert.ok(image.verified, `${entry} refused by the runtime's verifier`)
            // the descriptors start where the header ends; the debug map's sizes count each function's descriptor
            const functionBytes = image.folders.reduce((sum, [, bytes]) => sum + bytes, 0)
            assert.equal(image.header + functionBytes, image.codeEnd, "code end by the header and by the debug map")
            assert.ok(image.codeEnd <= CODE_BUDGET_BYTES, `${entry}: code ends at ${image.codeEnd} B`)
            assert.ok(image.bytes <= IMAGE_BUDGET_BYTES, `${entry}: ${image.bytes} B`)
        })

    test(`the runtime refuses an image whose code reaches ${CODE_END_LIMIT_BYTES} B, and takes one just below`, async () => {
        // 393 or 394 functions (about 168 B each, with its call): a code end on each side of the wall
        const below = await measureGenerated(393)
        const above = await measureGenerated(394)
        assert.ok(below.codeEnd < CODE_END_LIMIT_BYTES && above.codeEnd >= CODE_END_LIMIT_BYTES, `${below.codeEnd}, ${above.codeEnd}`)
        assert.ok(CODE_END_LIMIT_BYTES - below.codeEnd < 200, `${below.codeEnd} B is not near the wall`)
        assert.equal(below.verified, true)
        assert.equal(above.verified, false)
    })
})

describe("firmware RAM budget", () => {
    for (const moment of RAM_MOMENTS)
        test(`at least ${RAM_HEADROOM_BYTES} B of the VM heap free at ${moment}`, async () => {
            const free = await ramHeadroom(moment)
            assert.ok(free >= RAM_HEADROOM_BYTES, `${free} B free at ${moment}`)
        })
})

/** Writes a program of `count` functions that all run (an unused one is not compiled), formatted as prettier would; returns its path. */
function generatedProgram(count: number): string {
    const lines: string[] = []
    for (let k = 0; k < count; ++k) {
        lines.push(`function f${k}(a: number): number {`)
        for (let j = 0; j < 12; ++j) lines.push(`    a = a * 3 + ${k * 7 + j}`)
        lines.push("    return a", "}", "")
    }
    lines.push("let x = 0")
    for (let k = 0; k < count; ++k) lines.push(`x = f${k}(x) % 1000`)
    lines.push("console.log(x)", "")
    const path = `test/device/fixtures/generated/code-wall-${count}.ts`
    mkdirSync(join(PROJECT_ROOT, "test/device/fixtures/generated"), { recursive: true })
    writeFileSync(join(PROJECT_ROOT, path), lines.join("\n"))
    return path
}

/** Measures the program `generatedProgram(count)` writes, and removes it. */
async function measureGenerated(count: number): Promise<ImageSize> {
    const path = generatedProgram(count)
    try {
        return await measureImage(path)
    } finally {
        rmSync(join(PROJECT_ROOT, path), { force: true })
    }
}
