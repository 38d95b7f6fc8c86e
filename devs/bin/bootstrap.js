/**
 * What every npm script runs first: plain Node and nothing from node_modules,
 * since on a fresh clone there is no node_modules yet (so no tsx either).
 *
 * 1. Node 20 or later, or one line and exit 2.
 * 2. The npm packages of package-lock.json: when one is missing or at another
 *    version, `npm ci` (no node_modules yet) or `npm install` runs first, and
 *    a native addon that was never built is rebuilt.
 * 3. The Debian packages the program needs (`npm start`: Mosquitto with its
 *    dynamic-security plugin and openssl; `npm test` and `npm run bench`:
 *    Chromium and RabbitMQ too, and `npm test` PostgreSQL, whose initdb starts the
 *    throwaway clusters of the registry's suites; `npm run loadtest` Mosquitto, RabbitMQ
 *    and PostgreSQL): installed with `apt-get install -y` when run as root, otherwise
 *    one `sudo apt-get …` line and exit 2.
 * 4. The program, devs/bin/<name>.ts, in this same process under tsx's loader,
 *    so Ctrl-C and SIGTERM reach it directly (no shell or wrapper between).
 *
 *   node devs/bin/bootstrap.js <program> [arguments…]
 */
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, readFileSync, readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const NODE_MAJOR = 20

/** Debian packages by what they provide, and the programs that need them. */
const DEBIAN = {
    mosquitto: {
        provides: () => findExecutable("mosquitto") && findExecutable("mosquitto_ctrl") && mosquittoPlugin(),
        programs: ["start", "test", "bench", "loadtest"],
    },
    openssl: { provides: () => findExecutable("openssl"), programs: ["start", "test", "bench", "loadtest"] },
    chromium: { provides: () => existsSync("/usr/bin/chromium"), programs: ["test", "bench"] },
    postgresql: { provides: () => postgresInstalled(), programs: ["test", "loadtest"] },
    // the broker tests' RabbitMQ cluster (devs/broker/rabbitmq-cluster.ts), and the bench's auth backend
    "rabbitmq-server": {
        provides: () => existsSync("/usr/lib/rabbitmq/bin/rabbitmq-server") && findExecutable("epmd"),
        programs: ["test", "bench", "loadtest"],
    },
}

/** Whether a PostgreSQL server is installed where Debian puts it (devs/stack/pg-cluster.ts runs its initdb). */
function postgresInstalled() {
    const root = "/usr/lib/postgresql"
    return existsSync(root) && readdirSync(root).some(v => existsSync(join(root, v, "bin", "initdb")))
}

/** Native addons whose build output must exist (npm runs their build at install; an interrupted one leaves none). */
const NATIVE = [{ name: "better-sqlite3", file: join("build", "Release", "better_sqlite3.node") }]

const stamp = () => new Date().toTimeString().slice(0, 8)
const say = line => console.log(`${stamp()} ${line}`)

/** A one-line stop the person can act on. */
function stop(line) {
    console.error(line)
    process.exit(2)
}

/** The path of an executable in PATH or in the sbin folders a normal user's PATH often lacks. */
function findExecutable(name) {
    const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/local/sbin", "/usr/sbin", "/sbin"]
    return dirs.map(d => join(d, name)).find(p => p.startsWith("/") && existsSync(p))
}

function mosquittoPlugin() {
    return ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib"].some(d =>
        existsSync(join(d, "mosquitto_dynamic_security.so"))
    )
}

/** The lock file's packages that are not installed as locked (optional ones, for other platforms, left out). */
function missingPackages() {
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"))
    const missing = []
    for (const [path, entry] of Object.entries(lock.packages ?? {})) {
        if (!path.startsWith("node_modules/") || entry.optional || entry.link) continue
        try {
            if (JSON.parse(readFileSync(join(ROOT, path, "package.json"), "utf8")).version !== entry.version) missing.push(path)
        } catch {
            missing.push(path)
        }
    }
    return missing
}

function ensureNode() {
    const major = Number(process.versions.node.split(".")[0])
    if (major < NODE_MAJOR) stop(`Node.js ${NODE_MAJOR} or later is needed (this is ${process.version}): see https://nodejs.org`)
}

function ensureNpmPackages() {
    const missing = missingPackages()
    if (missing.length) {
        const fresh = !existsSync(join(ROOT, "node_modules"))
        const command = fresh ? "ci" : "install"
        say(`npm packages: ${fresh ? "none installed yet" : `${missing.length} missing or changed`}; running npm ${command} (once)…`)
        const started = Date.now()
        const r = spawnSync("npm", [command, "--no-audit", "--no-fund"], { cwd: ROOT, stdio: "inherit" })
        if (r.status !== 0) stop(`npm ${command} failed (exit ${r.status}): fix what it printed above, then run this again`)
        say(`npm packages installed in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    }
    for (const addon of NATIVE)
        if (!existsSync(join(ROOT, "node_modules", addon.name, addon.file))) {
            say(`npm packages: ${addon.name} was never built; npm rebuild ${addon.name}…`)
            if (spawnSync("npm", ["rebuild", addon.name], { cwd: ROOT, stdio: "inherit" }).status !== 0)
                stop(`npm rebuild ${addon.name} failed: it needs a C++ compiler (sudo apt-get install -y build-essential python3)`)
        }
}

function ensureDebianPackages(program) {
    const lacking = Object.entries(DEBIAN)
        .filter(([, p]) => p.programs.includes(program) && !p.provides())
        .map(([name]) => name)
    if (!lacking.length) return
    const line = `apt-get install -y ${lacking.join(" ")}`
    if (process.getuid?.() !== 0) stop(`${lacking.join(", ")} missing: run  sudo ${line}  then this again`)
    say(`Debian packages: ${lacking.join(", ")} missing; ${line}…`)
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
    const lists = readdirSync("/var/lib/apt/lists").filter(f => f.endsWith("Packages") || f.endsWith("Packages.lz4"))
    if (!lists.length) execFileSync("apt-get", ["update"], { stdio: "inherit", env })
    if (spawnSync("apt-get", ["install", "-y", ...lacking], { stdio: "inherit", env }).status !== 0)
        stop(`${line} failed: fix what apt-get printed above, then run this again`)
    const still = lacking.filter(name => !DEBIAN[name].provides())
    if (still.length) stop(`${still.join(", ")} still missing after apt-get: install ${still.join(" ")} by hand`)
}

const [program, ...args] = process.argv.slice(2)
if (!program || !existsSync(join(ROOT, "devs", "bin", `${program}.ts`)))
    stop(`usage: node devs/bin/bootstrap.js <program in devs/bin> [arguments…]`)
ensureNode()
ensureNpmPackages()
ensureDebianPackages(program)
process.env.SENTINEL_STARTED_AT ??= String(Date.now() - Math.round(process.uptime() * 1000))
const { register } = await import("tsx/esm/api")
register()
const entry = join(ROOT, "devs", "bin", `${program}.ts`)
process.argv = [process.argv[0], entry, ...args]
await import(pathToFileURL(entry).href)
