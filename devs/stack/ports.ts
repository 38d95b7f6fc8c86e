/**
 * Temporary: devs/bench/update.ts still imports the loopback ports from here
 * until the tidy-src merge; point it at devs/net/ports.ts, then delete this file.
 */
export { freePort } from "../net/ports.ts"
