/**
 * Keeps the device known to the registry: enrolls once, then authenticates,
 * retrying with capped exponential backoff and jitter while the registry is
 * unreachable or refuses, and again before the broker password expires.
 */
import * as ds from "@devicescript/core"
import { EventLog } from "../events/log"
import { DeviceIdentity, isEnrolled, markEnrolled } from "./credentials"
import { authenticate, enroll, RegistryEndpoint, RegistryError, RegistrySession, withSecurityEvents } from "./registry-client"
import { ScramKeyCache } from "./scram"

/** Options of the registry session loop. */
export interface SessionOptions {
    identity: DeviceIdentity
    endpoint: RegistryEndpoint
    events: EventLog
    /** Called after every successful authentication. */
    onSession: (session: RegistrySession) => void | Promise<void>
    /** Delay after the first failure; doubles up to `maxBackoffMs`. */
    minBackoffMs?: number
    maxBackoffMs?: number
    /** How often to re-authenticate while unclaimed (to learn of the claim). */
    unclaimedPollMs?: number
}

/** Delay before retry `attempt` (from 0): exponential, capped, with ±25 % jitter so fleets do not stampede. */
export function backoffMs(attempt: number, minMs: number, maxMs: number): number {
    const base = Math.min(maxMs, minMs * Math.pow(2, Math.min(attempt, 20)))
    return Math.round(base * (0.75 + Math.random() * 0.5))
}

/**
 * One registry exchange: enrolls first if the registry has not accepted this
 * identity yet, then authenticates, with `report` if given (see `authenticate`).
 * Failures are logged as security events where they are one, and thrown as `RegistryError`.
 */
export async function registryExchange(identity: DeviceIdentity, endpoint: RegistryEndpoint, events: EventLog, cache: ScramKeyCache, report?: string): Promise<RegistrySession> {
    if (!(await isEnrolled(identity))) {
        const fresh = await withSecurityEvents(events, async () => await enroll(endpoint, identity))
        if (fresh) await events.record("enrolled", `registry ${endpoint.host} accepted ${identity.deviceId}`)
        // an id already known is ours only if we can log in with it: authenticate() below decides
        await markEnrolled(identity)
    }
    return await withSecurityEvents(events, async () => await authenticate(endpoint, identity, cache, report))
}

/** Runs forever: enroll if needed, authenticate, wait, repeat. */
export async function runRegistrySession(options: SessionOptions) {
    const { identity, endpoint, events } = options
    const minMs = options.minBackoffMs || 2000
    const maxMs = options.maxBackoffMs || 300000
    const cache: ScramKeyCache = {}
    let failures = 0
    for (;;) {
        let waitMs: number
        try {
            const session = await registryExchange(identity, endpoint, events, cache)
            failures = 0
            await options.onSession(session)
            // refresh well before the broker password expires; the registry's clock is not ours,
            // so use the lifetime it grants, not the absolute time
            waitMs = session.broker ? 600000 : options.unclaimedPollMs || 30000
        } catch (e: any) {
            if (!(e instanceof RegistryError)) throw e
            waitMs = backoffMs(failures++, minMs, maxMs)
            console.log(`registry: ${e.kind}; retrying in ${Math.round(waitMs / 1000)} s`)
        }
        await ds.sleep(waitMs)
    }
}
