/**
 * `npm run keys`: the owner's firmware keys after keygen (devs/updates/keyring.ts):
 *
 *   status                 the current root and key list, and which key files are here
 *   rotate [--keep]        a new release key; the new key list names it alone (or beside the current ones)
 *   revoke <kid>           a key list without that release key: devices refuse what it signs
 *   rotate-root            a new root of fresh keys, signed by the threshold of the current root and of
 *                          itself, a key list for it, and the trust anchor of new builds
 *   publish                hands the update service the documents it does not hold yet
 *
 * Every new document is signed by the threshold of the current root, with the
 * root keys named by --root-keys (each may be on its own removable medium) or
 * found in --keys, written to <keys>/trust, and published to the update
 * service when its database exists. Devices fetch them before the next
 * manifest they are asked to install.
 *
 *   npm run keys -- <command> [--root-keys a.json,b.json] [--keys var/keys] [--db FILE] [--anchor FILE]
 */
import { existsSync } from "node:fs"
import { displayPath, runCommand, UsageError } from "../cli/args.ts"
import { DB, KEYS, ROOT_KEYS, rootShape, THRESHOLD, withUpdateService } from "../cli/options.ts"
import { TRUST_ANCHOR_PATH } from "../project.ts"
import { keyId } from "../updates/cose-sign1.ts"
import { Keyring, publishDocuments, writeTrustAnchor } from "../updates/keyring.ts"

const COMMANDS = "status | rotate | revoke <kid> | rotate-root | publish"

const spec = {
    name: "keys",
    summary: "Rotates and revokes release keys, replaces the root, and publishes what the root signed (after npm run keygen).",
    positionals: { usage: `(${COMMANDS})`, min: 1, max: 2 },
    options: {
        "root-keys": {
            type: "string",
            value: "file,file",
            defaultText: "the root-*.json in --keys",
            help: "the root key files that sign (as many as the root's threshold)",
        },
        keep: { type: "boolean", help: "rotate: keep the current release keys in the new key list" },
        roots: ROOT_KEYS,
        threshold: THRESHOLD,
        keys: KEYS,
        db: { ...DB, help: "the update service's database to publish into, if it exists" },
        anchor: { type: "string", value: "file", default: TRUST_ANCHOR_PATH, help: "the firmware's trust anchor module (rotate-root)" },
    },
    notes: [
        "commands:",
        "  status        the current root and key list, and which key files are here",
        "  rotate        a new release key; the new key list names it alone (--keep: beside the current ones)",
        "  revoke <kid>  a key list without that release key (16 hex digits, as status shows it)",
        "  rotate-root   a new root (--roots, --threshold), signed by the current root's threshold and its own",
        "  publish       hands the update service the documents it does not hold yet",
        "Root keys are needed only here: keep each on its own offline medium and name them with --root-keys.",
    ],
} as const

const hexId = (k: Uint8Array) => keyId(k).toString("hex")

await runCommand(spec, async ({ values, positionals: [command, argument] }) => {
    if (!["status", "rotate", "revoke", "rotate-root", "publish"].includes(command))
        throw new UsageError(`unknown command ${command}: ${COMMANDS}`)
    if ((command === "revoke") !== (argument !== undefined))
        throw new UsageError(command === "revoke" ? "revoke needs the key id of a release key" : `${command} takes no argument`)
    if (command === "revoke" && !/^[0-9a-f]{16}$/i.test(argument)) throw new UsageError(`${argument} is not a key id (16 hex digits)`)
    const keyring = new Keyring(values.keys)
    const signers = () => keyring.rootSigners(values["root-keys"]?.split(","))
    if (command === "status") {
        const { root, keyList } = keyring.chain()
        const here = (path: string) => (existsSync(path) ? "here" : "offline")
        if (!root || !keyList) throw new UsageError(`no root in ${displayPath(values.keys)}: npm run keygen makes one`)
        console.log(
            `root ${root.version}: ${root.threshold} of ${root.keys.map(k => `${hexId(k)} (${here(keyring.rootKeyPath(k))})`).join(", ")}`
        )
        const release = keyList.keys.map(k => `${hexId(k)} (${here(keyring.releaseKeyPath(k))})`).join(", ")
        console.log(`key list ${keyList.version} for root ${keyList.rootVersion}: ${release}`)
    } else if (command === "rotate") {
        const { key, document } = keyring.rotateReleaseKey(signers(), values.keep)
        console.log(
            `release key ${hexId(key.publicKey)} in ${displayPath(keyring.releaseKeyPath(key.publicKey))}; key list ${document.version}`
        )
    } else if (command === "revoke") {
        const document = keyring.revokeReleaseKey(argument, signers())
        console.log(`key list ${document.version} without ${argument.toLowerCase()}`)
    } else if (command === "rotate-root") {
        const { roots, threshold } = rootShape(values.roots, values.threshold)
        const [root, keyList] = keyring.rotateRoot(signers(), roots, threshold)
        writeTrustAnchor(keyring.anchor(), values.anchor)
        console.log(`root ${root.version}: ${threshold} of ${roots} new keys in ${displayPath(values.keys)}; key list ${keyList.version}`)
        console.log(`trust anchor written to ${displayPath(values.anchor)}; move the new root keys offline, the old ones can go`)
    }
    if (command === "status") return
    if (command !== "publish" && !existsSync(values.db)) {
        console.log(`no update service database at ${displayPath(values.db)}: npm run keys -- publish hands it the documents later`)
        return
    }
    const published = await withUpdateService(values.db, service => publishDocuments(service, keyring.documents()))
    for (const d of published)
        console.log(`published ${d.kind === "root" ? "root" : "key list"} ${d.version} (${d.copies.length} signatures)`)
    if (!published.length) console.log("the update service holds every document already")
})
