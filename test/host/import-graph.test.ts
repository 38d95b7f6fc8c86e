/**
 * The house rule for imports, checked on the code as it stands, in src/ (the
 * firmware) and devs/ (everything beside it): no cycle of files, no cycle of
 * folders, and no import that goes up the declared order of floors. A folder
 * may import itself and any folder on a lower floor; folders on one floor do
 * not import each other; a folder the order does not name has no place yet.
 *
 * Imports are read with TypeScript's own pre-processor (static imports,
 * `import type`, re-exports and dynamic `import()`), relative paths only:
 * packages are not rooms of the house.
 */
import assert from "node:assert/strict"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, relative, sep } from "node:path"
import { after, describe, test } from "node:test"
import ts from "typescript"
import { PROJECT_ROOT } from "../../devs/project.ts"

/** The firmware's floors, top first: what runs the device at the top, bytes on the ground. */
const SRC_FLOORS: string[][] = [
    // the images: the simulator's, and one per board with only its drivers
    ["main.ts", "boards"],
    // the firmware's wiring
    ["firmware.ts"],
    // the owner's commands and the state report
    ["control"],
    ["update", "uplink"],
    ["identity", "pipeline"],
    ["secure", "events"],
    ["codec", "storage"],
    // the socket's protocol clients; the sensors
    ["net", "sensors"],
    // bytes on the ground: constant-time compares, UTF-8, the runtime's natives
    ["bytes"],
]

/** The floors of devs/, top first. */
const DEVS_FLOORS: string[][] = [
    // the programs a person runs
    ["bin"],
    // benchmarks; the load test; the command line shared by the programs
    ["bench", "load", "cli"],
    // the test runner; the fuzz campaigns of the services and the device
    ["test-runner", "fuzz"],
    // the simulator harness: the firmware in the simulator, its owner played on the host, npm start
    ["sim"],
    // the local stack: CA, broker, registry and update service wired together
    ["stack"],
    // the broker adapter; the update service
    ["broker", "updates"],
    // the owner service: store, verifier, HTTP API and console, commands, accounts' clients
    ["owner"],
    // the registry and its client
    ["registry"],
    // loopback ports and the TLS policy; files only their owner may read
    ["net", "files"],
    // the project root, var/ paths and local ports
    ["project.ts"],
]

/** One relative import: files as paths from the tree's root, `/`-separated. */
interface Import {
    from: string
    to: string
    specifier: string
    line: number
}

function sourceFiles(dir: string): string[] {
    return readdirSync(dir).flatMap(name => {
        const path = join(dir, name)
        if (statSync(path).isDirectory()) return name === "node_modules" ? [] : sourceFiles(path)
        return name.endsWith(".ts") && !name.endsWith(".d.ts") ? [path] : []
    })
}

/** The file an import names: as written, or with `.ts`, or its folder's index. */
function resolveImport(fromFile: string, specifier: string): string | undefined {
    const base = join(dirname(fromFile), specifier)
    return [base, `${base}.ts`, join(base, "index.ts")].find(p => existsSync(p) && statSync(p).isFile())
}

/** Every relative import in the tree under `root`, and those that name no file. */
function readImports(root: string): { files: string[]; imports: Import[]; missing: Import[] } {
    const name = (path: string) => relative(root, path).split(sep).join("/")
    const files = sourceFiles(root)
    const imports: Import[] = []
    const missing: Import[] = []
    for (const file of files) {
        const text = readFileSync(file, "utf8")
        for (const { fileName: specifier, pos } of ts.preProcessFile(text, true, true).importedFiles) {
            if (!specifier.startsWith("./") && !specifier.startsWith("../")) continue
            const line = text.slice(0, pos).split("\n").length
            const target = resolveImport(file, specifier)
            // an import that leaves the tree (a test fixture, say) is not part of its house
            if (target && relative(root, target).startsWith("..")) continue
            const entry = { from: name(file), to: target ? name(target) : specifier, specifier, line }
            ;(target ? imports : missing).push(entry)
        }
    }
    return { files: files.map(name), imports, missing }
}

/** The folder a file lives in, under the tree's root; a file at the root is its own. */
function folderOf(path: string): string {
    return path.split("/")[0]
}

