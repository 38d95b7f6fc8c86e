/**
 * The lint rule `no-number-truthiness` (devs/lint): what it must report and
 * what it must let through, with ESLint's RuleTester on type-checked snippets;
 * and the firmware and its device suites, linted with the project's
 * configuration, hold no number in a boolean context.
 */
import assert from "node:assert/strict"
import { describe, it, test } from "node:test"
import { ESLint, RuleTester } from "eslint"
import tseslint from "typescript-eslint"
import rule from "../../devs/lint/no-number-truthiness.js"
import { PROJECT_ROOT } from "../../devs/project.ts"

RuleTester.describe = describe
RuleTester.it = it
RuleTester.itOnly = it.only

const tester = new RuleTester({
    languageOptions: {
        parser: tseslint.parser,
        parserOptions: { projectService: { allowDefaultProject: ["*.ts"] }, tsconfigRootDir: PROJECT_ROOT },
    },
})

const number = { messageId: "number" }
const declarations = "declare const n: number; declare const m: number | undefined; declare const s: string; declare const xs: number[];"
const ok = (code: string) => ({ code: `${declarations} ${code}`, filename: "snippet.ts" })
const bad = (code: string, errors = 1) => ({ ...ok(code), errors: Array.from({ length: errors }, () => number) })

tester.run("no-number-truthiness", rule, {
    valid: [
        ok("if (n !== 0) {}"),
        ok("if (m === undefined) {}"),
        ok("const x = m ?? 10"),
        ok("if (s) {}"),
        ok("if (s.length > 0 && n > 0) {}"),
        ok("while (xs.length !== 0) xs.pop()"),
        ok("const y = n > 1 ? 1 : 2"),
        ok("const f = xs.filter(x => x > 0)"),
        ok("const g = xs.some(x => { return x !== 0 })"),
        // a number as the right operand of a value, not a test: `s || n` tests only s
        ok("const z = s || n"),
    ],
    invalid: [
        bad("if (n) {}"),
        bad("if (m) {}"),
        bad("const x = m || 10"),
        bad("const t = (n / 1000) || 0"),
        bad("const b = !n"),
        bad("while (xs.length) xs.pop()"),
        bad("do {} while (n)"),
        bad("for (let i = n; i; i--) {}"),
        bad("const y = n ? 1 : 2"),
        bad("const a = n && s"),
        // a tested `||` tests both sides
        bad("if (s || n) {}"),
        bad("if (n || m) {}", 2),
        bad("const f = xs.filter(x => x)"),
        bad("const g = xs.find(x => { return x & 1 })"),
    ],
})

test("src/ and test/device/ hold no number in a boolean context", async () => {
    const eslint = new ESLint({ cwd: PROJECT_ROOT, overrideConfigFile: "devs/lint/eslint.config.js" })
    const results = await eslint.lintFiles(["src/**/*.ts", "test/device/**/*.ts"])
    const findings = results.flatMap(r =>
        r.messages.map(m => `${r.filePath.slice(PROJECT_ROOT.length + 1)}:${m.line}:${m.column} ${m.message}`)
    )
    assert.ok(results.length > 50, `linted ${results.length} files`)
    assert.deepEqual(findings, [])
})
