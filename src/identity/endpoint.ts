/**
 * Where the registry is: the board definition's `registry` key
 * (`host:port`) on hardware; the local stack (`npm start`) in the simulator.
 */
import * as ds from "@devicescript/core"
import { RegistryEndpoint } from "./registry-client"

/** The local stack's registry, as `devs/stack/local.ts` serves it. */
export const SIMULATOR_REGISTRY = "localhost:8443"

/** Parses `host:port`; throws on anything else. */
export function parseEndpoint(text: string): RegistryEndpoint {
    const colon = text ? text.lastIndexOf(":") : -1
    const port = colon > 0 ? parseInt(text.slice(colon + 1)) : NaN
    if (!(port >= 1 && port <= 65535) || colon <= 0) throw new RangeError(`registry endpoint "${text}" is not host:port`)
    return { host: text.slice(0, colon), port }
}

/** The registry this device talks to. */
export function registryEndpoint(): RegistryEndpoint {
    if (ds.isSimulator()) return parseEndpoint(SIMULATOR_REGISTRY)
    return parseEndpoint(ds._dcfgString("registry" as any))
}
