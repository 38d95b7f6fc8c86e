/** `npm start`: the firmware in the simulator against the local stack, the owner at the console (devs/sim/start-local.ts). */
import { startLocal } from "../sim/start-local.ts"

await startLocal().catch(e => console.error(`start: ${(e as Error).message}`))
