/**
 * What the registry needs of a broker: per-device logins limited to the
 * device's own topics, and owner logins limited to their devices' topics.
 * The registry decides who gets a login and for how long; an adapter
 * (devs/broker/dynsec.ts for Mosquitto) installs and removes it.
 */

/**
 * The broker username of an owner's login. Every broker login, a device's or an owner's, is bound to one
 * client id, its username, so no login can take over another's session (MQTT 3.1.1 §3.1.4).
 */
export function ownerUsername(owner: string): string {
    return `owner-${owner}`
}

/** Installs and removes per-device broker credentials (Mosquitto dynamic security, or another broker). */
export interface BrokerAccess {
    /** Where devices connect. */
    endpoint: { host: string; port: number }
    /** Creates or replaces the device's broker login, allowed only its own topics. */
    grant(deviceId: string, password: string): Promise<void>
    /** Removes the device's broker login and drops its session. */
    revoke(deviceId: string): Promise<void>
    /**
     * Creates the owner's login (username `ownerUsername(owner)`, which is also the one client id it may
     * use), or sets its new password, allowed to read the up topics and write the down topics of `deviceIds`.
     */
    grantOwner(owner: string, password: string, deviceIds: string[]): Promise<void>
    /** Adds a device the owner just claimed to what its login may reach. */
    allowOwner(owner: string, deviceId: string): Promise<void>
    /** Removes the owner's login and drops its session. */
    revokeOwner(owner: string): Promise<void>
    /** Whether `password` logs in as the owner's username today: proof of an owner login handed out before owner accounts. */
    checkOwnerLogin(owner: string, password: string): Promise<boolean>
}
