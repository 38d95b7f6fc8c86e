/**
 * Benchmarks of the firmware's size and encoding (figures only, nothing asserted):
 * - the compiled bytecode of src/main.ts (`devs build --stats`);
 * - bytes per reading batch as SenML-CBOR (what the device encodes) and as
 *   plain SenML-JSON (RFC 8428 §5) of the same readings, and their ratio.
 */
import { statSync } from "node:fs"
import { join } from "node:path"
import { decodeSenmlCbor } from "../owner/senml.ts"
import { PROJECT_ROOT } from "../project.ts"
import { collectHexLines, deviceLines, runDevs, runInSimulator } from "../sim/devs-cli.ts"
import { plainSenmlJson } from "./senml-json.ts"

/** The firmware's compiled size (`devs build --stats`). */
export async function bytecode() {
    const { code, output } = await runDevs(["build", "src/main.ts", "--stats"], { timeoutMs: 120000 })
    if (code !== 0) throw new Error(output)
    const stat = /bytecode: ([\d.]+)kb/.exec(output)
    const file = statSync(join(PROJECT_ROOT, ".devicescript/bin/bytecode.devs")).size
    console.log(`firmware bytecode (src/main.ts): ${file} B (devs --stats: ${stat?.[1]} kB)`)
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
