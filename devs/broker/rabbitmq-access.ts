/**
 * Broker access (registry/broker-access.ts) on a RabbitMQ cluster: a grant
 * is a row of ./rabbitmq-logins.ts (the password's SHA-256 and its expiry),
 * which the nodes see through the auth backend (./rabbitmq-auth.ts); nothing
 * is installed in the broker. What the broker cannot do by itself is end a
 * session when its password expires (it checks a password only at CONNECT),
 * so `revoke` closes the login's connections on every node through the
 * management API (`DELETE /api/connections/username/<user>`, cluster-wide),
 * asking one node after another until one answers. (In 3.10,
 * `rabbitmqctl close_all_user_connections` does not see MQTT connections.)
 */
import { timingSafeEqual } from "node:crypto"
import { request } from "node:http"
import { ownerUsername, type BrokerAccess } from "../registry/broker-access.ts"
import type { AdminLogin } from "./rabbitmq-auth.ts"
import type { BrokerLogins } from "../registry/broker-access.ts"
import { passwordHash } from "./rabbitmq-logins.ts"

/** Where the cluster is, for the registry. */
export interface RabbitAccessOptions {
    logins: BrokerLogins
    /** The nodes' MQTT-over-TLS listeners, in the order devices should try them. */
    endpoints: { host: string; port: number }[]
    /** The nodes' management API base URLs (`http://127.0.0.1:15672`). */
    managementUrls: string[]
    admin: AdminLogin
}

/** Why the management API refused or could not be reached on any node. */
export class ManagementUnavailable extends Error {}

export class RabbitAccess implements BrokerAccess {
    readonly endpoint: { host: string; port: number }
    readonly endpoints: { host: string; port: number }[]

    constructor(private readonly options: RabbitAccessOptions) {
        if (options.endpoints.length === 0) throw new RangeError("a cluster has at least one node")
        this.endpoints = options.endpoints
        this.endpoint = options.endpoints[0]
    }

    async grant(deviceId: string, password: string, expiresAt: number): Promise<void> {
        // the backend refuses the password after expiresAt by itself; the registry's `revoke` then ends the session
        await this.options.logins.put({ username: deviceId, passwordHash: passwordHash(password), expiresAt })
    }

    async revoke(deviceId: string): Promise<void> {
        await this.options.logins.delete(deviceId)
        await this.closeSessions(deviceId)
    }

    /**
     * The owner's login does not expire at the broker (the registry revokes it at its expiry); a new password replaces
     * the old one without ending the session, as a renewal must not.
     */
    async grantOwner(owner: string, password: string, deviceIds: string[]): Promise<void> {
        await this.options.logins.setOwnedDevices(owner, deviceIds)
        await this.options.logins.put({ username: ownerUsername(owner), passwordHash: passwordHash(password), expiresAt: null })
    }

    async allowOwner(owner: string, deviceId: string): Promise<void> {
        await this.options.logins.addOwnedDevice(owner, deviceId)
    }

    async revokeOwner(owner: string): Promise<void> {
        const username = ownerUsername(owner)
        await this.options.logins.delete(username)
        await this.options.logins.setOwnedDevices(owner, [])
        await this.closeSessions(username)
    }

    async checkOwnerLogin(owner: string, password: string): Promise<boolean> {
        const login = await this.options.logins.get(ownerUsername(owner))
        if (!login) return false
        return timingSafeEqual(passwordHash(password), login.passwordHash)
    }

    /** Closes every connection of `username`, on whichever node it is. */
    async closeSessions(username: string): Promise<void> {
        const path = `/api/connections/username/${encodeURIComponent(username)}`
        const failures: string[] = []
        for (const base of this.options.managementUrls) {
            try {
                const status = await this.call("DELETE", `${base}${path}`)
                // 204: closed; 404: the user had no connection
                if (status === 204 || status === 404) return
                failures.push(`${base}: HTTP ${status}`)
            } catch (e) {
                failures.push(`${base}: ${(e as Error).message}`)
            }
        }
        throw new ManagementUnavailable(`could not close the sessions of ${username}: ${failures.join("; ")}`)
    }

    private call(method: string, url: string): Promise<number> {
        const { username, password } = this.options.admin
        return new Promise((resolve, reject) => {
            const req = request(
                url,
                {
                    method,
                    timeout: 5000,
                    headers: {
                        authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`,
                        "x-reason": "broker password expired or revoked",
                    },
                },
                res => {
                    res.resume()
                    res.on("end", () => resolve(res.statusCode ?? 0))
                }
            )
            req.on("timeout", () => req.destroy(new Error("timed out")))
            req.on("error", reject)
            req.end()
        })
    }
}
