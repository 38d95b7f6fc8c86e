/**
 * The owner's keystore: one JSON file (mode 0600, git-ignored under var/)
 * holding the owner's broker login and, per claimed device, the owner root
 * and the counters that keep replays out in both directions. It is the only
 * place off the device where data keys exist; the registry and the broker
 * never see them.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { ensurePrivateDir } from "../files/private.ts"

/** What the owner keeps per device. */
export interface OwnedDevice {
    /** Owner root, hex. */
    root: string
    /** Last counter used on the device's command topic. */
    downCounter: number
    /** Highest uplink counter accepted; older messages are replays. */
    upHighest: number
}

/** The file's content. */
export interface KeystoreData {
    owner: string
    broker?: { username: string; password: string }
    devices: Record<string, OwnedDevice>
}

/** A keystore file. Writes go to a temporary file renamed over the old one, so a crash never leaves half a file. */
export class Keystore {
    private constructor(
        readonly path: string,
        readonly data: KeystoreData
    ) {}

    /** Opens `path`, or starts an empty keystore for `owner` there. */
    static open(path: string, owner: string): Keystore {
        if (!existsSync(path)) return new Keystore(path, { owner, devices: {} })
        const data = JSON.parse(readFileSync(path, "utf8")) as KeystoreData
        if (typeof data.owner !== "string" || typeof data.devices !== "object") throw new Error(`${path} is not a keystore`)
        return new Keystore(path, data)
    }

    device(id: string): OwnedDevice | undefined {
        return Object.hasOwn(this.data.devices, id) ? this.data.devices[id] : undefined
    }

    /** Keeps a device's owner root, as a claim does; its counters start afresh. Call `save` to keep it on disk. */
    addDevice(id: string, root: Buffer) {
        this.data.devices[id] = { root: root.toString("hex"), downCounter: 0, upHighest: -1 }
    }

    save() {
        ensurePrivateDir(dirname(this.path))
        const tmp = `${this.path}.tmp`
        // a fresh file, so its mode is 0600 (a leftover from a crash would keep its own)
        rmSync(tmp, { force: true })
        writeFileSync(tmp, JSON.stringify(this.data, null, 2), { mode: 0o600 })
        renameSync(tmp, this.path)
    }
}
