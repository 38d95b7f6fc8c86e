/**
 * `npm run build`: compiles every firmware image (the simulator's,
 * src/main.ts, and each board's, src/boards/*.ts) with the DeviceScript
 * compiler, which is also what typechecks src/, and fails when an image's
 * bytecode crosses the budget (devs/bench/budget.ts): an image above ~110 KB
 * cannot be deployed at all, and the updates of later releases need room.
 * A fresh clone first gets the owner's keys (npm run keygen) and its trust anchor.
 *
 *   npm run build
 */
import { runCommand, CommandError } from "../cli/args.ts"
import { CODE_LIMIT_BYTES, firmwareImages, IMAGE_BUDGET_BYTES, measureImage } from "../bench/budget.ts"
import { ensureKeyring } from "../updates/keyring.ts"

const spec = {
    name: "build",
    summary: `Compiles every firmware image and fails when one is above its budget of ${IMAGE_BUDGET_BYTES} B of bytecode.`,
    options: {},
} as const

await runCommand(spec, async () => {
    ensureKeyring()
    const over: string[] = []
    for (const entry of firmwareImages()) {
        const image = await measureImage(entry)
        const room = CODE_LIMIT_BYTES - image.codeEnd
        console.log(`${entry}: ${image.bytes} B of bytecode (budget ${IMAGE_BUDGET_BYTES} B), function code ends ${room} B below 64 KB`)
        if (image.bytes > IMAGE_BUDGET_BYTES) over.push(`${entry} is ${image.bytes - IMAGE_BUDGET_BYTES} B over`)
        // the compiler refuses such an image itself (verification error 1051); kept here so the limit is stated once
        if (room <= 0) over.push(`${entry}'s function code ends ${-room} B past 64 KB`)
    }
    if (over.length) throw new CommandError(`over the bytecode budget: ${over.join("; ")}`)
})
