/**
 * Preloaded (`node --require`) into the DeviceScript CLI's processes (`devs run`, `devs vm`,
 * `devs devtools` and the VM workers it forks) so that two runs can share a machine: it moves the
 * ports that are fixed where we cannot change them to ports the caller chose.
 *
 * Three places fix ports. The firmware's simulator default expects the registry on
 * `localhost:8443` (src/identity/endpoint.ts, compiled into the image under test). The CLI
 * hard-codes its devtools server: it listens on 8081 (dashboard and WebSocket bus), 8082
 * (Jacdac over TCP) and 8083 (debug adapter), and the simulator dials `ws://127.0.0.1:8081` or
 * `127.0.0.1:8082`. Everything else (broker, update service) the registry tells the device.
 *
 * Why a preload, rather than something else: an image built per test with another registry
 * port would not be the image under test (its digest is what the OTA tests check), and a
 * rebuild per test costs ~10 s; patching the CLI bundle would change a pinned dependency.
 * Every socket the simulator's runtime opens (`tls.connect` for the firmware's socket and
 * WSSK, `net.createConnection` for the bus, http for the WebSocket) and every server the CLI
 * starts goes through `net.Socket.prototype.connect` and `net.Server.prototype.listen`, so
 * mapping the port there, for loopback only, moves all of them and nothing else. Host names
 * are untouched, so TLS still checks the certificate against `localhost`.
 *
 * The map comes from the environment: `SENTINEL_PORT_MAP=8443:40123,8081:40124` (fixed:actual).
 * devs/sim/devs-cli.ts sets it (see `RunDevsOptions.ports`). CommonJS: the CLI is a CommonJS
 * bundle, and `--require` runs before its first line.
 */
"use strict"
const net = require("node:net")

const ENV = "SENTINEL_PORT_MAP"

/** fixed port -> actual port, from `SENTINEL_PORT_MAP`. */
function readMap(text) {
    const map = new Map()
    for (const pair of (text || "").split(",").filter(Boolean)) {
        const m = /^(\d{1,5}):(\d{1,5})$/.exec(pair.trim())
        if (!m) throw new Error(`${ENV}: "${pair}" is not fixed:actual`)
        map.set(Number(m[1]), Number(m[2]))
    }
    return map
}

const map = readMap(process.env[ENV])

/** Whether a host a client dials is this machine (the default host of `connect` is localhost). */
function isLoopback(host) {
    return host === undefined || host === null || host === "" || host === "localhost" || host === "::1" || /^127\./.test(host)
}

/** A copy of connect or listen options with the port moved, or the options themselves. */
function moved(options, checkHost) {
    if (!options || typeof options !== "object" || options.path) return options
    const actual = map.get(Number(options.port))
    if (actual === undefined || (checkHost && !isLoopback(options.host))) return options
    return { ...options, port: actual }
}

if (map.size) {
    const connect = net.Socket.prototype.connect
    net.Socket.prototype.connect = function mappedConnect(...args) {
        const first = args[0]
        // net.createConnection and tls.connect pass their normalized [options, callback] array
        if (Array.isArray(first)) first[0] = moved(first[0], true)
        else if (first && typeof first === "object") args[0] = moved(first, true)
        else if (map.has(Number(first)) && isLoopback(typeof args[1] === "string" ? args[1] : undefined)) args[0] = map.get(Number(first))
        return connect.apply(this, args)
    }

    const listen = net.Server.prototype.listen
    net.Server.prototype.listen = function mappedListen(...args) {
        const first = args[0]
        if (first && typeof first === "object") args[0] = moved(first, false)
        else if (map.has(Number(first))) args[0] = map.get(Number(first))
        return listen.apply(this, args)
    }
}
