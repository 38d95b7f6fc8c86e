/**
 * The command line of every program in devs/bin, on node:util's parseArgs.
 *
 * A command declares its options once (kind, default, one line of help);
 * from that declaration come its `--help` (usage and options, exit 0) and the
 * answer to a mistake: one line, `<command>: <what is wrong>; see --help`,
 * exit 2, never a stack trace (a refusal that says what to do instead, such as
 * releasing an image already released, is one line and exit 2 too). A failure the user can act on (no key yet, a
 * service that is not running) is one line that says what to do, exit 1.
 */
import { isAbsolute, relative } from "node:path"
import { parseArgs } from "node:util"

/** One option of a command. */
export interface OptionSpec {
    type: "string" | "boolean"
    /** What the value is, as the usage shows it: `--id <device id>`. */
    value?: string
    /** The value when the option is left out. */
    default?: string | boolean
    /** How `--help` describes a default computed from other options. */
    defaultText?: string
    /** Leaving it out is a mistake. */
    required?: boolean
    /** One line of help. */
    help: string
}

/** A program of devs/bin. */
export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
    /** Its name in messages, and its npm script: `claim` runs as `npm run claim -- …`. */
    name: string
    /** How a person runs it, when not `npm run <name>`: `npm start`, `npm test`. */
    invocation?: string
    /** What it does. */
    summary: string
    /** Positional arguments: how the usage shows them, and how many it takes. */
    positionals?: { usage: string; min: number; max: number }
    options: O
    /** Lines after the options: examples, what to do first. */
    notes?: readonly string[]
}

type Value<S extends OptionSpec> = S["type"] extends "boolean"
    ? boolean
    : S extends { default: string } | { required: true }
      ? string
      : string | undefined

/** The parsed options of a command, typed from its declaration. */
export type Values<O extends Record<string, OptionSpec>> = { -readonly [K in keyof O]: Value<O[K]> }

/** A parsed command line. */
export interface CommandLine<O extends Record<string, OptionSpec>> {
    values: Values<O>
    positionals: string[]
}

/** A mistake in how the command was called: one line, a pointer to --help, exit 2. */
export class UsageError extends Error {}

/** A mistake the message itself explains with what to do (not one in how the command was called): one line, exit 2. */
export class RefusedError extends Error {}

/** A failure the user can act on; the message says what to do: one line, exit 1. */
export class CommandError extends Error {}

/** A path as a person reads it: relative to where they stand. */
export function displayPath(path: string): string {
    return isAbsolute(path) ? relative(process.cwd(), path) || "." : path
}

function optionUsage(name: string, o: OptionSpec): string {
    return o.type === "boolean" ? `--${name}` : `--${name} <${o.value ?? "value"}>`
}

