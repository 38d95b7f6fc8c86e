/**
 * What the registry needs of a broker: per-device logins limited to the
 * device's own topics, and owner logins limited to their devices' topics.
 * The registry decides who gets a login and for how long; an adapter
 * (devs/broker/dynsec.ts for Mosquitto, devs/broker/rabbitmq-access.ts for a
 * RabbitMQ cluster) installs and removes it.
 */

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
     * Lets `owner` read the device's up topics and write its down topics.
     * Creates the owner's login on first use and returns its password then (only then).
     */
    allowOwner(owner: string, deviceId: string): Promise<{ username: string; password: string } | undefined>
}
