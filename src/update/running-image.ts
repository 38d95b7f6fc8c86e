/**
 * The SHA-256 of the program the runtime is running, read from the device's
 * own DeviceScriptManager service (register program_sha256; devsmgr.c hashes
 * the deployed image). It equals SHA-256 of the .devs file that was deployed,
 * which is what a manifest's digest names, so a new program can check that it
 * is the image its owner signed and the device approved.
 */
import * as ds from "@devicescript/core"

// the runtime serves DeviceScriptManager, but @devicescript/core does not declare its client
declare module "@devicescript/core" {
    class DeviceScriptManager extends Role {
        /** SHA-256 of the running program image. */
        readonly programSha256: Register<Buffer>
    }
}

let manager: ds.DeviceScriptManager = undefined

/** SHA-256 of the running program (32 bytes). */
export async function runningProgramDigest(): Promise<Buffer> {
    if (!manager) manager = new ds.DeviceScriptManager()
    const digest = await manager.programSha256.read()
    if (!digest || digest.length !== 32) throw new Error("runtime reported no program digest")
    return digest
}
