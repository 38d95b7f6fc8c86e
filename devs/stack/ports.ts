/** Free loopback ports for services the stack and the tests start. */
import { createServer } from "node:net"

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
