/**
 * A TLS endpoint in front of the broker, for tests: it presents whatever
 * certificate the test chooses (valid or one of the bad ones), pipes accepted
 * connections to the real broker over a second TLS connection, counts every byte a client sends after the
 * handshake, and can cut all connections or refuse new ones (a network outage).
 */
import type { Socket } from "node:net"
import { connect, createServer, type Server, type TLSSocket } from "node:tls"

/** Options of a front. */
export interface TlsFrontOptions {
    port: number
    /** The broker's TLS listener, and the CA its certificate chains to. */
    target: { host: string; port: number; ca: Buffer }
    cert: string
    key: string
}

/** A running front. */
export class TlsFront {
    /** Connections whose TLS handshake completed, and the bytes clients sent over them, per certificate label. */
    readonly handshakes = new Map<string, number>()
    readonly bytes = new Map<string, number>()
    /** Handshakes a client broke off (e.g. refused the certificate), per label. */
    readonly refusals = new Map<string, number>()
    private label = "valid"
    private down = false
    private readonly live = new Set<Socket>()
    private readonly server: Server

    private constructor(options: TlsFrontOptions) {
        this.server = createServer({ cert: options.cert, key: options.key }, (client: TLSSocket) => {
            const label = this.label
            this.handshakes.set(label, (this.handshakes.get(label) ?? 0) + 1)
            if (this.down) return void client.destroy()
            const upstream = connect({
                port: options.target.port,
                host: options.target.host,
                ca: options.target.ca,
                servername: "localhost",
            })
            this.live.add(client)
            this.live.add(upstream)
            client.on("data", (d: Buffer) => this.bytes.set(label, (this.bytes.get(label) ?? 0) + d.length))
            client.pipe(upstream).pipe(client)
            const end = () => {
                client.destroy()
                upstream.destroy()
                this.live.delete(client)
                this.live.delete(upstream)
            }
            client.on("error", end).on("close", end)
            upstream.on("error", end).on("close", end)
        })
        this.server.on("tlsClientError", () => this.refusals.set(this.label, (this.refusals.get(this.label) ?? 0) + 1))
    }

    static async start(options: TlsFrontOptions): Promise<TlsFront> {
        const front = new TlsFront(options)
        await new Promise<void>(resolve => front.server.listen(options.port, "127.0.0.1", () => resolve()))
        return front
    }

    /** Presents another certificate to new connections; `label` names it in the counters. */
    present(label: string, cert: string, key: string) {
        this.label = label
        this.server.setSecureContext({ cert, key })
    }

    /** Cuts every open connection, like a network failure. */
    cut() {
        for (const s of this.live) s.destroy()
        this.live.clear()
    }

    /** While down, new connections are dropped right after the handshake. */
    setDown(down: boolean) {
        this.down = down
        if (down) this.cut()
    }

    async stop() {
        this.cut()
        await new Promise<void>(resolve => this.server.close(() => resolve()))
    }
}
