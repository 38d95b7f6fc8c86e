/**
 * A private certificate authority for the local stack and the tests, made
 * with the `openssl` command: a CA, a server certificate for localhost and
 * 127.0.0.1 that the simulator trusts through NODE_EXTRA_CA_CERTS, and the
 * bad certificates the TLS tests must see refused. Keys stay under the
 * project's git-ignored `var/` (or a test's temporary folder), never in git.
 * In production the registry and broker use certificates from a public CA.
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { ensurePrivateDir, underPrivateUmask, writePrivateFile } from "../files/private.ts"

/** File paths of the local PKI. */
export interface Pki {
    dir: string
    caCert: string
    caKey: string
    serverCert: string
    serverKey: string
}

function openssl(args: string[], cwd: string) {
    execFileSync(...underPrivateUmask("openssl", args), { cwd, stdio: ["ignore", "ignore", "pipe"] })
}

function newKeyAndCsr(dir: string, name: string, cn: string) {
    openssl(
        [
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            `${name}.key`,
            "-out",
            `${name}.csr`,
            "-subj",
            `/CN=${cn}`,
        ],
        dir
    )
}

function sign(dir: string, name: string, ca: string, days: number, san: string, usage = "serverAuth") {
    writePrivateFile(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=${usage}\n`)
    openssl(
        [
            "x509",
            "-req",
            "-in",
            `${name}.csr`,
            "-CA",
            `${ca}.crt`,
            "-CAkey",
            `${ca}.key`,
            "-CAcreateserial",
            "-out",
            `${name}.crt`,
            "-days",
            String(days),
            "-extfile",
            `${name}.ext`,
        ],
        dir
    )
}

function selfSigned(dir: string, name: string, cn: string, days: number, extra: string[] = []) {
    openssl(
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            `${name}.key`,
            "-out",
            `${name}.crt`,
            "-days",
            String(days),
            "-subj",
            `/CN=${cn}`,
            ...extra,
        ],
        dir
    )
}

/** Creates the CA and the localhost server certificate in `dir`, unless they exist. */
export function ensurePki(dir: string): Pki {
    ensurePrivateDir(dir)
    const pki = {
        dir,
        caCert: join(dir, "ca.crt"),
        caKey: join(dir, "ca.key"),
        serverCert: join(dir, "server.crt"),
        serverKey: join(dir, "server.key"),
    }
    if (!existsSync(pki.caCert) || !existsSync(pki.serverCert)) {
        selfSigned(dir, "ca", "sentinel-node local CA", 3650, [
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
        newKeyAndCsr(dir, "server", "localhost")
        sign(dir, "server", "ca", 365, "DNS:localhost,IP:127.0.0.1")
    }
    return pki
}

/**
 * A client certificate from the local CA for `name` (`<name>.crt` / `<name>.key` beside the CA), made once:
 * what the broker's nodes present to the registry's auth backend (devs/broker/rabbitmq-auth.ts).
 */
export function ensureClientCertificate(pki: Pki, name: string): { cert: string; key: string } {
    if (!/^[a-z][a-z0-9-]{0,40}$/.test(name)) throw new RangeError(`client certificate name ${JSON.stringify(name)}`)
    const files = { cert: join(pki.dir, `${name}.crt`), key: join(pki.dir, `${name}.key`) }
    if (!existsSync(files.cert)) {
        newKeyAndCsr(pki.dir, name, name)
        sign(pki.dir, name, "ca", 365, `DNS:${name}`, "clientAuth")
    }
    return files
}

/** Certificates a client must refuse, each as `<name>.crt` / `<name>.key` in the PKI folder. */
export type BadCertificate = "self-signed" | "expired" | "wrong-name" | "unknown-ca"

/** Makes the bad certificates (for TLS refusal tests) beside a PKI. */
export function makeBadCertificates(pki: Pki): Record<BadCertificate, { cert: string; key: string }> {
    const dir = pki.dir
    const path = (name: string) => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) })
    if (!existsSync(join(dir, "unknown-ca.crt"))) {
        selfSigned(dir, "self-signed", "localhost", 30, ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        newKeyAndCsr(dir, "expired", "localhost")
        // notAfter one day before issue: expired from the start
        sign(dir, "expired", "ca", -1, "DNS:localhost,IP:127.0.0.1")
        newKeyAndCsr(dir, "wrong-name", "wrong.example")
        sign(dir, "wrong-name", "ca", 30, "DNS:wrong.example")
        selfSigned(dir, "other-ca", "someone else's CA", 30, ["-addext", "basicConstraints=critical,CA:TRUE"])
        newKeyAndCsr(dir, "unknown-ca", "localhost")
        sign(dir, "unknown-ca", "other-ca", 30, "DNS:localhost,IP:127.0.0.1")
    }
    return {
        "self-signed": path("self-signed"),
        expired: path("expired"),
        "wrong-name": path("wrong-name"),
        "unknown-ca": path("unknown-ca"),
    }
}