/** The strongly connected components of a graph that hold a cycle (Tarjan), each as a cycle through its members. */
function cycles(nodes: string[], edges: Map<string, Set<string>>): string[][] {
    const index = new Map<string, number>()
    const low = new Map<string, number>()
    const stack: string[] = []
    const onStack = new Set<string>()
    const found: string[][] = []
    const visit = (v: string) => {
        index.set(v, index.size)
        low.set(v, index.get(v)!)
        stack.push(v)
        onStack.add(v)
        for (const w of edges.get(v) ?? []) {
            if (!index.has(w)) {
                visit(w)
                low.set(v, Math.min(low.get(v)!, low.get(w)!))
            } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
        }
        if (low.get(v) !== index.get(v)) return
        const component: string[] = []
        let w: string
        do {
            w = stack.pop()!
            onStack.delete(w)
            component.push(w)
        } while (w !== v)
        if (component.length > 1 || edges.get(v)?.has(v)) found.push(cycleThrough(v, new Set(component), edges))
    }
    for (const v of nodes) if (!index.has(v)) visit(v)
    return found
}

/** A path from `start` back to itself inside `members` (breadth first: the shortest). */
function cycleThrough(start: string, members: Set<string>, edges: Map<string, Set<string>>): string[] {
    const previous = new Map<string, string>()
    const queue = [start]
    while (queue.length) {
        const v = queue.shift()!
        for (const w of edges.get(v) ?? []) {
            if (!members.has(w)) continue
            if (w === start) {
                const path = [v]
                while (path[0] !== start) path.unshift(previous.get(path[0])!)
                return [...path, start]
            }
            if (!previous.has(w)) {
                previous.set(w, v)
                queue.push(w)
            }
        }
    }
    return [start, start]
}

/** What breaks the rule in the tree under `root` (named `tree` in messages), by rule. */
function checkImports(tree: string, root: string, floors: string[][]) {
    const { files, imports, missing } = readImports(root)
    const where = (i: Import) => `${tree}/${i.from}:${i.line} imports "${i.specifier}"`
    const edges = (key: (path: string) => string) => {
        const map = new Map<string, Set<string>>()
        const example = new Map<string, Import>()
        for (const i of imports) {
            const [a, b] = [key(i.from), key(i.to)]
            if (key === folderOf && a === b) continue
            if (!map.has(a)) map.set(a, new Set())
            map.get(a)!.add(b)
            if (!example.has(`${a} ${b}`)) example.set(`${a} ${b}`, i)
        }
        return { map, example }
    }
    const describeCycle = (cycle: string[], example: Map<string, Import>) =>
        cycle.join(" -> ") +
        ": " +
        cycle
            .slice(1)
            .map((to, k) => where(example.get(`${cycle[k]} ${to}`)!))
            .join(", ")

    const fileEdges = edges(path => path)
    const fileCycles = cycles(files, fileEdges.map).map(c => `cycle of files in ${tree}/: ${describeCycle(c, fileEdges.example)}`)
    const folders = [...new Set(files.map(folderOf))]
    const folderEdges = edges(folderOf)
    const folderCycles = cycles(folders, folderEdges.map).map(c => `cycle of folders in ${tree}/: ${describeCycle(c, folderEdges.example)}`)

    const floorOf = new Map(floors.flatMap((names, floor) => names.map(n => [n, floor] as const)))
    const order = floors.map(names => names.join(", ")).join(" > ")
    const layers = folders
        .filter(f => !floorOf.has(f))
        .map(f => `${tree}/${f} has no floor: the order is ${order}; give it one, or move its files into a folder that has`)
    for (const i of imports) {
        const [a, b] = [folderOf(i.from), folderOf(i.to)]
        if (a === b || !floorOf.has(a) || !floorOf.has(b)) continue
        if (floorOf.get(a)! < floorOf.get(b)!) continue
        const neighbours = floorOf.get(a) === floorOf.get(b)
        const why = neighbours ? `${a} and ${b} share a floor, and neighbours do not import each other` : `${b} is above ${a}`
        layers.push(`${where(i)}: ${why}: imports only go down (${order})`)
    }
    layers.push(...missing.map(i => `${where(i)}: no such file`))
    return { fileCycles, folderCycles, layers }
}

