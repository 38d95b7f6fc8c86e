/**
 * `npm run release`: one release in one step. Builds the firmware (as
 * `npm run build` does, held to the same budgets), refuses an image the
 * update service already holds (a release must change something: devices
 * tell releases apart by their digest and order them by sequence), signs it
 * with the current release key of var/keys at the next sequence (the newest
 * published plus one, or `--sequence N` above it), publishes it with the key
 * documents the service does not hold yet, keeps the image and its signed
 * manifest in var/releases/<sequence>-<sha256 prefix>/ (never in the work
 * tree), and asks the owner service which of the owner's devices run which
 * sequence, printing the `npm run rollout` command that offers it to those
 * that can take it. An owner service that does not answer does not stop the
 * release: it is published all the same, and the line says so.
 *
 *   npm run release -- [--sequence N] [--min-sequence M] [--entry src/main.ts] [--keys var/keys] [--db …] [--service URL]
 */
import { createHash } from "node:crypto"
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { CommandError, displayPath, RefusedError, runCommand, UsageError } from "../cli/args.ts"
import { CA, DB, KEYS, ownerApi, sequenceNumber, SERVICE, TOKEN_FILE, withUpdateService } from "../cli/options.ts"
import { CODE_BUDGET_BYTES, firmwareImages, IMAGE_BUDGET_BYTES, imageCodeEnd } from "../bench/budget.ts"
import { ensurePrivateDir } from "../files/private.ts"
import { describePlan, planRollout, type ListedDevice } from "../owner/rollout/plan.ts"
import { KEYS_DIR, RELEASES_DIR, TRUST_ANCHOR_PATH } from "../project.ts"
import { buildImage } from "../sim/devs-cli.ts"
import { keyId } from "../updates/cose-sign1.ts"
import { ensureKeyring, Keyring, publishDocuments } from "../updates/keyring.ts"
import { CLASS_ID, ManifestError, manifestFor, signManifest } from "../updates/manifest.ts"

const spec = {
    name: "release",
    summary:
        "Builds the firmware, signs it at the next sequence with the current release key, publishes it, and prints " +
        "which devices can take it and the rollout command that offers it to them.",
    options: {
        sequence: { type: "string", value: "N", defaultText: "the newest published + 1", help: "the release's sequence number" },
        "min-sequence": { type: "string", value: "M", default: "0", help: "the lowest sequence a device may update from" },
        entry: { type: "string", value: "file", default: "src/main.ts", help: "the image to build: src/main.ts or src/boards/<board>.ts" },
        keys: KEYS,
        db: DB,
        service: SERVICE,
        "token-file": TOKEN_FILE,
        ca: CA,
    },
    notes: [
        "Change the firmware first: an image already published is refused. The release goes to var/releases/.",
        "Then roll it out as printed: npm run rollout -- create --digest <sha256> --sequence <n> (npm run rollout -- --help).",
    ],
} as const

/** The owner's devices as the owner service lists them, or why it could not be asked. */
async function ownerDevices(values: { service: string; "token-file": string; ca: string }): Promise<ListedDevice[] | string> {
    try {
        const { devices } = await ownerApi(values).call<{ devices: ListedDevice[] }>("GET", "/api/devices")
        return devices
    } catch (e) {
        const cause = e instanceof AggregateError && e.errors.length ? e.errors[e.errors.length - 1] : e
        return (cause as Error).message.split("\n")[0]
    }
}