/** The text `--help` prints. */
function helpText(spec: CommandSpec): string {
    const required = Object.entries(spec.options).filter(([, o]) => o.required)
    const args = [
        ...required.map(([name, o]) => optionUsage(name, o)),
        required.length < Object.keys(spec.options).length ? "[options]" : undefined,
        spec.positionals?.usage,
    ].filter(Boolean)
    // npm hands the program what follows `--`
    const usage = [spec.invocation ?? `npm run ${spec.name}`, ...(args.length ? ["--", ...args] : [])]
    const rows: [string, string][] = Object.entries(spec.options).map(([name, o]) => {
        const dflt = o.defaultText ?? (typeof o.default === "string" ? displayPath(o.default) : undefined)
        return [optionUsage(name, o), o.help + (o.required ? " (required)" : dflt ? ` (default: ${dflt})` : "")]
    })
    rows.push(["--help", "print this help"])
    const width = Math.max(...rows.map(([left]) => left.length)) + 2
    return [
        `usage: ${usage.join(" ")}`,
        "",
        spec.summary,
        "",
        "options:",
        ...rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`),
        ...(spec.notes?.length ? ["", ...spec.notes] : []),
        "",
    ].join("\n")
}

/** parseArgs' own errors, as one short line. */
function parseError(e: Error & { code?: string }): UsageError {
    const quoted = /'([^']+)'/.exec(e.message)?.[1] ?? ""
    switch (e.code) {
        case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
            return new UsageError(`unknown option ${quoted}`)
        case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
            return new UsageError(`unexpected argument ${quoted}`)
        case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
            const option = quoted.split(" ")[0]
            return new UsageError(/argument missing/.test(e.message) ? `${option} needs a value` : `${option} takes no value`)
        }
    }
    return new UsageError(e.message.split(".")[0])
}

/** Parses `argv` against `spec`; undefined when it asks for --help. Throws `UsageError`. */
function parseCommandLine<O extends Record<string, OptionSpec>>(spec: CommandSpec<O>, argv: string[]): CommandLine<O> | undefined {
    const options: Record<string, { type: "string" | "boolean"; default?: string | boolean }> = { help: { type: "boolean" } }
    for (const [name, o] of Object.entries(spec.options))
        options[name] = o.default === undefined ? { type: o.type } : { type: o.type, default: o.default }
    let parsed
    try {
        parsed = parseArgs({ args: argv, options, allowPositionals: spec.positionals !== undefined, strict: true })
    } catch (e) {
        throw parseError(e as Error)
    }
    if (parsed.values.help) return undefined
    for (const [name, o] of Object.entries(spec.options)) {
        const value = parsed.values[name]
        if (o.required && (value === undefined || value === "")) throw new UsageError(`missing ${optionUsage(name, o)}`)
    }
    const { positionals } = parsed
    const { usage, min, max } = spec.positionals ?? { usage: "", min: 0, max: 0 }
    if (positionals.length < min) throw new UsageError(`missing ${usage}`)
    if (positionals.length > max) throw new UsageError(`unexpected argument ${positionals[max]}`)
    return { values: parsed.values as Values<O>, positionals }
}

/** One line for a failure, and the exit code: 2 for a mistake in the call, 1 for anything else. */
function explain(e: unknown): { message: string; code: 1 | 2 } {
    if (e instanceof UsageError) return { message: `${e.message}; see --help`, code: 2 }
    if (e instanceof RefusedError) return { message: e.message, code: 2 }
    // Node reports a refused connection to "localhost" (tried as ::1 and 127.0.0.1) as an AggregateError
    const error = (e instanceof AggregateError && e.errors.length ? e.errors[e.errors.length - 1] : e) as NodeJS.ErrnoException & {
        address?: string
        port?: number
    }
    switch (error?.code) {
        case "ECONNREFUSED": {
            const where = `${error.address}:${error.port}`
            return { message: `nothing answers at ${where}: is the service running? (npm start runs the local stack)`, code: 1 }
        }
        case "EADDRINUSE":
            return { message: `port ${error.port} is taken: is another instance (or npm start) running?`, code: 1 }
        case "ENOENT":
            return { message: `no such file: ${error.path ?? error.message}`, code: 2 }
        case "EACCES":
            return { message: `not allowed: ${error.path ?? error.message}`, code: 1 }
    }
    // a failure's own words, which may carry the output of a tool that failed (devs build); never its stack
    const message = e instanceof Error ? e.message : String(e)
    return { message: message || String(error?.code ?? "failed"), code: 1 }
}

/**
 * Runs a program of devs/bin: parses its command line (answering --help and
 * mistakes), then runs `main`; any failure ends the process with one line on
 * stderr. A program that keeps running (a server, a subscriber) returns once it is up.
 */
export async function runCommand<O extends Record<string, OptionSpec>>(
    spec: CommandSpec<O>,
    main: (line: CommandLine<O>) => Promise<void> | void,
    argv = process.argv.slice(2)
): Promise<void> {
    try {
        const line = parseCommandLine(spec, argv)
        if (!line) return void process.stdout.write(helpText(spec))
        await main(line)
    } catch (e) {
        const { message, code } = explain(e)
        console.error(`${spec.name}: ${message}`)
        process.exit(code)
    }
}
