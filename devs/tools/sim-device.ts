/**
 * Temporary, until the tidy-src merge: devs/bench/update.ts still imports
 * these names from here. Point it at devs/sim/, then delete devs/tools/.
 */
export { buildImage, startDevtools } from "../sim/devs-cli.ts"
export { SimulatedDevice } from "../sim/simulated-device.ts"
