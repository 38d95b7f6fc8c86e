/**
 * `npm run build`: compiles every firmware image (the simulator's,
 * src/main.ts, and each board's, src/boards/*.ts) with the DeviceScript
 * compiler, which is also what typechecks src/, and fails when an image
 * crosses a budget (devs/bench/budget.ts): its code end (the runtime refuses
 * an image whose function code reaches 64 KB), or its whole size (an image
 * above ~96 KB cannot be deployed at all); the features of later releases
 * need room under both.
 * A fresh clone first gets the owner's keys (npm run keygen) and its trust anchor.
 *
 *   npm run build
 */
import { runCommand, CommandError } from "../cli/args.ts"
import {
    CODE_BUDGET_BYTES,
    CODE_END_LIMIT_BYTES,
    CODE_GOAL_BYTES,
    firmwareImages,
    IMAGE_BUDGET_BYTES,
    measureImage,
} from "../bench/budget.ts"
import { ensureKeyring } from "../updates/keyring.ts"

const spec = {
    name: "build",
    summary:
        `Compiles every firmware image and fails when its code ends past ${CODE_BUDGET_BYTES} B ` +
        `(the runtime's limit is ${CODE_END_LIMIT_BYTES} B) or it is above ${IMAGE_BUDGET_BYTES} B in all.`,
    options: {},
} as const

await runCommand(spec, async () => {
    ensureKeyring()
    const over: string[] = []
    for (const entry of firmwareImages()) {
        const image = await measureImage(entry)
        console.log(
            `${entry}: code ends at ${image.codeEnd} B ` +
                `(goal ${CODE_GOAL_BYTES} B, budget ${CODE_BUDGET_BYTES} B, runtime limit ${CODE_END_LIMIT_BYTES} B), ` +
                `${image.functions} functions; ${image.bytes} B in all (budget ${IMAGE_BUDGET_BYTES} B)`
        )
        if (image.codeEnd > CODE_BUDGET_BYTES) over.push(`${entry}'s code ends ${image.codeEnd - CODE_BUDGET_BYTES} B past its budget`)
        if (image.bytes > IMAGE_BUDGET_BYTES) over.push(`${entry} is ${image.bytes - IMAGE_BUDGET_BYTES} B over its size budget`)
    }
    if (over.length) throw new CommandError(`over budget: ${over.join("; ")}`)
})
