/**
 * Fail-over on a three-node RabbitMQ cluster: the real firmware in the
 * simulator, told every node by the registry, publishes sealed readings; its
 * owner follows them in a persistent session (a quorum queue on all three
 * nodes). The node the device is connected to is killed (SIGKILL, a crash):
 * the device reconnects to another node, and every reading it sealed up to
 * the last one delivered reaches the owner exactly once. The broker delivers
 * at least once, so copies may arrive: the owner drops them by (device, COSE
 * counter) in its window; the test prints how many it saw before that.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, before, describe, test } from "node:test"
import { SimulatedDevice } from "../../devs/sim/simulated-device.ts"
import { until } from "../../devs/sim/until.ts"
import { startClusterStack, type ClusterStack } from "../../devs/stack/cluster.ts"

const dir = mkdtempSync(join(tmpdir(), "cluster-failover-"))
const transcript: string[] = []
let stack: ClusterStack

before(async () => {
    stack = await startClusterStack({
        dir,
        nodes: 3,
        onLog: (s, l) => transcript.push(`${s} ${l}`),
    })
})

after(async () => {
    await stack?.stop()
    rmSync(dir, { recursive: true, force: true })
})

/** What the device and its owner did lately (the cluster's own log left out), for a failure's message. */
const story = () =>
    transcript
        .filter(l => !/^rabbit-/.test(l))
        .slice(-25)
        .join("\n")

/** The port of the node the device last said it connected to, from line `from` on. */
function connectedPort(device: SimulatedDevice, from = 0): number | undefined {
    const lines = device.lines.slice(from).filter(l => /^uplink: connected to /.test(l))
    const last = lines[lines.length - 1]
    return last === undefined ? undefined : Number(/:(\d+)$/.exec(last)![1])
}

describe("RabbitMQ cluster fail-over", () => {
    test("kill the device's node: it reconnects to another, and every sealed reading reaches the owner exactly once", async () => {
        const device = new SimulatedDevice({ stack, dir, transcript })
        device.run()
        try {
            const readings = () => device.verified.filter(m => m.kind === "readings").length
            await until(
                () => `three reading messages at the owner (${readings()} so far; last lines:\n${story()})`,
                () => readings() >= 3,
                90_000
            )
            const port = connectedPort(device)
            const victim = stack.cluster.nodes.findIndex(n => n.ports.mqtts === port)
            assert.ok(victim >= 0, `the device names a node of the cluster (port ${port})`)

            const mark = device.lines.length
            const killedAt = Date.now()
            await stack.cluster.killNode(victim)
            await until("the device on another node", () => connectedPort(device, mark) !== undefined, 60_000)
            const backMs = Date.now() - killedAt
            const newPort = connectedPort(device, mark)!
            assert.notEqual(newPort, port)
            assert.ok(stack.cluster.nodes.some((n, i) => i !== victim && n.alive() && n.ports.mqtts === newPort))

            // readings sealed after the reconnect arrive too: the owner's session moved with its queue
            const sealedAfter = Math.max(...device.sealed())
            await until("readings sealed after the fail-over", () => device.verified.some(m => m.counter >= sealedAfter + 3), 60_000)
            await device.owner.drain()

            // from the first delivered: what the device sealed before the owner's queue existed (it subscribes once its
            // claim returns, while the device may already publish) never had a queue to wait in, on any broker
            const got = device.verified.map(m => m.counter).sort((a, b) => a - b)
            const [first, last] = [got[0], got[got.length - 1]]
            const expected = device.sealed().filter(c => c >= first && c <= last)
            const lost = expected.filter(c => !got.includes(c))
            const copies = device.rejected.filter(r => r.rejection.reason === "replayed").length
            console.log(
                `measured cluster-failover: 3 nodes up in ${(stack.cluster.timings.totalMs / 1000).toFixed(1)} s; device back on another ` +
                    `node ${(backMs / 1000).toFixed(1)} s after the kill; ${expected.length} sealed (counters ${first}..${last}), ` +
                    `${got.length} delivered, ${lost.length} lost, ${copies} duplicates before dedup`
            )
            assert.deepEqual(lost, [], "nothing sealed up to the last delivered counter is missing")
            assert.deepEqual(got, expected, "each sealed message delivered once")
            // what the owner refused was a copy of one it had, never anything else
            assert.deepEqual(
                device.rejected.filter(r => r.rejection.reason !== "replayed").map(r => r.rejection.message),
                []
            )

            // the killed node, started again from its folder, rejoins the cluster by itself
            await stack.cluster.startNode(victim)
            const status = JSON.parse(await stack.cluster.ctl(victim, ["cluster_status", "--formatter", "json"])) as {
                running_nodes: string[]
            }
            assert.deepEqual(status.running_nodes.sort(), stack.cluster.nodes.map(n => n.name).sort())
        } finally {
            await device.stop()
        }
    })
})
