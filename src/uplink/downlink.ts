/**
 * Commands from the owner on `things/<id>/down/cmd`. Each is a COSE_Encrypt0
 * under the device's down key (kid = device id, external AAD = the topic) with
 * a Partial IV counter that must be higher than any accepted before: the
 * highest is kept in flash, written before the command runs, so a replay is
 * refused even across a power cut. Anything unauthenticated, malformed,
 * replayed or unknown is refused with a reason; the caller logs it and does nothing.
 */
import { CborMap, CborValue, decodeCbor, encodeCbor } from "../codec/cbor"
import { CoseError, counterFromPartialIv, open } from "../secure/cose"
import { ChannelKeys } from "../secure/keys"
import { readBytes, SettingKey, writeBytes } from "../storage/settings"

/** What the owner can ask; `update` names a release by its image's SHA-256 and its manifest's sequence. */
export type Command =
    | { cmd: "interval"; sensor: string; ms: number }
    | { cmd: "events" }
    | { cmd: "state" }
    | { cmd: "update-check" }
    | { cmd: "update"; digest: Buffer; sequence: number }

/** An authenticated command as its plaintext (known to parse), with the down counter it came with: the reply names it. */
export interface AcceptedCommand {
    plaintext: Buffer
    counter: number
}

/**
 * Accepted commands waiting to run, oldest first, at most `capacity`. They
 * wait as plaintext and counter in two arrays, about 64 B of the VM's heap
 * each, and are parsed when they run: as parsed objects they took about 200 B
 * each (both measured with test/device/fixtures/ram-probe.ts).
 */
export class CommandBacklog {
    private readonly plaintexts: Buffer[] = []
    private readonly counters: number[] = []

    constructor(readonly capacity: number) {}

    /** Commands waiting. */
    size(): number {
        return this.counters.length
    }

    full(): boolean {
        return this.counters.length >= this.capacity
    }

    /** Adds a command at the tail (the caller checks `full` first). */
    add(c: AcceptedCommand) {
        this.plaintexts.push(c.plaintext)
        this.counters.push(c.counter)
    }

    /** Takes the oldest command, parsed, with its counter; undefined when none waits. */
    take(): { command: Command; counter: number } {
        if (this.counters.length === 0) return undefined
        return { command: parseCommand(this.plaintexts.shift()), counter: this.counters.shift() }
    }
}

/** Why a downlink message was refused. */
export class DownlinkError extends Error {
    constructor(
        readonly reason: "forged" | "malformed" | "replayed" | "unknown",
        message: string
    ) {
        super(message)
        this.name = "DownlinkError"
    }
}

function text(m: CborMap, key: string): string {
    const v = m.get(key)
    if (typeof v !== "string" || v.length > 32) throw new DownlinkError("malformed", `field ${key} must be short text`)
    return v
}

/** Parses the plaintext of a command (a CBOR map with text keys). */
export function parseCommand(plaintext: Buffer): Command {
    let v: CborValue
    try {
        v = decodeCbor(plaintext, { maxBytes: 256, maxDepth: 1, maxItems: 8 })
    } catch (e: any) {
        throw new DownlinkError("malformed", "command is not CBOR")
    }
    if (!(v instanceof CborMap)) throw new DownlinkError("malformed", "command is not a map")
    const cmd = text(v, "cmd")
    if (cmd === "interval") {
        const ms = v.get("ms")
        if (typeof ms !== "number" || ms !== Math.floor(ms)) throw new DownlinkError("malformed", "interval needs whole ms")
        return { cmd, sensor: text(v, "sensor"), ms }
    }
    if (cmd === "update") {
        const digest = v.get("digest")
        const sequence = v.get("sequence")
        // a sequence the manifest does not carry is refused when the manifest arrives
        if (!(digest instanceof Buffer) || digest.length !== 32 || !((sequence as number) >= 1))
            throw new DownlinkError("malformed", "update needs a 32-byte digest and a sequence")
        return { cmd, digest, sequence: sequence as number }
    }
    if (cmd === "events" || cmd === "state" || cmd === "update-check") return { cmd }
    throw new DownlinkError("unknown", `unknown command ${cmd}`)
}

/** Encodes a command (the owner tools do the same on the host). */
export function encodeCommand(c: Command): Buffer {
    const m = new CborMap().set("cmd", c.cmd)
    if (c.cmd === "interval") m.set("sensor", c.sensor).set("ms", c.ms)
    if (c.cmd === "update") m.set("digest", c.digest).set("sequence", c.sequence)
    return encodeCbor(m)
}

/** Above any counter an owner will send (2^53 - 1). */
const NEVER_AGAIN = 9007199254740991

/** The stored counter; unreadable means "accept nothing" until a factory reset rather than "accept replays". */
function lastCounter(stored: Buffer): number {
    if (!stored) return -1
    let v: CborValue
    try {
        v = decodeCbor(stored, { maxBytes: 16, maxDepth: 0, maxItems: 1 })
    } catch (e) {
        return NEVER_AGAIN
    }
    if (typeof v !== "number") return NEVER_AGAIN
    return v
}

/** Verifies downlink messages for one device. */
export class DownlinkVerifier {
    private constructor(
        private readonly keys: ChannelKeys,
        private readonly topic: string,
        private lastCounter: number
    ) {}

    /** Opens the verifier with the highest counter accepted so far. */
    static async open(keys: ChannelKeys, deviceId: string): Promise<DownlinkVerifier> {
        return new DownlinkVerifier(keys, `things/${deviceId}/down/cmd`, lastCounter(await readBytes(SettingKey.DownlinkCounter)))
    }

    /** Verifies, replay-checks and parses one message; the counter is stored before the command is returned with it (as its plaintext). */
    async accept(topic: string, payload: Buffer): Promise<AcceptedCommand> {
        if (topic !== this.topic) throw new DownlinkError("unknown", "not the command topic")
        let opened
        try {
            const { key, contextIv } = this.keys
            opened = await open(payload, { key, contextIv, externalAad: Buffer.from(topic), maxBytes: 512 })
        } catch (e: any) {
            if (e instanceof CoseError) throw new DownlinkError(e.message === "authentication failed" ? "forged" : "malformed", e.message)
            throw e
        }
        if (opened.kid.toString("hex") !== this.keys.kid.toString("hex")) throw new DownlinkError("forged", "kid is not this device")
        if (opened.partialIv.length === 0) throw new DownlinkError("malformed", "commands need a partial IV")
        const counter = counterFromPartialIv(opened.partialIv)
        if (counter <= this.lastCounter) throw new DownlinkError("replayed", `counter ${counter} not above ${this.lastCounter}`)
        // refused here, before the counter is taken, if it will not parse when it runs
        parseCommand(opened.plaintext)
        await writeBytes(SettingKey.DownlinkCounter, encodeCbor(counter))
        this.lastCounter = counter
        return { plaintext: opened.plaintext, counter }
    }
}
