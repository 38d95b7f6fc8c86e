/**
 * Temporary, until the tidy-src merge: devs/bench/update.ts still imports
 * `until` from here. Point it at devs/sim/until.ts, then delete devs/tools/.
 */
export { until } from "../sim/until.ts"
