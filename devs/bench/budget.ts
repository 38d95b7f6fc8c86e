/**
 * The firmware's budgets, measured one way for `npm run bench` (which prints
 * them) and for test/host/firmware-budget.test.ts (which fails when one is
 * crossed):
 *
 * - bytecode: every image, the simulator's (src/main.ts) and each board's
 *   (src/boards/*.ts), as `devs build` writes it, with its functions
 *   attributed to the folders that hold them (the compiler's debug map);
 *   its code end (below) under CODE_BUDGET_BYTES (the goal is
 *   CODE_GOAL_BYTES), its whole size under IMAGE_BUDGET_BYTES;
 * - RAM: the VM heap (64 KB) left free at the firmware's heaviest moments,
 *   found by test/device/fixtures/ram-probe.ts allocating 256-byte blocks
 *   until an OutOfMemory panic ends the run.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { PROJECT_ROOT } from "../project.ts"
import { deviceLines, inBuildFolder, runDevs, runInSimulator } from "../sim/devs-cli.ts"
import { writeBenchManifest } from "./update.ts"

/** The goal of issue 11 for every image. */
export const IMAGE_GOAL_BYTES = 64 * 1024
/**
 * What no image may cross: the goal is not reached yet (see the README), and
 * an image above ~96 KB cannot be deployed at all; this keeps the updates of
 * the next issues well below that.
 */
export const IMAGE_BUDGET_BYTES = 88 * 1024
/**
 * The wall: the runtime's image verifier refuses an image whose function code
 * ends at or beyond byte 65,536 of the image (runtime/devicescript/verify.c in
 * microsoft/devicescript: `CHECK(1051, prevProc < 0x10000)`, code positions are
 * 16-bit), and `devs build` fails with `verification error: -1051`. The code
 * end counts the header, the function descriptors and all function bytecode;
 * the strings after it do not count.
 */
export const CODE_END_LIMIT_BYTES = 0x10000
/** Where every image's code should end: 8 KB below the wall, as `npm run bench` shows. */
export const CODE_GOAL_BYTES = 56 * 1024
/**
 * What no image's code end may cross: 5.5 KB below the wall, so the build
 * fails with room left to make space, and 4 KB above the goal, the room the
 * firmware's next features (release-key trust and update reports, broker
 * fail-over) take.
 */
export const CODE_BUDGET_BYTES = 60 * 1024
/** Free VM heap every heavy moment must leave. */
export const RAM_HEADROOM_BYTES = 16 * 1024

/** The entry points of the images: the simulator's, then the boards'. */
export function firmwareImages(): string[] {
    const boards = readdirSync(join(PROJECT_ROOT, "src/boards"))
        .filter(f => f.endsWith(".ts"))
        .sort()
        .map(f => `src/boards/${f}`)
    return ["src/main.ts", ...boards]
}

/** An image's size, and where its bytes come from. */
export interface ImageSize {
    entry: string
    bytes: number
    /** Where the function code ends in the image (see CODE_END_LIMIT_BYTES). */
    codeEnd: number
    /** Functions in the image, each with a 16-byte descriptor before the code. */
    functions: number
    /** Where the function descriptors start: the header's size. */
    header: number
    /** Whether the runtime's verifier took the image (`devs build` runs it). */
    verified: boolean
    /** The string table (log and error text, names of properties and functions). */
    strings: number
    /** Function bytecode with its descriptor per folder of src/ (or package of node_modules), largest first. */
    folders: [string, number][]
}

/** Where a source file's functions are counted: `src/<folder>` (a file at src/'s root on its own), or its package. */
function folderOf(path: string): string {
    const parts = path.split("/")
    if (parts[0] === "src") return parts.length > 2 ? `src/${parts[1]}` : path
    const pkg = parts.indexOf("@devicescript")
    return pkg >= 0 ? parts.slice(pkg, pkg + 2).join("/") : parts[0]
}

/** The compiler's own functions, which it places at the entry: every module's top-level code, and every class's prototype. */
const MODULE_SETUP = new Set(["main", "prototype"])

