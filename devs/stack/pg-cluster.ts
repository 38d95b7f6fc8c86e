/**
 * A throwaway PostgreSQL cluster, for tests and for trying the registry on
 * PostgreSQL without a server of one's own.
 *
 * PostgreSQL calls the databases one server manages a *cluster*; `initdb`
 * makes one in a folder. This one lives in a fresh temporary folder and its
 * postmaster runs directly, never through Debian's `pg_ctlcluster`, so the
 * system's cluster (/var/lib/postgresql/<v>/main, port 5432) is never touched:
 *
 *   <tmp>/data   the cluster (initdb --no-sync, and fsync off: nothing here outlives the run)
 *   <tmp>/       also the unix-socket folder
 *
 * The postmaster refuses to run as root, so as root the folder belongs to the
 * `postgres` account and initdb and the server run as it. The server listens
 * on 127.0.0.1 at the port given (a free one in tests) and asks every client
 * for SCRAM-SHA-256 (RFC 7677) with a password made here, handed to initdb in
 * a 0600 file (never argv, which `ps` shows) that is removed at once.
 *
 * The server is not detached: it and the backends it forks stay in the
 * caller's process group, so the test runner's group kill
 * (devs/test-runner/process-group.ts) ends them with the test file whatever
 * happens. `stop()` is the orderly way: a fast shutdown, then the folder goes.
 * If the process exits without it, an exit hook kills the server and removes
 * the folder.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { waitForPort } from "../net/ports.ts"

/** A running throwaway cluster. */
export interface PgCluster {
    /** `postgres://user:password@127.0.0.1:port/postgres` (the maintenance database). */
    readonly url: string
    readonly port: number
    /** The temporary folder; removed by `stop()`. */
    readonly dir: string
    /** Creates an empty database and returns its URL (names: lower-case letters, digits, `_`). */
    createDatabase(name: string): Promise<string>
    /** Fast shutdown (clients are disconnected), then the folder is removed. */
    stop(): Promise<void>
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/
const USER = "sentinel"

/** The newest installed PostgreSQL's bin folder (Debian's layout). */
export function pgBinDir(): string {
    const root = "/usr/lib/postgresql"
    const versions = existsSync(root) ? readdirSync(root).filter(v => existsSync(join(root, v, "bin", "initdb"))) : []
    if (versions.length === 0) throw new Error("the PostgreSQL server is not installed: apt-get install postgresql")
    return join(root, versions.sort((a, b) => Number(b) - Number(a))[0], "bin")
}

/** The account the server runs as: `postgres` when we are root (the postmaster refuses root), else ourselves. */
function serverAccount(): { uid: number; gid: number } | undefined {
    if (process.getuid?.() !== 0) return undefined
    const line = readFileSync("/etc/passwd", "utf8")
        .split("\n")
        .find(l => l.startsWith("postgres:"))
    if (!line) throw new Error('no "postgres" account: apt-get install postgresql')
    const [, , uid, gid] = line.split(":")
    return { uid: Number(uid), gid: Number(gid) }
}

function runToEnd(command: string, args: string[], account: { uid: number; gid: number } | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, { env: { PATH: process.env.PATH, LC_ALL: "C" }, stdio: ["ignore", "pipe", "pipe"], ...account })
        let out = ""
        child.stdout.on("data", (c: Buffer) => (out += c))
        child.stderr.on("data", (c: Buffer) => (out += c))
        child.once("error", reject)
        child.once("close", code => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}: ${out.trim().slice(-500)}`))))
    })
}

/** Starts a cluster on 127.0.0.1:`port` (see the module comment). */
export async function startPgCluster(port: number, timeoutMs = 30_000): Promise<PgCluster> {
    const bin = pgBinDir()
    const account = serverAccount()
    const dir = mkdtempSync(join(tmpdir(), "pg-cluster-"))
    let server: ChildProcess | undefined
    const cleanUp = () => {
        server?.kill("SIGKILL")
        rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
    }
    process.on("exit", cleanUp)
    try {
        if (account) chownSync(dir, account.uid, account.gid)
        const password = randomBytes(24).toString("base64url")
        const pwfile = join(dir, "pwfile")
        writeFileSync(pwfile, password + "\n", { mode: 0o600 })
        if (account) chownSync(pwfile, account.uid, account.gid)
        try {
            const args = ["-D", join(dir, "data"), "-U", USER, "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"]
            await runToEnd(join(bin, "initdb"), [...args, "-A", "scram-sha-256", `--pwfile=${pwfile}`], account)
        } finally {
            rmSync(pwfile, { force: true })
        }
        const settings = {
            listen_addresses: "127.0.0.1",
            port: String(port),
            unix_socket_directories: dir,
            logging_collector: "off",
            fsync: "off",
            synchronous_commit: "off",
            full_page_writes: "off",
        }
        const args = ["-D", join(dir, "data"), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])]
        const log: string[] = []
        const started = spawn(join(bin, "postgres"), args, {
            env: { PATH: process.env.PATH, LC_ALL: "C" },
            stdio: ["ignore", "pipe", "pipe"],
            ...account,
        })
        server = started
        const keep = (c: Buffer) => log.push(...c.toString().split("\n").filter(Boolean)) && log.splice(0, Math.max(0, log.length - 20))
        started.stdout!.on("data", keep)
        started.stderr!.on("data", keep)
        const exited = new Promise<void>(resolve => started.once("exit", () => resolve()))
        const abort = new AbortController()
        void exited.then(() => abort.abort())
        await waitForPort(port, timeoutMs, abort.signal).catch(e => {
            throw new Error(`postgres did not start (${(e as Error).message}): ${log.slice(-5).join(" | ")}`)
        })
        const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`
        const url = `${base}/postgres`
        // the port accepts before recovery ends: "the database system is starting up" (57P03) is waited out
        await query(url, "SELECT 1", Date.now() + timeoutMs)
        return {
            url,
            port,
            dir,
            async createDatabase(name: string) {
                if (!IDENTIFIER.test(name)) throw new Error(`not a plain database name: ${name}`)
                await query(url, `CREATE DATABASE ${name}`, Date.now() + timeoutMs)
                return `${base}/${name}`
            },
            async stop() {
                // SIGINT is the fast shutdown: open transactions roll back, clients are disconnected
                if (started.exitCode === null && started.signalCode === null) started.kill("SIGINT")
                const timer = setTimeout(() => started.kill("SIGKILL"), 10_000)
                await exited
                clearTimeout(timer)
                process.off("exit", cleanUp)
                rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
            },
        }
    } catch (e) {
        cleanUp()
        process.off("exit", cleanUp)
        throw e
    }
}

async function query(url: string, sql: string, deadline: number) {
    for (;;) {
        const client = new pg.Client({ connectionString: url })
        try {
            await client.connect()
            await client.query(sql)
            return
        } catch (e) {
            if ((e as { code?: string }).code !== "57P03" || Date.now() > deadline) throw e
            await new Promise(r => setTimeout(r, 50))
        } finally {
            await client.end().catch(() => {})
        }
    }
}