describe("the import rule finds what breaks it", () => {
    const base = mkdtempSync(join(tmpdir(), "import-graph-"))
    after(() => rmSync(base, { recursive: true, force: true }))
    /** A house of the given files (path -> text) in a folder of its own. */
    const house = (name: string, files: Record<string, string>) => {
        for (const [path, text] of Object.entries(files)) {
            mkdirSync(dirname(join(base, name, path)), { recursive: true })
            writeFileSync(join(base, name, path), text)
        }
        return join(base, name)
    }
    // top > middle, side > ground
    const floors = [["top.ts"], ["middle", "side"], ["ground"]]
    const order = "top.ts > middle, side > ground"

    test("a clean house passes", () => {
        const root = house("clean", {
            "top.ts": `import { m } from "./middle/m.ts"\nimport type { S } from "./side/s"\n`,
            "middle/m.ts": `import { g } from "../ground/g.ts"\nexport const m = g\n`,
            "side/s.ts": `export type S = number\nexport const lazy = () => import("../ground/g.ts")\n`,
            "ground/g.ts": `// import { t } from "../top.ts" (a comment is no import)\nexport const g = "import { t } from '../top.ts'"\n`,
        })
        assert.deepEqual(checkImports("t", root, floors), { fileCycles: [], folderCycles: [], layers: [] })
    })

    test("an import up a floor, between neighbours, from a folder with no floor, and of no file: each named with its line", () => {
        const root = house("broken", {
            "middle/m.ts": `import { g } from "../ground/g.ts"\nexport const m = g\n`,
            "ground/g.ts": `export const g = 1\nexport { m } from "../middle/m.ts"\n`,
            "side/s.ts": `import type { m } from "../middle/m.ts"\n`,
            "attic/a.ts": `import { g } from "../ground/g.ts"\nimport { x } from "./gone.ts"\n`,
        })
        const { layers, fileCycles, folderCycles } = checkImports("t", root, floors)
        assert.deepEqual(layers.sort(), [
            `t/attic has no floor: the order is ${order}; give it one, or move its files into a folder that has`,
            `t/attic/a.ts:2 imports "./gone.ts": no such file`,
            `t/ground/g.ts:2 imports "../middle/m.ts": middle is above ground: imports only go down (${order})`,
            `t/side/s.ts:1 imports "../middle/m.ts": side and middle share a floor, and neighbours do not import each other: ` +
                `imports only go down (${order})`,
        ])
        // ground/g.ts and middle/m.ts import each other: a cycle of files, and so of folders
        const imports = `t/ground/g.ts:2 imports "../middle/m.ts", t/middle/m.ts:1 imports "../ground/g.ts"`
        assert.deepEqual(fileCycles, [`cycle of files in t/: ground/g.ts -> middle/m.ts -> ground/g.ts: ${imports}`])
        assert.deepEqual(folderCycles, [`cycle of folders in t/: ground -> middle -> ground: ${imports}`])
    })

    test("a cycle of folders with no cycle of files", () => {
        const root = house("folders", {
            "middle/a.ts": `import { c } from "../ground/c.ts"\nexport const a = c\n`,
            "middle/b.ts": `export const b = 2\n`,
            "ground/c.ts": `export const c = 3\n`,
            "ground/d.ts": `import { b } from "../middle/b.ts"\nexport const d = b\n`,
        })
        const { fileCycles, folderCycles } = checkImports("t", root, floors)
        assert.deepEqual(fileCycles, [])
        assert.equal(folderCycles.length, 1)
        assert.match(folderCycles[0], /^cycle of folders in t\/: (middle -> ground -> middle|ground -> middle -> ground): /)
    })
})

const TREES: [string, string[][]][] = [
    ["devs", DEVS_FLOORS],
    ["src", SRC_FLOORS],
]
for (const [tree, floors] of TREES) {
    describe(`imports in ${tree}/`, () => {
        const found = checkImports(tree, join(PROJECT_ROOT, tree), floors)
        test("no cycle of files", () => assert.equal(found.fileCycles.length, 0, "\n" + found.fileCycles.join("\n")))
        test("no cycle of folders", () => assert.equal(found.folderCycles.length, 0, "\n" + found.folderCycles.join("\n")))
        test("every import goes down the floors, every folder has a floor", () =>
            assert.equal(found.layers.length, 0, "\n" + found.layers.join("\n")))
    })
}
