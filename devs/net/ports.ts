/** Free loopback ports for services the stack and the tests start. */
import { createConnection, createServer } from "node:net"

/** Asks the OS for a free port on 127.0.0.1 (free when asked; used at once). */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = createServer()
        srv.once("error", reject)
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as { port: number }).port
            srv.close(() => resolve(port))
        })
    })
}

/** Resolves once something accepts connections on 127.0.0.1:`port`; rejects after `timeoutMs`, or when `signal` aborts. */
export function waitForPort(port: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs
    return new Promise((resolve, reject) => {
        const attempt = () => {
            if (signal?.aborted) return reject(new Error(`stopped waiting for 127.0.0.1:${port}`))
            const s = createConnection({ host: "127.0.0.1", port })
            s.once("connect", () => {
                s.destroy()
                resolve()
            })
            s.once("error", () => {
                if (Date.now() > deadline) reject(new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`))
                else setTimeout(attempt, 100)
            })
        }
        attempt()
    })
}

/** Whether something accepts connections on 127.0.0.1:`port` now. */
export function portInUse(port: number): Promise<boolean> {
    return new Promise(resolve => {
        const s = createConnection({ host: "127.0.0.1", port })
        s.once("connect", () => {
            s.destroy()
            resolve(true)
        })
        s.once("error", () => resolve(false))
    })
}
