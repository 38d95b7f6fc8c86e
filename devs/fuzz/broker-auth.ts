/**
 * Fuzzing the registry's answers to RabbitMQ's auth backend
 * (devs/broker/rabbitmq-auth.ts `answerAuth`), in-process, on real SQLite
 * logins: two devices of one owner, a device of another, an expired device
 * login and the registry's management login.
 *
 * Seeds: every request a node sends for a device's and an owner's session
 * (user, vhost, the session queue and the exchange, the topics each may use),
 * and the management login; mutations reach the path, the field names and the
 * values (the body is form-encoded, so a mutated byte may split or join fields).
 *
 * Wrong acceptance: `answerAuth` throws; an answer other than 200, 400, 404
 * or 413; an `allow` that the rules, restated here independently on the
 * fields as this oracle parses them, do not grant (a login and its password,
 * its client id, its topic prefix, its own queue); a refusal without a
 * security event; a password in an event.
 */
import { randomBytes } from "node:crypto"
import { RabbitAuthPolicy, answerAuth } from "../broker/rabbitmq-auth.ts"
import { passwordHash, SqliteBrokerLogins } from "../broker/rabbitmq-logins.ts"
import { mutate, type Campaign, type Rng, type Verdict } from "./fuzzer.ts"

/** One request a node could send. */
export interface AuthRequest {
    path: string
    body: Buffer
}

const form = (fields: Record<string, string>) => Buffer.from(new URLSearchParams(fields).toString())

