/**
 * The firmware's RAM budget (devs/bench/budget.ts), which `npm run bench`
 * prints: at least RAM_HEADROOM_BYTES of the VM heap free at the heaviest
 * moments (a signed manifest being decoded, SLH-DSA verification, the largest
 * downlink), with the firmware's state resident. The bytecode budget is held
 * by `npm run build`, one of npm test's static checks.
 */
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import { RAM_HEADROOM_BYTES, RAM_MOMENTS, ramHeadroom } from "../../devs/bench/budget.ts"

describe("firmware RAM budget", () => {
    for (const moment of RAM_MOMENTS)
        test(`at least ${RAM_HEADROOM_BYTES} B of the VM heap free at ${moment}`, async () => {
            const free = await ramHeadroom(moment)
            assert.ok(free >= RAM_HEADROOM_BYTES, `${free} B free at ${moment}`)
        })
})
