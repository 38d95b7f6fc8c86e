/**
 * Where a request comes from, as the limits count it. An IPv4 address is one
 * source. An IPv6 address is counted by its /64 prefix: one subscriber line
 * or one cloud host is usually given a whole /64 (RFC 6177 §2, RFC 7934 §6),
 * so counting single addresses would give one attacker 2^64 sources.
 */
import { isIPv6 } from "node:net"

/** The source a limit counts for `address`: the IPv4 address, or the /64 of an IPv6 one (`2001:db8:1:2::/64`). */
export function sourceOf(address: string): string {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
    if (mapped) return mapped[1]
    if (!isIPv6(address)) return address
    const [head, tail = ""] = address.toLowerCase().split("::")
    const left = head ? head.split(":") : []
    const right = tail ? tail.split(":") : []
    const groups = address.includes("::") ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right] : left
    return `${groups
        .slice(0, 4)
        .map(g => g.replace(/^0+(?=.)/, ""))
        .join(":")}::/64`
}
