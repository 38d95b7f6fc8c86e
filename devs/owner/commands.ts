/**
 * Owner-side commands for a device, sealed for `things/<id>/down/cmd` with
 * the device's down key and the next counter from the keystore (saved before
 * the message leaves, so a counter is never used twice).
 */
import { encode } from "cbor2"
import { sealEncrypt0 } from "./cose.ts"
import { channelKeys } from "./keys.ts"
import type { Keystore } from "./keystore.ts"

/** What a device understands (src/uplink/downlink.ts). */
export type Command = { cmd: "interval"; sensor: string; ms: number } | { cmd: "events" } | { cmd: "state" } | { cmd: "update-check" }

/** The command topic of a device. */
export function commandTopic(deviceId: string): string {
    return `things/${deviceId}/down/cmd`
}

/** Encodes a command as the device expects it: a deterministic CBOR map with text keys. */
export function encodeCommand(command: Command): Buffer {
    return Buffer.from(encode(new Map(Object.entries(command)), { cde: true }))
}

/** Seals a command with the next downlink counter. */
export async function sealCommand(keystore: Keystore, deviceId: string, command: Command): Promise<{ topic: string; payload: Buffer }> {
    const owned = keystore.device(deviceId)
    if (!owned) throw new Error(`device ${deviceId} is not in this keystore`)
    owned.downCounter += 1
    keystore.save()
    const keys = channelKeys(Buffer.from(owned.root, "hex"), deviceId, "down")
    const topic = commandTopic(deviceId)
    const payload = await sealEncrypt0(encodeCommand(command), {
        key: keys.key,
        kid: keys.kid,
        contextIv: keys.contextIv,
        counter: owned.downCounter,
        externalAad: Buffer.from(topic),
    })
    return { topic, payload }
}