await runCommand(spec, async ({ values }) => {
    const asked = values.sequence === undefined ? undefined : sequenceNumber("--sequence", values.sequence)
    const minSequence = sequenceNumber("--min-sequence", values["min-sequence"])
    if (!firmwareImages().includes(values.entry)) throw new UsageError(`--entry is one of ${firmwareImages().join(", ")}`)
    // the firmware trusts the root in src/update/trust-anchor.ts, which the owner's keyring (var/keys) makes
    if (values.keys === KEYS_DIR) ensureKeyring()
    const keyring = new Keyring(values.keys)
    if (!keyring.exists()) throw new CommandError(`no keys in ${displayPath(values.keys)}: npm run keygen makes them`)
    const anchor = existsSync(TRUST_ANCHOR_PATH) ? readFileSync(TRUST_ANCHOR_PATH, "utf8") : ""
    if (!anchor.includes(keyring.anchor().toString("hex")))
        console.log(`note: the firmware trusts another root than ${displayPath(values.keys)}'s: devices built from it refuse this release`)
    if (!existsSync(values.db))
        throw new CommandError(`no database at ${displayPath(values.db)}: npm start makes the local stack's, or pass --db`)
    const newest = await withUpdateService(values.db, s => s.newest(CLASS_ID.toString("hex")))
    const sequence = asked ?? (newest?.sequence ?? 0) + 1
    if (asked !== undefined && newest && asked <= newest.sequence)
        throw new UsageError(`--sequence ${asked} must be above the newest published, ${newest.sequence}`)
    if (sequence === 0) throw new UsageError("--sequence must be at least 1")
    if (minSequence >= sequence) throw new UsageError(`--min-sequence ${minSequence} must be below the sequence ${sequence}`)

    ensurePrivateDir(RELEASES_DIR)
    const building = join(RELEASES_DIR, `.build-${process.pid}.devs`)
    console.log(`building ${values.entry}…`)
    let image: Buffer
    try {
        image = await buildImage(values.entry, building)
    } finally {
        rmSync(building, { force: true })
    }
    const { codeEnd } = imageCodeEnd(image)
    if (codeEnd > CODE_BUDGET_BYTES || image.length > IMAGE_BUDGET_BYTES)
        throw new CommandError(
            `${values.entry} is over its budget (code ends at ${codeEnd} B of ${CODE_BUDGET_BYTES}, ` +
                `${image.length} B of ${IMAGE_BUDGET_BYTES}): npm run build says where`
        )
    const digest = createHash("sha256").update(image).digest("hex")
    const known = await withUpdateService(values.db, s => s.published(digest))
    if (known) {
        const which = known.sequence === newest?.sequence ? "the newest release" : "an earlier release"
        throw new RefusedError(
            `this build is identical to ${which}, sequence ${known.sequence} (sha256 ${digest.slice(0, 16)}…): ` +
                "change the firmware first"
        )
    }

    const key = keyring.releaseKey()
    let signed: Buffer
    try {
        signed = signManifest(manifestFor(image, sequence, minSequence), key)
    } catch (e) {
        throw e instanceof ManifestError ? new CommandError(`${values.entry}: ${e.message}`) : e
    }
    await withUpdateService(values.db, async service => {
        for (const d of await publishDocuments(service, keyring.documents()))
            console.log(`published ${d.kind === "root" ? "root" : "key list"} ${d.version} of ${displayPath(values.keys)}`)
        await service.publish(signed, image)
    })
    // kept only once the service took it: what var/releases holds was published
    const folder = join(RELEASES_DIR, `${sequence}-${digest.slice(0, 12)}`)
    const staging = `${folder}.partial`
    ensurePrivateDir(staging)
    writeFileSync(join(staging, "image.devs"), image, { mode: 0o600 })
    writeFileSync(join(staging, "image.manifest"), signed, { mode: 0o600 })
    renameSync(staging, folder)
    console.log(
        `published ${values.entry} as sequence ${sequence} (${image.length} B, sha256 ${digest}), ` +
            `signed by release key ${keyId(key.publicKey).toString("hex")}; kept in ${displayPath(folder)}`
    )

    const release = { digest, sequence, minSequence }
    const devices = await ownerDevices(values)
    if (typeof devices === "string") {
        console.log(`the owner service did not answer (${devices}): once it runs, roll it out with`)
        console.log(`  npm run rollout -- create --digest ${digest} --sequence ${sequence}`)
        return
    }
    for (const line of describePlan(release, planRollout(release, devices))) console.log(line)
})
