/** SHA-256 in hex, as the firmware, the manifests and the update service name images. */
import { createHash } from "node:crypto"

export function sha256Hex(bytes: Uint8Array): string {
    return createHash("sha256").update(bytes).digest("hex")
}
