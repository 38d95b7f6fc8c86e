/**
 * What every boot does before anything talks to the network: count the boot,
 * open the security event log, honour a factory-reset request, and load (or,
 * on first boot, make) the device's credentials.
 */
import { countBoot, EventLog } from "../events/log"
import { DeviceIdentity, factoryResetRequested, IdentityError, loadOrCreateIdentity, wipeIdentity } from "./credentials"

/** The state a boot starts from. */
export interface BootState {
    boot: number
    events: EventLog
    /** Undefined when the stored identity is corrupt: the device then runs offline until reset. */
    identity?: DeviceIdentity
}

/**
 * Boots the identity. The claim code is handed to `showClaimCode` on the boot
 * that creates it, and never again.
 */
export async function bootIdentity(showClaimCode: (groupedCode: string) => void): Promise<BootState> {
    const boot = await countBoot()
    const events = await EventLog.open({ boot })
    if (events.corruptSlots > 0) await events.record("storage-corrupt", `${events.corruptSlots} event slots unreadable`)
    if (await factoryResetRequested()) {
        await wipeIdentity()
        await events.clear()
        await events.record("factory-reset", "identity wiped on request (sn_reset)")
    }
    try {
        const { identity, created } = await loadOrCreateIdentity({ showClaimCode })
        if (created) await events.record("identity-created", `new device id ${identity.deviceId}`)
        return { boot, events, identity }
    } catch (e: any) {
        if (!(e instanceof IdentityError)) throw e
        await events.record("identity-corrupt", e.message)
        return { boot, events }
    }
}
