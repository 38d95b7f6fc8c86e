/**
 * What the registry needs of a broker: per-device logins limited to the
 * device's own topics, and owner logins limited to their devices' topics.
 * The registry decides who gets a login and for how long; an adapter
 * (devs/broker/dynsec.ts for Mosquitto, devs/broker/rabbitmq-access.ts for a
 * RabbitMQ cluster) installs and removes it.
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
    /** Every node a device may connect to, `endpoint` first, when the broker is a cluster; devices fail over in this order. */
    endpoints?: { host: string; port: number }[]
    /** Creates or replaces the device's broker login, allowed only its own topics, until `expiresAt` (ms since the epoch). */
    grant(deviceId: string, password: string, expiresAt: number): Promise<void>
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

/** One login: a device (its id) or an owner (`owner-<name>`). */
export interface BrokerLogin {
    username: string
    /** SHA-256 of the password. */
    passwordHash: Buffer
    /** When the password stops working (ms since the epoch); null for owner logins, which do not expire. */
    expiresAt: number | null
}

/** Where broker logins are kept. */
export interface BrokerLogins {
    /** Creates or replaces a login. */
    put(login: BrokerLogin): Promise<void>
    /** Creates a login unless one exists; false if it did. */
    insert(login: BrokerLogin): Promise<boolean>
    get(username: string): Promise<BrokerLogin | undefined>
    delete(username: string): Promise<void>
    /** Lets `owner` follow `deviceId`. */
    addOwnedDevice(owner: string, deviceId: string): Promise<void>
    /** Lets `owner` follow exactly `deviceIds` (what it followed before and is not among them, no more). */
    setOwnedDevices(owner: string, deviceIds: string[]): Promise<void>
    owns(owner: string, deviceId: string): Promise<boolean>
    close(): Promise<void>
}
