/**
 * ESLint for the host code (devs/, test/host/): the recommended JavaScript and
 * typescript-eslint rules, and no unused code. Import cycles and imports that
 * run back up a floor are checked by test/host/import-graph.test.ts, which
 * knows the project's floors. Formatting is prettier's (package.json).
 *
 *   npx eslint -c devs/lint/eslint.config.js devs test/host
 */
import js from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
    { ignores: ["node_modules/**", ".devicescript/**", "built/**", "var/**"] },
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
    }
)
