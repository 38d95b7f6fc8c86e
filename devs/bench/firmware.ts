/**
 * Benchmarks of the firmware's size, RAM and encoding (figures only, nothing asserted):
 * - each image's code end against its goal, its budget and the runtime's limit, and its
 *   whole size against the 64 KB goal and the budget, per folder (devs/bench/budget.ts);
 * - the VM heap left free at the heaviest moments, against the 16 KB floor;
 * - bytes per reading batch as SenML-CBOR (what the device encodes) and as
 *   plain SenML-JSON (RFC 8428 §5) of the same readings, and their ratio.
 */
import { decodeSenmlCbor } from "../owner/senml.ts"
import { collectHexLines, deviceLines, runInSimulator } from "../sim/devs-cli.ts"
import {
    firmwareImages,
    CODE_BUDGET_BYTES,
    CODE_END_LIMIT_BYTES,
    CODE_GOAL_BYTES,
    IMAGE_BUDGET_BYTES,
    IMAGE_GOAL_BYTES,
    measureImage,
    RAM_HEADROOM_BYTES,
    RAM_MOMENTS,
    ramHeadroom,
    type RamMoment,
} from "./budget.ts"
import { plainSenmlJson } from "./senml-json.ts"

/** Each image's code end and size against their budgets, and where its bytes come from. */
export async function bytecode() {
    for (const entry of firmwareImages()) {
        const image = await measureImage(entry)
        const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`
        console.log(
            `firmware image ${entry}: code ends at ${image.codeEnd} B (${image.functions} functions), ` +
                `${(image.codeEnd / CODE_GOAL_BYTES).toFixed(3)}x the ${kb(CODE_GOAL_BYTES)} goal, ` +
                `${(image.codeEnd / CODE_BUDGET_BYTES).toFixed(3)}x the ${kb(CODE_BUDGET_BYTES)} budget, ` +
                `${CODE_END_LIMIT_BYTES - image.codeEnd} B below the runtime's ${kb(CODE_END_LIMIT_BYTES)} limit`
        )
        console.log(
            `  ${image.bytes} B in all, ${(image.bytes / IMAGE_GOAL_BYTES).toFixed(3)}x the 64 KB goal, ` +
                `${(image.bytes / IMAGE_BUDGET_BYTES).toFixed(3)}x the ${kb(IMAGE_BUDGET_BYTES)} budget`
        )
        const functions = image.folders.reduce((sum, [, bytes]) => sum + bytes, 0)
        console.log(
            `  strings ${kb(image.strings)}, functions with their descriptors ${kb(functions)}: ` +
                image.folders.map(([folder, bytes]) => `${folder} ${kb(bytes)}`).join(", ")
        )
    }
}

/** The VM heap left free at the firmware's heaviest moments. */
export async function ramHeadroomFigures() {
    const what: Record<RamMoment, string> = {
        manifest: "a signed manifest and its decoded parts",
        verify: "SLH-DSA verification",
        downlink: "the largest downlink packet",
    }
    const free: string[] = []
    for (const moment of RAM_MOMENTS) {
        const bytes = await ramHeadroom(moment)
        free.push(`${what[moment]} ${(bytes / 1024).toFixed(1)} KB (${(bytes / RAM_HEADROOM_BYTES).toFixed(2)}x)`)
    }
    console.log(
        `RAM headroom of the 64 KB VM heap, firmware state resident (RAM queue full of 600 B messages, sensors sampling), ` +
            `against the 16 KB floor: ${free.join(", ")}`
    )
}

/** A device's base name in the plain SenML-JSON baseline: as long as a real device id makes it. */
const BASELINE_BASE_NAME = `urn:dev:sentinel:${"0".repeat(32)}:`

/** Bytes per reading batch as SenML-CBOR, as the device encodes it, against plain SenML-JSON of the same readings. */
export async function packSizes() {
    const run = await runInSimulator("test/device/fixtures/emit-readings.ts", { timeoutMs: 60000 })
    if (run.code !== 0) throw new Error(run.output)
    const packs = collectHexLines(deviceLines(run.output), "senml-cbor")
    let cborTotal = 0
    let jsonTotal = 0
    let readings = 0
    console.log("batch  records  SenML-CBOR  plain SenML-JSON  CBOR/JSON")
    for (const [id, bytes] of packs) {
        const pack = decodeSenmlCbor(bytes)
        const json = Buffer.byteLength(plainSenmlJson(pack, BASELINE_BASE_NAME))
        cborTotal += bytes.length
        jsonTotal += json
        readings += pack.filter(r => r.unit !== undefined).length
        console.log(
            `${id.padStart(5)}  ${String(pack.length).padStart(7)}  ${String(bytes.length).padStart(8)} B  ` +
                `${String(json).padStart(14)} B  ${(bytes.length / json).toFixed(3)}`
        )
    }
    console.log(
        `per reading: SenML-CBOR ${(cborTotal / readings).toFixed(1)} B, plain SenML-JSON ${(jsonTotal / readings).toFixed(1)} B, ` +
            `ratio ${(cborTotal / jsonTotal).toFixed(3)} (${readings} readings)`
    )
}
