/**
 * What the registry needs of the update service (devs/updates/service.ts
 * implements it): the newest signed manifest of a device class, which the
 * registry serves to anyone (its SLH-DSA signature is what devices trust),
 * and an answer to the report a device sends inside its SCRAM-authenticated
 * exchange. The registry carries both and interprets neither.
 */

/** The update service as the registry sees it. */
export interface FirmwareUpdates {
    /** The newest signed manifest (a COSE_Sign1) for a class id in hex, if any was published. */
    latestSignedManifest(classId: string): Promise<Buffer | undefined>
    /** Acts on a report from a device that has just proved its identity; the answer goes back as `reply`. */
    handleReport(deviceId: string, report: unknown): Promise<object>
}

/** Where devices find the update service's WSSK gateway, and how long they keep their window open for a deploy. */
export interface UpdateEndpoint {
    host: string
    port: number
    windowMs: number
}
