/**
 * A RabbitMQ cluster on this machine (RabbitMQ 3.10, Debian `rabbitmq-server`):
 * N nodes with MQTT 3.1.1 over TLS only, every login and permission asked of
 * the registry through `rabbitmq_auth_backend_http` (./rabbitmq-auth.ts), and
 * the management API on loopback, through which the registry closes the
 * sessions of expired passwords (./rabbitmq-access.ts).
 *
 * How the nodes find each other, and why each cluster has its own epmd: an
 * Erlang node registers its name and distribution port with the Erlang Port
 * Mapper Daemon on its host, and `rabbit-b@localhost` is reached by asking
 * epmd at localhost:ERL_EPMD_PORT (default 4369) where `rabbit-b` listens. Two
 * clusters sharing one epmd collide on node names, and the epmd `erl` forks
 * by itself (`epmd -daemon`) calls setsid and outlives the run. So each
 * cluster starts its own epmd on a free port, gives every node and every CLI
 * call ERL_EPMD_PORT, and passes `-start_epmd false` so no node forks another.
 *
 * Everything a node reads comes from RABBITMQ_* variables pointing into the
 * cluster's temporary folder, owned by the `rabbitmq` account the nodes run
 * as: the cookie (HOME), rabbitmq.conf, advanced.config (TLS to the auth
 * service: 3.10's rabbitmq.conf has no `auth_http.ssl_options`), the enabled
 * plugins, the data (mnesia, quorum logs) and the logs. The system's node
 * (/etc/rabbitmq, /var/lib/rabbitmq) is never read: RABBITMQ_CONF_ENV_FILE is
 * an empty file, and the server runs from /usr/lib/rabbitmq/bin, not through
 * the /usr/sbin wrappers (they `su` to rabbitmq with the system's HOME and cookie).
 *
 * Sessions: `mqtt.durable_queue_type = quorum` makes the queue of a
 * persistent session (clean session = 0) a quorum queue, replicated on every
 * node by Raft: a QoS 1 message the broker acknowledged survives the death of
 * any one node. A clean session's queue stays a classic, auto-deleted one on
 * the node it was made on (devices use clean sessions and only publish; the
 * owner's session is persistent). Delivery is at least once: the owner drops
 * copies by (device, COSE counter) (devs/owner/consumer.ts).
 *
 * Forming the cluster: the first node boots alone; then the others boot at
 * once, each configured to find the first (peer discovery, `classic_config`),
 * so they join it while booting, and their MQTT plugins join its client-id
 * tracker (a Raft cluster, `mqtt_node`). Booting all at once is slower in the
 * end: in some runs a node's plugin made a tracker of its own and never joined
 * the others', and CONNECTs to it timed out (`join_cluster` after the boot
 * repairs that, at twice the time). The cluster is ready once every node sees
 * all nodes in the tracker. A node killed later is started again from its
 * folder and rejoins by itself. All of it
 * runs in the caller's process group (./server-process.ts): `stop()` removes
 * the folder, and a killed test leaves nothing running.
 */
import { randomBytes } from "node:crypto"
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { freePorts, waitForPort } from "../net/ports.ts"
import { RABBITMQ_TLS_LINES } from "../net/tls.ts"
import {
    chownTree,
    removeDir,
    runTool,
    serviceAccount,
    startServer,
    tempDirFor,
    treeRssBytes,
    type ServerProcess,
} from "./server-process.ts"

/** Where the Debian package keeps RabbitMQ's scripts (not the /usr/sbin wrappers). */
const RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"

/** The ports of one node, all on 127.0.0.1. */
export interface RabbitNodePorts {
    /** AMQP 0-9-1 (unused by us, but every node has one). */
    amqp: number
    /** Erlang distribution: node-to-node and CLI traffic. */
    dist: number
    /** MQTT over TLS: what devices and owners connect to. */
    mqtts: number
    /** The management API (plain HTTP, loopback only). */
    management: number
}

/** Files the nodes need (PEM). */
export interface RabbitTlsFiles {
    /** The MQTT listener's certificate and key, and the CA it chains to. */
    caCert: string
    serverCert: string
    serverKey: string
    /** The certificate and key the nodes present to the auth service, which checks them against `caCert`. */
    clientCert: string
    clientKey: string
}

