/**
 * `npm run reset-device`: a factory reset of the simulated device that
 * `npm start` runs (the simulator only; a real device is reset on itself).
 * While npm start runs, its owner service does it: the simulator stops, the
 * owner forgets the device, the flash is wiped and the simulator boots a new
 * device, which npm start claims. Otherwise the flash file is deleted and the
 * next npm start boots a new device. The firmware keys (var/keys) are not touched.
 *
 *   npm run reset-device -- [--service URL] [--token-file FILE]
 */
import { existsSync, rmSync } from "node:fs"
import { CommandError, displayPath, runCommand } from "../cli/args.ts"
import { CA, ownerApi, SERVICE, TOKEN_FILE } from "../cli/options.ts"
import { ApiError } from "../owner/api-client.ts"
import { SIMULATOR_FILES } from "../project.ts"

const spec = {
    name: "reset-device",
    summary: "Factory-resets the simulated device of npm start (simulator only): a new identity and claim code; the firmware keys stay.",
    options: { service: SERVICE, "token-file": TOKEN_FILE, ca: CA },
    notes: ["The console's device page has the same button while npm start runs."],
} as const

await runCommand(spec, async ({ values }) => {
    if (existsSync(values["token-file"]))
        try {
            await ownerApi(values).call("POST", "/api/simulator/factory-reset")
            console.log("the simulated device was reset: npm start boots it as a new device and claims it")
            return
        } catch (e) {
            if (e instanceof ApiError)
                throw new CommandError(
                    e.status === 404
                        ? `the owner service at ${values.service} runs no simulator (only npm start does)`
                        : `the owner service at ${values.service} refused: ${e.message}`
                )
            if ((e as NodeJS.ErrnoException).code !== "ECONNREFUSED") throw e
            // nothing listens: npm start is not running, so the flash file is ours to delete
        }
    const wiped = [SIMULATOR_FILES.flash, SIMULATOR_FILES.formerFlash].filter(f => existsSync(f))
    for (const f of wiped) rmSync(f)
    console.log(
        wiped.length
            ? `wiped ${wiped.map(displayPath).join(", ")}: the next npm start boots a new device (remove the old one in the console)`
            : "the simulated device has no flash yet: the next npm start boots a new device"
    )
})
