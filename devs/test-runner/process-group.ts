/**
 * A test file as a process group: the file's process leads a group of its
 * own (`detached`, setsid(2)), and everything it starts (Mosquitto, the
 * DeviceScript simulator, a devtools server and the VM workers it forks)
 * joins that group unless it leaves on purpose. Killing the group kills them
 * all, so a file whose setup failed, that hung, or that forgot a child in
 * its `after` hook leaves nothing behind: the group is killed on timeout,
 * when the runner is interrupted, and in any case once the leader has ended.
 */
import { spawn } from "node:child_process"

/** What a finished group left behind. */
export interface GroupResult {
    /** The leader's exit code, or null when a signal ended it. */
    code: number | null
    /** stdout and stderr, interleaved as they came. */
    output: string
    /** Whether the time limit ended it. */
    timedOut: boolean
}

/** Options of `runInGroup`. */
export interface GroupOptions {
    cwd: string
    env?: NodeJS.ProcessEnv
    /** Kill the whole group after this many milliseconds. */
    timeoutMs: number
}

/** Groups running now (their leaders' pids, which are the group ids). */
const live = new Set<number>()

function killGroup(pgid: number) {
    try {
        process.kill(-pgid, "SIGKILL")
    } catch {
        // the group is already empty
    }
}

/** Kills every group still running (the runner calls it when interrupted). */
export function killAllGroups() {
    for (const pgid of live) killGroup(pgid)
    live.clear()
}

/** Runs `command args` as the leader of a new process group; resolves once the leader has ended and the group is killed. */
export function runInGroup(command: string, args: string[], options: GroupOptions): Promise<GroupResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
        const pgid = child.pid
        if (pgid === undefined) return reject(new Error(`${command} did not start`))
        live.add(pgid)
        let output = ""
        let timedOut = false
        child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")))
        child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")))
        const timer = setTimeout(() => {
            timedOut = true
            output += `\n[killed with its process group after ${options.timeoutMs / 1000} s]\n`
            killGroup(pgid)
        }, options.timeoutMs)
        child.on("error", reject)
        child.on("exit", code => {
            clearTimeout(timer)
            killGroup(pgid)
            live.delete(pgid)
            // the pipes close once the group is gone; a process that left the group and keeps them open is not waited for
            const done = () => resolve({ code, output, timedOut })
            const late = setTimeout(done, 5000)
            child.once("close", () => {
                clearTimeout(late)
                done()
            })
        })
    })
}
