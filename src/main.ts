/**
 * The simulator's image: the firmware with simulated sensor parts (what
 * `npm start` and the tests run). A board runs `boards/<board>.ts` instead,
 * which carries its own drivers and no simulated parts.
 */
import * as ds from "@devicescript/core"
import { runFirmware } from "./firmware"
import { openSimulatedPort } from "./sensors/simulated"
import { TRUST_ANCHOR } from "./update/trust-anchor"

// simulated values must never leave real hardware as readings
if (!ds.isSimulator()) throw new Error("simulator image")
await runFirmware(openSimulatedPort, TRUST_ANCHOR)
