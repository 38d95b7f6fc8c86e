/**
 * Which test files a run takes: all of a folder's `*.test.ts`, or those a
 * filter names. A filter names a file when its path contains the filter or
 * when the title of one of its suites or tests does (case ignored), so
 * `npm test -- cbor` takes the cbor2 cross-check, whose path says
 * `codec-crosscheck` but whose suites say what they check.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import { PROJECT_ROOT } from "../project.ts"

/** `describe("…"`, `test('…'`, `it(`…`` : the titles a file gives its suites and tests. */
const TITLE = /\b(?:describe|test|it)\(\s*(["'`])((?:\\.|(?!\1).)*)\1/g

/** The suite and test titles written in a test file. */
export function titlesOf(source: string): string[] {
    return [...source.matchAll(TITLE)].map(m => m[2])
}

/** Whether `file` (a path from the project root) is named by one of `filters`; all files are when there is none. */
export function named(file: string, filters: string[]): boolean {
    if (!filters.length) return true
    const wanted = filters.map(f => f.toLowerCase())
    const haystacks = [file, ...titlesOf(readFileSync(join(PROJECT_ROOT, file), "utf8"))].map(h => h.toLowerCase())
    return wanted.some(f => haystacks.some(h => h.includes(f)))
}

/** The test files under `dir` (from the project root) that `filters` name, sorted. */
export function listTests(dir: string, filters: string[]): string[] {
    const root = join(PROJECT_ROOT, dir)
    return readdirSync(root, { recursive: true, encoding: "utf8" })
        .filter(f => f.endsWith(".test.ts"))
        .map(f => relative(PROJECT_ROOT, join(root, f)))
        .filter(f => named(f, filters))
        .sort()
}
