/**
 * The RabbitMQ auth backend's cost: every node asks the registry twice per
 * CONNECT, about five times per QoS 1 SUBSCRIBE and three times for the first
 * PUBLISH to a topic (devs/broker/rabbitmq-auth.ts), so its answers per
 * second bound how fast a fleet reconnects after a node is lost. Measured as
 * a node asks: HTTPS with a client certificate, a kept-alive connection per
 * asker; the baseline, in the same run, is a bare HTTPS server with the same
 * certificates and TLS policy answering `allow` at once. The ratio is the
 * registry's own work (parsing, the logins' SQLite lookups, the rules).
 */
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { Agent, createServer, request, type Server } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RabbitAuthPolicy, serveRabbitAuth } from "../broker/rabbitmq-auth.ts"
import { passwordHash, SqliteBrokerLogins } from "../broker/rabbitmq-logins.ts"
import { freePort } from "../net/ports.ts"
import { TLS_SERVER_OPTIONS } from "../net/tls.ts"
import { ensureClientCertificate, ensurePki } from "../stack/pki.ts"

/** Auth checks per second with 1 and 4 concurrent askers, the registry's backend against a bare HTTPS server. */
export async function brokerAuthRate() {
    const dir = mkdtempSync(join(tmpdir(), "bench-broker-auth-"))
    const pki = ensurePki(join(dir, "pki"))
    const client = ensureClientCertificate(pki, "sentinel-broker")
    const ca = readFileSync(pki.caCert)
    const tls = { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) }
    const logins = new SqliteBrokerLogins(join(dir, "logins.db"))
    const device = randomBytes(16).toString("hex")
    const password = randomBytes(24).toString("base64url")
    await logins.put({ username: device, passwordHash: passwordHash(password), expiresAt: Date.now() + 3_600_000 })
    const policy = new RabbitAuthPolicy(logins, { brokerAdminHash: async () => undefined })
    const servers: Server[] = [
        serveRabbitAuth({ policy, tls: { ...tls, clientCa: ca }, event: () => {} }),
        createServer(
            { ...tls, ...TLS_SERVER_OPTIONS, ca, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 30_000 },
            (req, res) => {
                req.resume()
                req.on("end", () => res.end("allow"))
            }
        ),
    ]
    const [backend, bare] = await Promise.all(
        servers.map(async server => {
            const port = await freePort()
            await new Promise<void>(r => server.listen(port, "127.0.0.1", () => r()))
            return port
        })
    )
    // a CONNECT's two checks and a publish's topic check, in turn
    const checks: { path: string; fields: Record<string, string> }[] = [
        { path: "/user", fields: { username: device, password, vhost: "/", client_id: device } },
        { path: "/vhost", fields: { username: device, vhost: "/", ip: "127.0.0.1", tags: "", client_id: device } },
        {
            path: "/topic",
            fields: {
                username: device,
                vhost: "/",
                resource: "topic",
                name: "amq.topic",
                permission: "write",
                tags: "",
                routing_key: `things.${device}.up.readings`,
                "variable_map.client_id": device,
            },
        },
    ]
    const bodies = checks.map(b => ({ path: b.path, body: new URLSearchParams(b.fields).toString() }))
    const key = readFileSync(client.key)
    const cert = readFileSync(client.cert)
    const ask = (agent: Agent, port: number, i: number) =>
        new Promise<boolean>((resolve, reject) => {
            const { path, body } = bodies[i % bodies.length]
            const req = request(
                { host: "localhost", port, path, method: "POST", agent, headers: { "content-length": Buffer.byteLength(body) } },
                res => {
                    let text = ""
                    res.on("data", c => (text += c))
                    res.on("end", () => resolve(text === "allow"))
                }
            )
            req.on("error", reject)
            req.end(body)
        })
    const measure = async (port: number, askers: number) => {
        let count = 0
        const until = Date.now() + 2000
        await Promise.all(
            Array.from({ length: askers }, async () => {
                const agent = new Agent({ keepAlive: true, maxSockets: 1, ca, key, cert })
                for (let i = 0; Date.now() < until; i++) if (await ask(agent, port, i)) count++
                agent.destroy()
            })
        )
        return count / 2
    }
    for (const askers of [1, 4]) {
        const base = await measure(bare, askers)
        const answered = await measure(backend, askers)
        console.log(
            `broker auth checks/s (user, vhost, topic in turn) with ${askers} kept-alive asker(s): ${answered.toFixed(0)}; ` +
                `bare HTTPS answering allow: ${base.toFixed(0)} (x${(answered / base).toFixed(2)})`
        )
    }
    for (const server of servers) {
        server.closeAllConnections()
        server.close()
    }
    await logins.close()
    rmSync(dir, { recursive: true, force: true })
}