/** The backend campaign. */
export async function brokerAuthCampaign(): Promise<Campaign<AuthRequest>> {
    const now = 1_700_000_000_000
    const logins = new SqliteBrokerLogins(":memory:")
    const [d1, d2, d3, expired] = [0, 1, 2, 3].map(() => randomBytes(16).toString("hex"))
    const passwords = new Map<string, string>()
    const add = async (username: string, expiresAt: number | null) => {
        const password = randomBytes(24).toString("base64url")
        passwords.set(username, password)
        await logins.put({ username, passwordHash: passwordHash(password), expiresAt })
    }
    await add(d1, now + 60_000)
    await add(d2, now + 60_000)
    await add(d3, now + 60_000)
    await add(expired, now - 1)
    await add("owner-alice", null)
    await add("owner-bob", null)
    await logins.addOwnedDevice("alice", d1)
    await logins.addOwnedDevice("alice", d2)
    await logins.addOwnedDevice("bob", d3)
    const admin = { username: `registry-${randomBytes(8).toString("hex")}`, password: randomBytes(24).toString("base64url") }
    const adminHash = passwordHash(admin.password)
    const policy = new RabbitAuthPolicy(logins, { brokerAdminHash: async u => (u === admin.username ? adminHash : undefined) }, () => now)
    const events: string[] = []

    /** The rules, restated on the fields as URLSearchParams reads them (the last of a repeated field wins here). */
    function granted(path: string, f: Record<string, string>): string | undefined {
        const user = f.username ?? ""
        if (user === admin.username) {
            if (f.client_id !== undefined || f["variable_map.client_id"] !== undefined) return "admin login over MQTT"
            if (path === "/user") return f.password === admin.password ? undefined : "admin with a wrong password"
            if (path === "/vhost") return f.vhost === "/" ? undefined : "admin on another vhost"
            return "admin on a resource or topic"
        }
        const password = passwords.get(user)
        if (password === undefined) return "an unknown login"
        if (user === expired) return "an expired login"
        const clientId = path === "/topic" ? f["variable_map.client_id"] : f.client_id
        if (clientId !== user) return "another client id"
        const device = /^[0-9a-f]{32}$/.test(user)
        if (path === "/user") return f.password === password ? undefined : "a wrong password"
        if (path === "/vhost") return f.vhost === "/" ? undefined : "another vhost"
        if (f.vhost !== "/") return "another vhost"
        if (path === "/resource") {
            if (f.resource === "exchange")
                return f.name === "amq.topic" && ["read", "write"].includes(f.permission) ? undefined : "exchange"
            const queues = [`mqtt-subscription-${user}qos0`, `mqtt-subscription-${user}qos1`]
            const ok = f.resource === "queue" && queues.includes(f.name) && ["configure", "read", "write"].includes(f.permission)
            return ok ? undefined : "someone else's queue"
        }
        if (path !== "/topic" || f.resource !== "topic" || f.name !== "amq.topic") return "not a topic of amq.topic"
        const key = f.routing_key ?? ""
        const under = (id: string, dir: string) => key.startsWith(`things.${id}.${dir}.`) && key.length > `things.${id}.${dir}.`.length
        if (device)
            return (f.permission === "write" && under(user, "up")) || (f.permission === "read" && under(user, "down")) ? undefined : "topic"
        const owned = user === "owner-alice" ? [d1, d2] : [d3]
        const ok = owned.some(id => (f.permission === "read" && under(id, "up")) || (f.permission === "write" && under(id, "down")))
        return ok ? undefined : "an owner's topic outside its devices"
    }

    const session = (user: string) => {
        const q = `mqtt-subscription-${user}qos1`
        const base = { username: user, vhost: "/", tags: "", client_id: user }
        return [
            { path: "/user", body: form({ username: user, password: passwords.get(user)!, vhost: "/", client_id: user }) },
            { path: "/vhost", body: form({ ...base, ip: "127.0.0.1" }) },
            ...["configure", "read", "write"].map(permission => ({
                path: "/resource",
                body: form({ ...base, resource: "queue", name: q, permission }),
            })),
            { path: "/resource", body: form({ ...base, resource: "exchange", name: "amq.topic", permission: "write" }) },
        ]
    }
    const topic = (user: string, permission: string, key: string) => ({
        path: "/topic",
        body: form({
            username: user,
            vhost: "/",
            resource: "topic",
            name: "amq.topic",
            permission,
            tags: "",
            routing_key: key,
            "variable_map.client_id": user,
            "variable_map.username": user,
            "variable_map.vhost": "/",
        }),
    })
    const seeds: AuthRequest[] = [
        ...session(d1),
        topic(d1, "write", `things.${d1}.up.readings`),
        topic(d1, "read", `things.${d1}.down.#`),
        ...session("owner-alice"),
        topic("owner-alice", "read", `things.${d2}.up.#`),
        topic("owner-alice", "write", `things.${d1}.down.command`),
        topic("owner-bob", "read", `things.${d3}.up.#`),
        { path: "/user", body: form({ username: admin.username, password: admin.password, vhost: "/" }) },
    ]
    const PATHS = ["/user", "/vhost", "/resource", "/topic", "/", "/users", "/topic/", "//topic"]

    return {
        name: "broker-auth",
        seeds,
        random: (rng: Rng) => ({ path: rng.pick(PATHS), body: rng.bytes(rng.below(300)) }),
        mutate: (rng, seed, other) =>
            rng.below(10) === 0
                ? { path: rng.pick(PATHS), body: seed.body }
                : { path: seed.path, body: mutate(rng, seed.body, other.body, 5000) },
        async check(input): Promise<Verdict> {
            const before = events.length
            const answer = await answerAuth(policy, "POST", input.path, input.body, "10.0.0.1", (kind, _s, identity, detail) =>
                events.push(`${kind} ${identity} ${detail}`)
            )
            if (![200, 400, 404, 413].includes(answer.status)) return { invalid: `status ${answer.status}` }
            const leaked = events.slice(before).find(e => [...passwords.values(), admin.password].some(p => e.includes(p)))
            if (leaked) return { invalid: "a password in a security event" }
            if (!answer.body.startsWith("allow"))
                return events.length > before ? "refused" : { invalid: "a refusal without a security event" }
            const fields = Object.fromEntries(new URLSearchParams(input.body.toString("utf8")))
            const wrong = granted(input.path, fields)
            return wrong ? { invalid: `allowed ${wrong}` } : "accepted"
        },
        show: input => `${input.path} ${input.body.toString("utf8").slice(0, 300)}`,
        async close() {
            await logins.close()
        },
    }
}
