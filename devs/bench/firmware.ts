/**
 * Benchmarks of the firmware's size and encoding (figures only, nothing asserted):
 * - the compiled bytecode of src/main.ts (`devs build --stats`);
 * - bytes per reading batch as SenML-CBOR (what the device encodes) and as
 *   SenML-JSON (RFC 8428 §5, the same records), and their ratio.
 */
import { statSync } from "node:fs"
import { join } from "node:path"
import { decode } from "cbor2"
import { senmlJson } from "../owner/senml.ts"
import { PROJECT_ROOT } from "../project.ts"
import { collectHexLines, deviceLines, runDevs, runInSimulator } from "../sim/devs-cli.ts"

/** The firmware's compiled size (`devs build --stats`). */
export async function bytecode() {
    const { code, output } = await runDevs(["build", "src/main.ts", "--stats"], { timeoutMs: 120000 })
    if (code !== 0) throw new Error(output)
    const stat = /bytecode: ([\d.]+)kb/.exec(output)
    const file = statSync(join(PROJECT_ROOT, ".devicescript/bin/bytecode.devs")).size
    console.log(`firmware bytecode (src/main.ts): ${file} B (devs --stats: ${stat?.[1]} kB)`)
}

/** Bytes per reading batch as SenML-CBOR, as the device encodes it, against SenML-JSON of the same records. */
export async function packSizes() {
    const run = await runInSimulator("test/device/fixtures/emit-readings.ts", { timeoutMs: 60000 })
    if (run.code !== 0) throw new Error(run.output)
    const packs = collectHexLines(deviceLines(run.output), "senml-cbor")
    let cborTotal = 0
    let jsonTotal = 0
    let readings = 0
    console.log("batch  records  SenML-CBOR  SenML-JSON  CBOR/JSON")
    for (const [id, bytes] of packs) {
        const pack = decode(new Uint8Array(bytes), { preferMap: true }) as Map<number, unknown>[]
        const json = Buffer.byteLength(senmlJson(pack))
        cborTotal += bytes.length
        jsonTotal += json
        readings += pack.filter(r => r.get(1) !== undefined).length
        console.log(
            `${id.padStart(5)}  ${String(pack.length).padStart(7)}  ${String(bytes.length).padStart(8)} B  ` +
                `${String(json).padStart(8)} B  ${(bytes.length / json).toFixed(3)}`
        )
    }
    console.log(
        `per reading: SenML-CBOR ${(cborTotal / readings).toFixed(1)} B, SenML-JSON ${(jsonTotal / readings).toFixed(1)} B, ` +
            `ratio ${(cborTotal / jsonTotal).toFixed(3)} (${readings} readings)`
    )
}
