/**
 * Temporary, until the tidy-src merge: devs/bench/update.ts and
 * test/host/slh-dsa.test.ts still import these names from here. Point them at
 * devs/sim/devs-cli.ts and devs/project.ts, then delete devs/tools/.
 */
export { deviceLines, runInSimulator } from "../sim/devs-cli.ts"
export { PROJECT_ROOT } from "../project.ts"
