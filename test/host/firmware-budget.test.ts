/**
 * The firmware's budgets (devs/bench/budget.ts), which `npm run bench`
 * prints: no image's bytecode above IMAGE_BUDGET_BYTES (the simulator's and
 * each board's), and at least RAM_HEADROOM_BYTES of the VM heap free at the
 * heaviest moments (a signed manifest being decoded, SLH-DSA verification,
 * the largest downlink), with the firmware's state resident.
 */
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { firmwareImages, IMAGE_BUDGET_BYTES, measureImage, RAM_HEADROOM_BYTES, RAM_MOMENTS, ramHeadroom } from "../../devs/bench/budget.ts"

describe("firmware budgets", () => {
    test(`every image is at most ${IMAGE_BUDGET_BYTES} B of bytecode`, async () => {
        const images = firmwareImages()
        assert.ok(images.includes("src/main.ts") && images.length >= 3, `images ${images}`)
        for (const entry of images) {
            const image = await measureImage(entry)
            const where = image.folders.map(([folder, bytes]) => `${folder} ${bytes}`).join(", ")
            assert.ok(image.bytes <= IMAGE_BUDGET_BYTES, `${entry}: ${image.bytes} B (strings ${image.strings} B; ${where})`)
        }
    })
    for (const moment of RAM_MOMENTS)
        test(`at least ${RAM_HEADROOM_BYTES} B of the VM heap free at ${moment}`, async () => {
            const free = await ramHeadroom(moment)
            assert.ok(free >= RAM_HEADROOM_BYTES, `${free} B free at ${moment}`)
        })
})
