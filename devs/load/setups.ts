/**
 * The two deployments the load test compares, each started on loopback in a
 * folder of its own and stopped with everything it started:
 *
 * - `embedded`: what `npm start` runs (devs/stack/local.ts): Mosquitto, the
 *   registry on its SQLite file, one registry;
 * - `cluster`: a three-node RabbitMQ cluster (devs/stack/cluster.ts) with the
 *   registry on a throwaway PostgreSQL (devs/stack/pg-cluster.ts), and a
 *   second registry as a process of its own (`npm run registry`) on the same
 *   database: devices enroll and log in at both in turn, and connect to every
 *   node in turn. The nodes ask the first registry's auth backend; the second
 *   one's broker logins and its management login go into the shared
 *   database, so the first backend accepts both.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { freePort } from "../net/ports.ts"
import { PROJECT_ROOT, stackFiles } from "../project.ts"
import { runOwnerService, type RunningOwner } from "../owner/run.ts"
import { treeRssBytes } from "../broker/server-process.ts"
import { startClusterStack } from "../stack/cluster.ts"
import { startLocalStack, type Endpoint } from "../stack/local.ts"
import { startPgCluster } from "../stack/pg-cluster.ts"

/** The deployments by name. */
export enum SetupName {
    Embedded = "embedded",
    Cluster = "cluster",
}

/** A running deployment with its owner service. */
export interface RunningSetup {
    name: SetupName
    ca: Buffer
    /** The registries' HTTPS base URLs: device `i` uses the one at `i % length`. */
    registryUrls: string[]
    /** The broker's MQTT-over-TLS endpoints: device `i` uses the one at `i % length`. */
    brokerUrls: string[]
    owner: RunningOwner
    /** Resident memory of the broker's processes (every node), in bytes. */
    brokerRssBytes(): number
    stop(): Promise<void>
    /** Kills what can be killed at once, synchronously: for an `exit` hook. */
    kill(): void
}

const mqttsUrl = (e: Endpoint) => `mqtts://${e.host}:${e.port}`

/** Starts `name` in `dir`; on failure stops what started and throws. */
export async function startSetup(name: SetupName, dir: string, log: (line: string) => void): Promise<RunningSetup> {
    const stops: (() => unknown)[] = []
    const kills: (() => void)[] = []
    const stop = async () => {
        for (const s of stops.splice(0).reverse()) await s()
    }
    try {
        let registryUrls: string[]
        let brokerNodes: Endpoint[]
        let brokerRssBytes: () => number
        let ca: Buffer
        if (name === SetupName.Embedded) {
            const stack = await startLocalStack({ dir, onLog: () => {} })
            stops.push(() => stack.stop())
            kills.push(() => stack.killBroker())
            ca = readFileSync(stack.pki.caCert)
            registryUrls = [`https://localhost:${stack.registryPort}`]
            brokerNodes = stack.mqtt.endpoints
            brokerRssBytes = () => treeRssBytes(stack.broker.process.pid!)
        } else {
            const pg = await startPgCluster(await freePort())
            stops.push(() => pg.stop())
            const database = await pg.createDatabase("fleet")
            log(`  ${name}: PostgreSQL up; starting three RabbitMQ nodes`)
            const stack = await startClusterStack({ dir, nodes: 3, database, onLog: () => {} })
            stops.push(() => stack.stop())
            kills.push(() => stack.killBroker())
            ca = readFileSync(stack.pki.caCert)
            const second = await startSecondRegistry(dir, database, stack.cluster.mqttEndpoints, stack.cluster.managementUrls)
            stops.push(() => second.stop())
            kills.push(() => second.child.kill("SIGKILL"))
            registryUrls = [`https://localhost:${stack.registryPort}`, second.url]
            brokerNodes = stack.cluster.mqttEndpoints
            brokerRssBytes = () => stack.cluster.nodes.reduce((sum, n) => sum + n.rssBytes(), 0)
        }
        const owner = await runOwnerService({
            storePath: join(dir, "owner", "owner.db"),
            tokenPath: join(dir, "owner", "api-token"),
            name: "load",
            registryUrl: registryUrls[0],
            ca,
            brokerNodes,
            port: 0,
            log: () => {},
        })
        stops.push(() => owner.stop())
        return {
            name,
            ca,
            registryUrls,
            brokerUrls: brokerNodes.map(mqttsUrl),
            owner,
            brokerRssBytes,
            stop,
            kill: () => kills.forEach(k => k()),
        }
    } catch (e) {
        await stop()
        throw e
    }
}

/** `npm run registry` on the cluster's database (its broker logins with it), as a second instance; resolves once it listens. */
async function startSecondRegistry(
    dir: string,
    database: string,
    nodes: Endpoint[],
    managementUrls: string[]
): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
    const files = stackFiles(dir)
    const url = new URL(database)
    const password = decodeURIComponent(url.password)
    url.password = ""
    const port = await freePort()
    const args = ["--import", "tsx", join(PROJECT_ROOT, "devs", "bin", "registry.ts")]
    args.push("--cert", join(files.pki, "server.crt"), "--key", join(files.pki, "server.key"), "--port", String(port))
    args.push("--database", url.toString(), "--auth-client-ca", files.caCert)
    args.push("--rabbitmq-nodes", nodes.map(n => `${n.host}:${n.port}`).join(","), "--rabbitmq-management", managementUrls.join(","))
    args.push("--auth-port", String(await freePort()))
    // the database password in the environment, never in argv
    const child = spawn(process.execPath, args, {
        cwd: PROJECT_ROOT,
        env: { ...process.env, PGPASSWORD: password },
        stdio: ["ignore", "pipe", "pipe"],
    })
    let output = ""
    await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the second registry did not start in 60 s: ${output.slice(-300)}`)), 60_000)
        const onData = (c: Buffer) => {
            output += c
            if (/registry listening on/.test(output)) {
                clearTimeout(timer)
                resolve()
            }
        }
        child.stdout!.on("data", onData)
        child.stderr!.on("data", onData)
        child.once("exit", code => {
            clearTimeout(timer)
            reject(new Error(`the second registry exited ${code}: ${output.slice(-300)}`))
        })
    })
    const exited = new Promise<void>(resolve => (child.exitCode !== null ? resolve() : child.once("exit", () => resolve())))
    return {
        url: `https://localhost:${port}`,
        child,
        stop: async () => {
            child.kill("SIGTERM")
            const timer = setTimeout(() => child.kill("SIGKILL"), 5000)
            await exited
            clearTimeout(timer)
        },
    }
}