/** Options of `startRabbitCluster`. */
export interface RabbitClusterOptions {
    /** Number of nodes (default 3). */
    nodes?: number
    tls: RabbitTlsFiles
    /** The auth service's base URL (`https://…`): nodes POST to `<base>/user`, `/vhost`, `/resource`, `/topic`. */
    authUrl: string
    /** Receives each log line of each node. */
    onLog?: (node: string, line: string) => void
    /** Longest boot of one node (default 120 s: three nodes booting on two cores are slow). */
    bootTimeoutMs?: number
}

/** One node. */
export interface RabbitNode {
    name: string
    ports: RabbitNodePorts
    alive(): boolean
    /** Resident memory of the node's processes (the Erlang VM and what it forked), in bytes; 0 when down. */
    rssBytes(): number
}

/** A running cluster. */
export interface RabbitCluster {
    nodes: RabbitNode[]
    /** Where each node's MQTT-over-TLS listener is, in node order. */
    mqttEndpoints: { host: string; port: number }[]
    /** Each node's management API base URL, in node order. */
    managementUrls: string[]
    /** Milliseconds from the start until all nodes had booted, and until they were one cluster. */
    timings: { bootMs: number; totalMs: number }
    /** Runs `rabbitmqctl -n <node i> …args` and returns its output. */
    ctl(i: number, args: string[]): Promise<string>
    /** Kills node `i` at once (SIGKILL to its process tree): a crash, not a shutdown. */
    killNode(i: number): Promise<void>
    /** Starts node `i` again from its folder; it rejoins the cluster. Resolves once its MQTT listener accepts. */
    startNode(i: number): Promise<void>
    /** Stops every node and epmd, then removes the folder. */
    stop(): Promise<void>
    /** Kills every node and epmd and removes the folder, synchronously: for an `exit` hook, where nothing may be awaited. */
    kill(): void
}

