/**
 * Servers we start under a system account (RabbitMQ runs as `rabbitmq`; its
 * files must belong to it), and how to end one of them for good.
 *
 * A server stays in our process group. `npm test` runs each host file as the
 * leader of a group of its own and kills that group when the file ends, times
 * out or is interrupted (devs/test-runner/process-group.ts), and Ctrl-C
 * reaches the whole foreground group: nothing a test or `npm run cluster`
 * started can outlive it, even when the file is killed before its `after`
 * hook runs. One server of several is ended by signalling its process tree
 * (the server and everything it forked: an Erlang VM forks `erl_child_setup`
 * and `inet_gethost`), found through /proc, since it shares the group.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** A system account to run a server as. */
export interface Account {
    name: string
    uid: number
    gid: number
}

/** Whether this process runs as root (and may therefore run servers as their own accounts). */
const isRoot = () => process.getuid?.() === 0

/**
 * The account a server runs as: `name` from /etc/passwd when this process is
 * root, else the current user (who can only run it as itself).
 */
export function serviceAccount(name: string): Account {
    const uid = process.getuid?.() ?? 0
    if (uid !== 0) return { name: "(current user)", uid, gid: process.getgid?.() ?? uid }
    const line = readFileSync("/etc/passwd", "utf8")
        .split("\n")
        .find(l => l.startsWith(`${name}:`))
    if (!line) throw new Error(`no system account "${name}": is its Debian package installed?`)
    const [, , uid2, gid] = line.split(":")
    return { name, uid: Number(uid2), gid: Number(gid) }
}

/** Hands `path` and everything under it to `account` (nothing to do unless root). */
export function chownTree(path: string, account: Account) {
    if (!isRoot()) return
    chownSync(path, account.uid, account.gid)
    if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), account)
}

/** A fresh folder under the OS temp dir (mode 0700) owned by `account`. */
export function tempDirFor(prefix: string, account: Account): string {
    const dir = mkdtempSync(join(tmpdir(), prefix))
    chownTree(dir, account)
    return dir
}

/** Removes a folder a server used (a process killed a moment ago may still be closing files in it). */
export function removeDir(dir: string) {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
}

/** The uid/gid options of spawn for `account`, when this process may switch to it. */
function asAccount(account: Account | undefined) {
    // libuv calls setgroups(0) before setgid/setuid, so root's supplementary groups are dropped too
    return account && isRoot() && account.uid !== 0 ? { uid: account.uid, gid: account.gid } : {}
}

/** Options of `startServer` and `runTool`. */
export interface ServerOptions {
    env: NodeJS.ProcessEnv
    cwd?: string
    account?: Account
    /** Receives each line the process writes to stdout or stderr. */
    onLine?: (line: string) => void
}

/** A running server. */
export interface ServerProcess {
    readonly process: ChildProcess
    /** Resolves once the server's own process has exited. */
    readonly exited: Promise<void>
    alive(): boolean
    /** Sends `signal` to the server and every process it forked. */
    signalTree(signal: NodeJS.Signals): void
}

/** Pids of `root` and its descendants, from /proc (a process forked while this reads may be missed). */
function processTree(root: number): number[] {
    const children = new Map<number, number[]>()
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue
        let stat: string
        try {
            stat = readFileSync(`/proc/${entry}/stat`, "utf8")
        } catch {
            continue
        }
        // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
        children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    }
    const tree: number[] = []
    const walk = (pid: number) => {
        tree.push(pid)
        for (const c of children.get(pid) ?? []) walk(c)
    }
    walk(root)
    return tree
}

/** Resident memory of `root` and its descendants, in bytes (VmRSS from /proc; 0 for a process gone meanwhile). */
export function treeRssBytes(root: number): number {
    let total = 0
    for (const pid of processTree(root)) {
        try {
            const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
            total += kb ? Number(kb[1]) * 1024 : 0
        } catch {
            // gone meanwhile
        }
    }
    return total
}

/** Starts a long-running server in our process group (see the module comment). */
export function startServer(command: string, args: string[], options: ServerOptions): ServerProcess {
    const child = spawn(command, args, {
        env: options.env,
        cwd: options.cwd,
        stdio: ["ignore", "pipe", "pipe"],
        ...asAccount(options.account),
    })
    let pending = ""
    const onData = (chunk: Buffer) => {
        const lines = (pending + chunk.toString("utf8")).split("\n")
        pending = lines.pop() ?? ""
        for (const l of lines) if (l.trim()) options.onLine?.(l)
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    const exited = new Promise<void>(resolve => {
        child.once("exit", () => resolve())
        // a spawn error (ENOENT) emits 'error' and maybe no 'exit'
        child.once("error", () => resolve())
    })
    const alive = () => child.exitCode === null && child.signalCode === null && child.pid !== undefined
    const signalTree = (signal: NodeJS.Signals) => {
        if (child.pid === undefined) return
        for (const pid of processTree(child.pid)) {
            try {
                process.kill(pid, signal)
            } catch {
                // gone already
            }
        }
    }
    return {
        process: child,
        exited,
        alive,
        signalTree,
    }
}

/** Runs a short-lived tool to completion; resolves with its output, rejects with it on a non-zero exit or after `timeoutMs`. */
export function runTool(command: string, args: string[], options: ServerOptions & { timeoutMs: number }): Promise<string> {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, {
            env: options.env,
            cwd: options.cwd,
            stdio: ["ignore", "pipe", "pipe"],
            timeout: options.timeoutMs,
            killSignal: "SIGKILL",
            ...asAccount(options.account),
        })
        let out = ""
        child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")))
        child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")))
        child.once("error", reject)
        child.once("close", (code, sig) => {
            if (code === 0) resolve(out)
            else reject(new Error(`${command} ${args.join(" ")} exited ${code ?? sig}: ${out.trim().slice(-1500)}`))
        })
    })
}
