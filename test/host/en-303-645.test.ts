/**
 * The EN 303 645 evidence cannot go stale: docs/en-303-645.md has one row per
 * provision of clause 5 of V2.1.1, in order; a *met* row names at least one
 * test; every named test is declared, with that exact name, in the file
 * named; every file the table names exists. SECURITY.md gives what
 * provisions 5.2-1 and 5.3-13 ask for.
 */
import assert from "node:assert/strict"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, test } from "node:test"
import { PROJECT_ROOT } from "../../devs/project.ts"

/** Provisions per clause of EN 303 645 V2.1.1, 5.1 to 5.13. */
const PROVISIONS_PER_CLAUSE = [5, 3, 16, 4, 8, 9, 2, 3, 3, 1, 4, 3, 1]
const PROVISIONS = PROVISIONS_PER_CLAUSE.flatMap((count, clause) => Array.from({ length: count }, (_, i) => `5.${clause + 1}-${i + 1}`))
const STATUSES = ["met", "partly", "process", "not met", "does not apply"]

const read = (path: string) => readFileSync(join(PROJECT_ROOT, path), "utf8")

interface Row {
    provision: string
    status: string
    how: string
    tests: { file: string; name: string }[]
}

/** The table's rows: `| provision | status | how | tests |`, the tests as `` `file` "name" `` separated by `;`. */
function rows(markdown: string): Row[] {
    return markdown
        .split("\n")
        .filter(line => /^\| 5\.\d+-\d+ \|/.test(line))
        .map(line => {
            const [provision, status, how, tests] = line
                .slice(1, -1)
                .split(" | ")
                .map(cell => cell.trim())
            const named = [...(tests ?? "").matchAll(/`(test\/[^`]+\.test\.ts)` "([^"]+)"/g)].map(m => ({ file: m[1], name: m[2] }))
            return { provision, status, how, tests: named }
        })
}

/** Whether `file` declares a test or suite called exactly `name`. */
function declares(file: string, name: string): boolean {
    const source = read(file)
    const quoted = [`"${name}"`, `'${name}'`, `\`${name}\``]
    return quoted.some(q => new RegExp(`\\b(test|describe|it)\\(\\s*${q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`).test(source))
}

const TABLE = rows(read("docs/en-303-645.md"))

describe("EN 303 645 evidence", () => {
    test("the table has one row per provision of clause 5, in order, each with a known status", () => {
        assert.equal(PROVISIONS.length, 62)
        assert.deepEqual(
            TABLE.map(r => r.provision),
            PROVISIONS
        )
        for (const row of TABLE) assert.ok(STATUSES.includes(row.status), `${row.provision}: status "${row.status}"`)
    })

    test("every met row names a test, and every named test exists under that exact name", () => {
        for (const row of TABLE) {
            if (row.status === "met") assert.ok(row.tests.length > 0, `${row.provision} is met but names no test`)
            for (const { file, name } of row.tests) {
                assert.ok(existsSync(join(PROJECT_ROOT, file)), `${row.provision}: no file ${file}`)
                assert.ok(declares(file, name), `${row.provision}: ${file} declares no test "${name}"`)
            }
        }
    })

    test("every file the table names exists", () => {
        for (const row of TABLE)
            for (const [, path] of row.how.matchAll(/`((?:src|devs|test|docs|boards)\/[^`\s]+\.\w+|[A-Z]+\.md)`/g))
                assert.ok(existsSync(join(PROJECT_ROOT, path)), `${row.provision}: no file ${path}`)
    })

    test("the check finds a missing test, a renamed test and a missing file", () => {
        const [broken] = rows(
            '| 5.1-1 | met | see `devs/registry/gone.ts` | `test/host/registry.test.ts` "no such test"; `test/host/gone.test.ts` "x" |'
        )
        assert.equal(declares(broken.tests[0].file, broken.tests[0].name), false)
        assert.equal(existsSync(join(PROJECT_ROOT, broken.tests[1].file)), false)
        assert.equal(declares("test/host/registry.test.ts", "re-enrollment of an id is refused and logged"), true)
        assert.equal(existsSync(join(PROJECT_ROOT, "devs/registry/gone.ts")), false)
    })

    test("SECURITY.md gives a contact, the acknowledgement and status-update timelines, and the support period", () => {
        const policy = read("SECURITY.md")
        assert.match(policy, /\b[\w.-]+@[\w-]+(\.[\w-]+)+\b/, "a contact address")
        assert.match(policy, /acknowledgement[^|\n]*\| \d+ working days/i)
        assert.match(policy, /status updates[^|\n]*\| every \d+ days/i)
        assert.match(policy, /## Support period[\s\S]*until \**\d{4}-\d{2}-\d{2}/)
    })
})