/**
 * Builds `entry` (in a build folder of its own) and measures the image `devs build` wrote. An image
 * the verifier refused for its code end alone is measured all the same (the compiler writes it first),
 * so the budget can say by how much it is over; any other failure throws.
 */
export function measureImage(entry: string): Promise<ImageSize> {
    return inBuildFolder(async folder => {
        const { code, output } = await runDevs(["build", entry], { cwd: folder, timeoutMs: 120_000 })
        const verified = code === 0
        const refused = !verified && /verification error: -1051\b/.test(output)
        const image = verified || refused ? imageSize(entry, join(folder, ".devicescript/bin")) : undefined
        if (image === undefined || (refused && image.codeEnd < CODE_END_LIMIT_BYTES))
            throw new Error(`devs build ${entry} failed:\n${output}`)
        return { ...image, verified }
    })
}

/** Where an image's function code ends, from its header (devs_img_header_t in runtime/devicescript/devs_format.h). */
export function imageCodeEnd(image: Buffer): { codeEnd: number; functions: number; header: number } {
    // a fixed 32-byte part, then sections of {u32 start, u32 length}: 0 the function descriptors, 1 their code
    const section = (i: number) => ({ start: image.readUInt32LE(32 + 8 * i), length: image.readUInt32LE(36 + 8 * i) })
    const descriptors = section(0)
    const code = section(1)
    return { codeEnd: code.start + code.length, functions: descriptors.length / FUNCTION_DESCRIPTOR_BYTES, header: descriptors.start }
}

/** devs_function_desc_t: start, length, slots, arguments, flags, name, try frames, reserved. */
const FUNCTION_DESCRIPTOR_BYTES = 16

/** The size of the image `devs build` wrote to `bin`, and where its bytes come from. */
function imageSize(entry: string, bin: string): Omit<ImageSize, "verified"> {
    const image = readFileSync(join(bin, "bytecode.devs"))
    const dbg = JSON.parse(readFileSync(join(bin, "bytecode-dbg.json"), "utf8")) as {
        sizes: { strings: number }
        sources: { path: string; index: number; length: number }[]
        functions: { name: string; size: number; location: [number, number] }[]
    }
    // function locations are offsets into the sources laid end to end, in index order
    let at = 0
    const spans = [...dbg.sources]
        .sort((a, b) => a.index - b.index)
        .map(s => {
            const span = { folder: folderOf(s.path), start: at, end: at + s.length }
            at += s.length
            return span
        })
    const folders = new Map<string, number>()
    for (const f of dbg.functions) {
        const folder = MODULE_SETUP.has(f.name)
            ? "module setup and class prototypes"
            : (spans.find(s => f.location[0] >= s.start && f.location[0] < s.end)?.folder ?? "?")
        folders.set(folder, (folders.get(folder) ?? 0) + f.size)
    }
    return {
        entry,
        bytes: image.length,
        ...imageCodeEnd(image),
        strings: dbg.sizes.strings,
        folders: [...folders].sort((a, b) => b[1] - a[1]),
    }
}

/** The heavy moments of ram-probe.ts. */
export const RAM_MOMENTS = ["manifest", "verify", "downlink"] as const
export type RamMoment = (typeof RAM_MOMENTS)[number]

/** Bytes the probe could still allocate at `moment` before the heap ran out. */
export async function ramHeadroom(moment: RamMoment): Promise<number> {
    writeBenchManifest()
    writeFileSync(join(PROJECT_ROOT, "test/device/fixtures/generated/ram-probe.ts"), `export const MOMENT: string = "${moment}"\n`)
    const run = await runInSimulator("test/device/fixtures/ram-probe.ts", { timeoutMs: 120_000 })
    const lines = deviceLines(run.output)
    if (!lines.some(l => l.startsWith(`ram-probe start ${moment}`)) || !run.output.includes("OutOfMemory"))
        throw new Error(`the RAM probe did not run out of memory at ${moment}:\n${run.output}`)
    const held = lines.map(l => /^ram-probe (\d+)$/.exec(l)?.[1]).filter(n => n !== undefined)
    return held.length > 0 ? Number(held[held.length - 1]) : 0
}
