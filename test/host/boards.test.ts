/**
 * Board definitions: each one names a known architecture, wires I2C, lists
 * sensors in the grammar the firmware parses, and passes the DeviceScript
 * compiler's own board validation (pins exist and can do I2C).
 */
import assert from "node:assert/strict"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, test } from "node:test"
import { PROJECT_ROOT } from "../../devs/project.ts"
import { inBuildFolder, runDevs } from "../../devs/sim/devs-cli.ts"

const BOARDS_DIR = join(PROJECT_ROOT, "boards")
const boards = readdirSync(BOARDS_DIR)
    .filter(f => f.endsWith(".board.json"))
    .map(f => ({ id: f.replace(".board.json", ""), json: JSON.parse(readFileSync(join(BOARDS_DIR, f), "utf8")) }))

/** The sensor list grammar of src/sensors/config.ts. */
const ENTRY = /^(shtc3|sht30|aht20|bme680)(:0x[0-7][0-9a-f])?(@\d{3,8})?$/

describe("board definitions", () => {
    test("cover the ESP32-DevKitC and the XIAO ESP32-C3", () => {
        const archs = boards.map(b => b.json.archId).sort()
        assert.deepEqual(archs, ["esp32", "esp32c3"])
    })

    test("each wires I2C, lists its sensors and names its registry", () => {
        for (const { id, json } of boards) {
            assert.ok(json.i2c?.pinSDA !== undefined && json.i2c?.pinSCL !== undefined, `${id}: i2c pins`)
            const entries = String(json.sensors).split(",")
            assert.ok(entries.length > 0)
            for (const e of entries) assert.match(e.trim(), ENTRY, `${id}: sensor entry "${e}"`)
            assert.match(String(json.registry), /^[a-z0-9.-]+:\d{1,5}$/, `${id}: registry host:port`)
        }
    })

    test("the DeviceScript compiler accepts them and generates their pin modules", async () => {
        // in a build folder of its own: the static checks build src/main.ts in the project at the same time
        const { code, output } = await inBuildFolder(folder => runDevs(["build", "src/main.ts"], { cwd: folder, timeoutMs: 120000 }))
        assert.equal(code, 0, output)
        const decls = readFileSync(join(PROJECT_ROOT, "node_modules/@devicescript/core/src/devicescript-boards.d.ts"), "utf8")
        for (const { id } of boards) assert.ok(decls.includes(`declare module "@dsboard/${id}"`), id)
    })
})
