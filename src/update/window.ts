/**
 * The update window: the runtime's native gateway connection (WSSK,
 * runtime/devicescript/network/wssk_health.c) through which the update
 * service deploys a program. It is opened by giving the runtime a connection
 * string and closed by clearing it; while it is set the runtime reconnects by
 * itself, across program restarts and reboots (it keeps the string in the
 * setting `wssk_connstr`), and holds the device's one socket. So the string is
 * set only for an update and cleared as soon as the new program is confirmed
 * or the attempt is abandoned.
 *
 * The string holds the master key: it is never printed.
 */
import * as ds from "@devicescript/core"
import { Endpoint } from "../net/endpoint"

// the runtime has the CloudConfiguration service, but @devicescript/core does not declare its client
declare module "@devicescript/core" {
    class CloudConfiguration extends Role {
        /** Sets (or, with "", clears) the runtime's WSSK connection string. */
        setConnectionString(connectionString: string): Promise<void>
    }
}

let cloud: ds.CloudConfiguration = undefined

function service(): ds.CloudConfiguration {
    if (!cloud) cloud = new ds.CloudConfiguration()
    return cloud
}

/** Opens the window to the update service at `endpoint` (TLS, certificate checked by the runtime). */
export async function openUpdateWindow(endpoint: Endpoint, deviceId: string, masterKey: Buffer) {
    await service().setConnectionString(`wss://wssk:${masterKey.toString("hex")}@${endpoint.host}:${endpoint.port}/wssk/${deviceId}`)
}

/** Closes the window and frees the socket. */
export async function closeUpdateWindow() {
    await service().setConnectionString("")
}