/** Quotes a string for an Erlang term file. */
function erlString(s: string): string {
    return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`
}

function nodeConfig(ports: RabbitNodePorts, tlsDir: string, authUrl: string, first: string): string {
    return [
        "# written by devs/broker/rabbitmq-cluster.ts",
        `listeners.tcp.default = 127.0.0.1:${ports.amqp}`,
        // every login, vhost, resource and topic decision comes from the registry, none from RabbitMQ's own users
        "auth_backends.1 = http",
        "auth_http.http_method = post",
        ...["user", "vhost", "resource", "topic"].map(check => `auth_http.${check}_path = ${authUrl}/${check}`),
        "auth_http.request_timeout = 5000",
        "auth_http.connection_timeout = 5000",
        "mqtt.listeners.tcp = none",
        `mqtt.listeners.ssl.default = 127.0.0.1:${ports.mqtts}`,
        "mqtt.allow_anonymous = false",
        "mqtt.vhost = /",
        "mqtt.exchange = amq.topic",
        "mqtt.durable_queue_type = quorum",
        `ssl_options.cacertfile = ${join(tlsDir, "ca.pem")}`,
        `ssl_options.certfile = ${join(tlsDir, "server.pem")}`,
        `ssl_options.keyfile = ${join(tlsDir, "server.key")}`,
        // devices log in with a password, not a client certificate
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
        ...RABBITMQ_TLS_LINES,
        // a node cut off from the others pauses rather than diverging (three nodes: a minority is one)
        "cluster_partition_handling = pause_minority",
        "cluster_formation.peer_discovery_backend = classic_config",
        `cluster_formation.classic_config.nodes.1 = ${first}`,
        "management.tcp.ip = 127.0.0.1",
        `management.tcp.port = ${ports.management}`,
        "log.console = true",
        "log.console.level = warning",
        "log.file.level = info",
        "",
    ].join("\n")
}

/** TLS to the auth service: its certificate checked against our CA and its name, and our client certificate presented. */
function advancedConfig(tlsDir: string, authUrl: string): string {
    const host = new URL(authUrl).hostname
    const sni = /^[\d.]+$/.test(host) ? "" : `, {server_name_indication, ${erlString(host)}}`
    return (
        `[{rabbitmq_auth_backend_http, [{ssl_options, [` +
        `{cacertfile, ${erlString(join(tlsDir, "ca.pem"))}}, {verify, verify_peer}, {depth, 3}${sni}` +
        `, {certfile, ${erlString(join(tlsDir, "client.pem"))}}, {keyfile, ${erlString(join(tlsDir, "client.key"))}}` +
        `, {versions, ['tlsv1.3', 'tlsv1.2']}` +
        `, {customize_hostname_check, [{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}` +
        `]}]}].\n`
    )
}

/** Starts a cluster as the module comment describes; on any failure stops what started and throws. */
export async function startRabbitCluster(options: RabbitClusterOptions): Promise<RabbitCluster> {
    const t0 = performance.now()
    const n = options.nodes ?? 3
    if (!Number.isInteger(n) || n < 1 || n > 9) throw new RangeError("a cluster has 1..9 nodes")
    const authUrl = new URL(options.authUrl)
    // the URL is written into rabbitmq.conf as it is
    if (authUrl.protocol !== "https:" || /[\s"\\]/.test(options.authUrl))
        throw new Error("the auth URL must be https:// without spaces or quotes")
    const base = options.authUrl.replace(/\/+$/, "")
    const names = Array.from({ length: n }, (_, i) => `rabbit-${"abcdefghi"[i]}@localhost`)
    const free = await freePorts(1 + 4 * n)
    const epmdPort = free[0]
    const ports: RabbitNodePorts[] = names.map((_, i) => ({
        amqp: free[1 + 4 * i],
        dist: free[2 + 4 * i],
        mqtts: free[3 + 4 * i],
        management: free[4 + 4 * i],
    }))
    const account = serviceAccount("rabbitmq")
    const dir = tempDirFor("rabbit-cluster-", account)
    const servers: (ServerProcess | undefined)[] = new Array(n).fill(undefined)
    const logs: string[][] = names.map(() => [])
    let epmd: ServerProcess | undefined
    const kill = () => {
        for (const s of servers) s?.signalTree("SIGKILL")
        epmd?.signalTree("SIGKILL")
    }
    const stopAll = async () => {
        kill()
        await Promise.all([...servers, epmd].map(s => s?.exited))
        removeDir(dir)
    }

    try {
        const tlsDir = join(dir, "tls")
        mkdirSync(tlsDir)
        copyFileSync(options.tls.caCert, join(tlsDir, "ca.pem"))
        copyFileSync(options.tls.serverCert, join(tlsDir, "server.pem"))
        copyFileSync(options.tls.serverKey, join(tlsDir, "server.key"))
        copyFileSync(options.tls.clientCert, join(tlsDir, "client.pem"))
        copyFileSync(options.tls.clientKey, join(tlsDir, "client.key"))
        // Erlang accepts a cookie file only if its owner alone can read it
        writeFileSync(join(dir, ".erlang.cookie"), randomBytes(24).toString("hex").toUpperCase(), { mode: 0o400 })
        writeFileSync(join(dir, "empty-env.conf"), "")
        const nodeDirs = names.map((name, i) => {
            const nd = join(dir, name.split("@")[0])
            mkdirSync(nd)
            writeFileSync(join(nd, "rabbitmq.conf"), nodeConfig(ports[i], tlsDir, base, names[0]))
            writeFileSync(join(nd, "advanced.config"), advancedConfig(tlsDir, base))
            writeFileSync(join(nd, "enabled_plugins"), "[rabbitmq_mqtt,rabbitmq_auth_backend_http,rabbitmq_management].\n")
            return nd
        })
        chownTree(dir, account)

        // nothing inherited but PATH
        const common: NodeJS.ProcessEnv = {
            PATH: process.env.PATH,
            HOME: dir,
            LANG: "C.UTF-8",
            LC_ALL: "C.UTF-8",
            ERL_EPMD_PORT: String(epmdPort),
            ERL_EPMD_ADDRESS: "127.0.0.1",
            RABBITMQ_CONF_ENV_FILE: join(dir, "empty-env.conf"),
            RABBITMQ_USE_LONGNAME: "false",
        }
        const erlArgs = "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
        const nodeEnv = (i: number): NodeJS.ProcessEnv => ({
            ...common,
            RABBITMQ_NODENAME: names[i],
            RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
            RABBITMQ_NODE_PORT: String(ports[i].amqp),
            RABBITMQ_DIST_PORT: String(ports[i].dist),
            RABBITMQ_CONFIG_FILE: join(nodeDirs[i], "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE: join(nodeDirs[i], "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE: join(nodeDirs[i], "enabled_plugins"),
            RABBITMQ_MNESIA_BASE: join(nodeDirs[i], "mnesia"),
            RABBITMQ_LOG_BASE: join(nodeDirs[i], "log"),
            RABBITMQ_PID_FILE: join(nodeDirs[i], "pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: erlArgs,
        })
        const ctl = (i: number, args: string[]) =>
            runTool(join(RABBITMQ_BIN, "rabbitmqctl"), ["-n", names[i], ...args], {
                account,
                cwd: dir,
                env: {
                    ...common,
                    RABBITMQ_CTL_ERL_ARGS: erlArgs,
                    // the CLI's own distribution listener on an ephemeral port (the default 35672-35682 is shared by all runs)
                    RABBITMQ_CTL_DIST_PORT_MIN: "0",
                    RABBITMQ_CTL_DIST_PORT_MAX: "0",
                    // the CLI offers a plugin's commands only if it reads the node's enabled_plugins
                    RABBITMQ_ENABLED_PLUGINS_FILE: join(nodeDirs[i], "enabled_plugins"),
                },
                timeoutMs: 120_000,
            })

        epmd = startServer("epmd", ["-port", String(epmdPort), "-address", "127.0.0.1"], { account, env: common })
        await waitUp(epmd, epmdPort, 5000, "epmd")
        const bootTimeout = options.bootTimeoutMs ?? 120_000
        const startNode = async (i: number) => {
            logs[i].length = 0
            const server = startServer(join(RABBITMQ_BIN, "rabbitmq-server"), [], {
                account,
                cwd: nodeDirs[i],
                env: nodeEnv(i),
                onLine: line => {
                    logs[i].push(line)
                    if (logs[i].length > 100) logs[i].shift()
                    options.onLog?.(names[i], line)
                },
            })
            servers[i] = server
            try {
                await waitUp(server, ports[i].mqtts, bootTimeout, names[i])
                await waitUp(server, ports[i].management, bootTimeout, names[i])
            } catch (e) {
                throw new Error(`${(e as Error).message}\n${logs[i].slice(-15).join("\n")}`, { cause: e })
            }
        }
        await startNode(0)
        await Promise.all(names.slice(1).map((_, i) => startNode(i + 1)))
        const bootMs = performance.now() - t0
        // every node's client-id tracker lists all nodes
        const trackerReady = async (i: number) => {
            // a node still starting its plugins answers with an error: not ready yet
            const out = await ctl(i, ["eval", "ra:members({mqtt_node, node()})."]).catch(() => "")
            const members = /^\{ok,\[([^\]]*)\]/.exec(out.trim())?.[1] ?? ""
            return names.every(name => members.includes(`'${name}'`))
        }
        const awaitTrackers = async (which: number[]) => {
            const deadline = Date.now() + bootTimeout
            while (!(await Promise.all(which.map(trackerReady))).every(Boolean)) {
                if (Date.now() > deadline) throw new Error("the MQTT client-id tracker did not reach every node")
                await new Promise(resolve => setTimeout(resolve, 500))
            }
        }
        await awaitTrackers(names.map((_, i) => i))
        const checkIndex = (i: number) => {
            if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`no node ${i} in a cluster of ${n}`)
        }
        return {
            nodes: names.map((name, i) => ({
                name,
                ports: ports[i],
                alive: () => servers[i]?.alive() ?? false,
                rssBytes: () => {
                    const pid = servers[i]?.alive() ? servers[i]?.process.pid : undefined
                    return pid === undefined ? 0 : treeRssBytes(pid)
                },
            })),
            mqttEndpoints: ports.map(p => ({ host: "localhost", port: p.mqtts })),
            managementUrls: ports.map(p => `http://127.0.0.1:${p.management}`),
            timings: { bootMs, totalMs: performance.now() - t0 },
            ctl,
            async killNode(i) {
                checkIndex(i)
                servers[i]?.signalTree("SIGKILL")
                await servers[i]?.exited
            },
            async startNode(i) {
                checkIndex(i)
                if (servers[i]?.alive()) throw new Error(`${names[i]} is running`)
                await startNode(i)
                await awaitTrackers([i])
            },
            stop: stopAll,
            kill() {
                kill()
                removeDir(dir)
            },
        }
    } catch (e) {
        await stopAll()
        throw e
    }
}

/** Waits until `port` accepts, failing at once if `server` exits first. */
async function waitUp(server: ServerProcess, port: number, timeoutMs: number, what: string) {
    const abort = new AbortController()
    void server.exited.then(() => abort.abort())
    try {
        await waitForPort(port, timeoutMs, abort.signal)
    } catch (e) {
        throw new Error(server.alive() ? (e as Error).message : `${what} exited during boot`, { cause: e })
    }
}
