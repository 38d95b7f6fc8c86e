/**
 * ESLint for the host code (devs/, test/host/): the recommended JavaScript and
 * typescript-eslint rules, and no unused code. For the firmware (src/,
 * test/device/): the project's own type-aware rule `no-number-truthiness`
 * (the DeviceScript runtime reads a fractional number as false), with the
 * types of the DeviceScript compiler's tsconfig (`tsconfig.device.json`
 * extends src/tsconfig.json to the device suites). Import cycles and imports
 * that run back up a floor are checked by test/host/import-graph.test.ts,
 * which knows the project's floors. Formatting is prettier's (package.json).
 *
 *   npx eslint -c devs/lint/eslint.config.js devs test/host src test/device
 */
import { fileURLToPath } from "node:url"
import js from "@eslint/js"
import tseslint from "typescript-eslint"
import noNumberTruthiness from "./no-number-truthiness.js"

/** The project's own rules. */
export const sentinelPlugin = { rules: { "no-number-truthiness": noNumberTruthiness } }

export default tseslint.config(
    { ignores: ["node_modules/**", ".devicescript/**", "built/**", "var/**"] },
    {
        // prettier wraps code at 140 but leaves strings, comments and test titles: this keeps them there too
        files: ["**/*.ts", "**/*.js", "**/*.cjs"],
        // generated from keys and vectors at build and test time: one long hex literal each
        ignores: ["src/update/trust-anchor.ts", "test/device/fixtures/generated/**"],
        rules: { "max-len": ["error", { code: 140, ignoreUrls: true, ignoreRegExpLiterals: true }] },
    },
    {
        files: ["devs/**/*.ts", "devs/**/*.js", "test/host/**/*.ts"],
        extends: [js.configs.recommended, ...tseslint.configs.recommended],
        rules: {
            "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrors: "none" }],
        },
    },
    {
        // the bootstrap of the npm scripts runs in plain Node
        files: ["devs/bin/*.js"],
        languageOptions: { globals: { process: "readonly", console: "readonly" } },
    },
    {
        // the owner console's modules run in the browser
        files: ["devs/owner/console/**/*.js"],
        languageOptions: {
            globals: Object.fromEntries(
                [
                    "document",
                    "location",
                    "fetch",
                    "EventSource",
                    "FormData",
                    "Node",
                    "ResizeObserver",
                    "requestAnimationFrame",
                    "setTimeout",
                    "setInterval",
                    "clearTimeout",
                    "console",
                ].map(name => [name, "readonly"])
            ),
        },
    },
    {
        files: ["devs/**/*.cjs"],
        extends: [js.configs.recommended],
        languageOptions: { sourceType: "commonjs", globals: { require: "readonly", module: "writable", process: "readonly" } },
    },
    {
        files: ["src/**/*.ts", "test/device/**/*.ts"],
        languageOptions: {
            parser: tseslint.parser,
            parserOptions: { project: "devs/lint/tsconfig.device.json", tsconfigRootDir: fileURLToPath(new URL("../..", import.meta.url)) },
        },
        plugins: { sentinel: sentinelPlugin },
        rules: { "sentinel/no-number-truthiness": "error" },
    }
)
