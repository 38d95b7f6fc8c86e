/**
 * What the device tells its owner about each step of an update, sealed like
 * its readings (COSE_Encrypt0 under its up key, on `things/<id>/up/update`),
 * so neither the broker nor the update service can forge a success:
 *
 *   { "digest": bstr (the image's SHA-256, 32 bytes), "sequence": uint, "step": tstr, ? "reason": tstr }
 *
 * a CBOR map with text keys, as the state report. `digest` and `sequence`
 * name the release the owner asked for (or the candidate in the device's
 * slot B); `reason` says why, for refused, unhealthy and rolled-back.
 * `Updater` makes them (its `tell`).
 */
/**
 * A step: `approved` (its manifest verified, the device asks the service to deploy it),
 * `trial` (the new program runs its health checks), `confirmed` (it passed, or the device
 * already ran that image), `unhealthy` (it failed them), `rolled-back` (the old program runs
 * again, or the window closed without a deploy), `refused` (the device would not install it).
 */
export type UpdateStep = "approved" | "trial" | "confirmed" | "rolled-back" | "refused" | "unhealthy"
