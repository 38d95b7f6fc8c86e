/**
 * What the registry needs of the update service (devs/updates/service.ts
 * implements it): signed documents it serves to anyone (their SLH-DSA
 * signatures are what devices trust, not the server) and an answer to the
 * report a device sends inside its SCRAM-authenticated exchange. The registry
 * carries them and interprets none.
 */

/** The update service as the registry sees it. */
export interface FirmwareUpdates {
    /** The signed manifest (a COSE_Sign1) of the image with this digest, for a class (both hex), if published. */
    signedManifest(classId: string, digest: string): Promise<Buffer | undefined>
    /** The newest root and key list versions, as a CBOR array [root version, key list version]; undefined before any. */
    trustIndex(): Promise<Buffer | undefined>
    /** One signature (a COSE_Sign1) of a root document or key list. */
    trustCopy(kind: "root" | "keys", version: number, copy: number): Promise<Buffer | undefined>
    /** Acts on a report from a device that has just proved its identity; the answer goes back as `reply`. */
    handleReport(deviceId: string, report: unknown): Promise<object>
}

/** Where devices find the update service's WSSK gateway, and how long they keep their window open for a deploy. */
export interface UpdateEndpoint {
    host: string
    port: number
    windowMs: number
}
