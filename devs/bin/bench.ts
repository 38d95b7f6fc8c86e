/**
 * `npm run bench`: prints figures, asserts nothing.
 * - each firmware image's bytecode per folder against the 64 KB goal and the
 *   budget, the VM heap left free at the heaviest moments, and bytes per
 *   reading batch as SenML-CBOR against plain SenML-JSON (devs/bench/firmware.ts);
 * - storage: a settings read and a write confirmed in flash (devs/bench/storage.ts);
 * - identity: PBKDF2 and SCRAM cost on the device (PBKDF2 against the textbook
 *   loop in the same run), time to first enrollment and TLS handshakes per
 *   login in the simulator, registry SCRAM logins per second against a bare
 *   HTTPS endpoint, the time to refuse a claim of a claimed, an unclaimed and
 *   an unknown device (devs/bench/identity.ts);
 * - uplink: bytes on the wire per reading, COSE + SenML-CBOR over MQTT vs
 *   plain SenML-JSON over MQTT; claim -> first reading; latency sensor ->
 *   owner service (devs/bench/uplink.ts);
 * - owner service: messages verified, decrypted and stored per second vs raw
 *   Mosquitto delivery (devs/bench/owner.ts);
 * - updates: SLH-DSA verification on the VM against its hash floor, manifest and
 *   signature sizes, a whole v1 -> v2 update in the simulator, bytes deployed (devs/bench/update.ts);
 * - fleet: set-up of 1000 emulated devices, one release through the default
 *   stages (per stage and in all, offers per second), the API's latency during
 *   it against the idle service, COSE bytes per updated device (devs/bench/fleet.ts);
 * - rollouts through real simulators: one release through N devices (per stage, as
 *   ratios to the canary alone, and in all) and one device's memory; with
 *   `--largest-fleet`, the most simulators this machine keeps up (devs/bench/rollout-real.ts);
 * - broker: the RabbitMQ auth backend's checks per second against a bare HTTPS
 *   server (devs/bench/broker.ts);
 * - fuzzing: the count line of every campaign at npm test's size, with inputs per second (devs/fuzz).
 */
import { brokerAuthRate } from "../bench/broker.ts"
import { bytecode, packSizes, ramHeadroomFigures } from "../bench/firmware.ts"
import { claimRefusalTimes, deviceScramCost, registryLoginRate, timeToEnrollment } from "../bench/identity.ts"
import { settingsCost } from "../bench/storage.ts"
import { slhDsaOnDevice, updateEndToEnd } from "../bench/update.ts"
import { ownerThroughput } from "../bench/owner.ts"
import { fleetRollout } from "../bench/fleet.ts"
import { largestFleet, realRollout } from "../bench/rollout-real.ts"
import { uplinkWireAndLatency } from "../bench/uplink.ts"
import { runCommand, UsageError } from "../cli/args.ts"
import { defaultCampaignCounts } from "../fuzz/campaigns.ts"

const spec = {
    name: "bench",
    summary: "Measures the firmware and the services and prints figures (sizes, times, rates, ratios against baselines of the same run).",
    options: {
        "real-devices": { type: "string", value: "n", default: "5", help: "real simulators the rollout goes through, 1..20" },
        "largest-fleet": {
            type: "boolean",
            help: "also start simulators one by one until the machine no longer keeps up (takes most of an hour)",
        },
        "only-real": { type: "boolean", help: "run only the real-simulator figures (the rollout, and --largest-fleet)" },
    },
} as const

await runCommand(spec, async ({ values }) => {
    const realDevices = /^\d{1,2}$/.test(values["real-devices"]) ? Number(values["real-devices"]) : 0
    if (realDevices < 1 || realDevices > 20)
        throw new UsageError(`--real-devices must be 1..20, not ${JSON.stringify(values["real-devices"])}`)
    if (values["only-real"]) {
        await realRollout(realDevices)
        if (values["largest-fleet"]) await largestFleet()
        return
    }
    await bytecode()
    await ramHeadroomFigures()
    await packSizes()
    await settingsCost()
    await deviceScramCost()
    await timeToEnrollment()
    await registryLoginRate()
    await claimRefusalTimes()
    await uplinkWireAndLatency()
    await ownerThroughput()
    await fleetRollout()
    await slhDsaOnDevice()
    await updateEndToEnd()
    await realRollout(realDevices)
    if (values["largest-fleet"]) await largestFleet()
    await brokerAuthRate()
    for (const line of await defaultCampaignCounts()) console.log(line)
})
