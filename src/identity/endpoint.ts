/**
 * Where the registry is: the board definition's `registry` key
 * (`host:port`) on hardware; the local stack (`npm start`) in the simulator.
 */
import * as ds from "@devicescript/core"
import { Endpoint, parseEndpoint } from "../net/endpoint"

/** The local stack's registry, as `devs/stack/local.ts` serves it. */
export const SIMULATOR_REGISTRY = "localhost:8443"

/** The registry this device talks to. */
export function registryEndpoint(): Endpoint {
    if (ds.isSimulator()) return parseEndpoint(SIMULATOR_REGISTRY)
    return parseEndpoint(ds._dcfgString("registry" as any))
}
