/**
 * `npm run bench`: prints figures, asserts nothing.
 * - compiled bytecode size of the firmware, and bytes per reading batch as
 *   SenML-CBOR against SenML-JSON of the same records (devs/bench/firmware.ts);
 * - storage: a settings read and a write confirmed in flash (devs/bench/storage.ts);
 * - identity: SCRAM cost on the device, time to first enrollment in the
 *   simulator, registry SCRAM logins per second, the time to refuse a claim
 *   of a claimed, an unclaimed and an unknown device (devs/bench/identity.ts);
 * - uplink: bytes on the wire per reading, COSE + SenML-CBOR over MQTT vs
 *   SenML-JSON over MQTT; latency sensor -> consumer; consumer throughput vs
 *   raw Mosquitto delivery (devs/bench/uplink.ts);
 * - updates: SLH-DSA verification on the VM, manifest and signature sizes, a
 *   whole v1 -> v2 update in the simulator, bytes deployed (devs/bench/update.ts).
 */
import { bytecode, packSizes } from "../bench/firmware.ts"
import { claimRefusalTimes, deviceScramCost, registryLoginRate, timeToEnrollment } from "../bench/identity.ts"
import { settingsCost } from "../bench/storage.ts"
import { slhDsaOnDevice, updateEndToEnd } from "../bench/update.ts"
import { consumerThroughput, uplinkWireAndLatency } from "../bench/uplink.ts"
import { runCommand } from "../cli/args.ts"

const spec = {
    name: "bench",
    summary: "Measures the firmware and the services and prints figures (sizes, times, rates, ratios against baselines of the same run).",
    options: {},
} as const

await runCommand(spec, async () => {
    await bytecode()
    await packSizes()
    await settingsCost()
    await deviceScramCost()
    await timeToEnrollment()
    await registryLoginRate()
    await claimRefusalTimes()
    await uplinkWireAndLatency()
    await consumerThroughput()
    await slhDsaOnDevice()
    await updateEndToEnd()
})
