/**
 * What the registry needs of a broker: per-device logins limited to the
 * device's own topics, and owner logins limited to their devices' topics.
 * The registry decides who gets a login and for how long; an adapter
 * (devs/broker/dynsec.ts for Mosquitto) installs and removes it.
 */

/** Installs and removes per-device broker credentials (Mosquitto dynamic security, or another broker). */
export interface BrokerAccess {
    /** Where devices connect. */
    endpoint: { host: string; port: number }
    /** Creates or replaces the device's broker login, allowed only its own topics. */
    grant(deviceId: string, password: string): Promise<void>
    /** Removes the device's broker login and drops its session. */
    revoke(deviceId: string): Promise<void>
    /**
     * Creates or replaces the owner's login (username `owner-<owner>`), usable only
     * with `clientId`, allowed to read the up topics and write the down topics of `deviceIds`.
     */
    grantOwner(owner: string, clientId: string, password: string, deviceIds: string[]): Promise<void>
    /** Adds a device the owner just claimed to what its login may reach. */
    allowOwner(owner: string, deviceId: string): Promise<void>
    /** Removes the owner's login and drops its session. */
    revokeOwner(owner: string): Promise<void>
    /** Whether `password` logs in as `owner-<owner>` today: proof of an owner login handed out before owner accounts. */
    checkOwnerLogin(owner: string, password: string): Promise<boolean>
}
