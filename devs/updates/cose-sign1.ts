/**
 * Everything the owner signs for devices, on the host: one COSE_Sign1
 * (RFC 9052 §4.2) per signature, with SLH-DSA-SHA2-128s (FIPS 205, pure, empty
 * context) over the Sig_structure of §4.4 with empty external AAD:
 *
 *   18([ protected: << {1: "SLH-DSA-SHA2-128s", 4: kid} >>, unprotected: {}, payload: << document >>, signature ])
 *
 * The kid is the first 8 bytes of SHA-256 of the signer's public key, in the
 * protected header, so the signature covers which key it claims to be; a
 * verifier only uses it to pick the key it already trusts. The algorithm is
 * named by text (RFC 9052 §3.1 allows a tstr `alg`: SLH-DSA's COSE number is
 * still a draft), and it is the only one accepted, so nothing can be
 * downgraded. A document several keys must sign (a root, a key list) travels
 * as several of these over the same payload: a device holds one 7,856-byte
 * signature in RAM at a time. src/update/manifest.ts reads the same bytes on the device.
 */
import { createHash } from "node:crypto"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"
import { decode, encode, Tag } from "cbor2"

/** COSE_Sign1 tag and the only algorithm (RFC 9052 §2, §3.1: a text `alg`). */
export const COSE_SIGN1_TAG = 18
export const SIGNATURE_ALG = "SLH-DSA-SHA2-128s"
/** Bytes of a key id: the first of SHA-256 of the public key. */
export const KEY_ID_BYTES = 8

/** A key pair. */
export interface SigningKey {
    publicKey: Uint8Array
    secretKey: Uint8Array
}

/** Raised for signed bytes that are malformed or do not verify. */
export class SignatureError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "SignatureError"
    }
}

/** The parts of a COSE_Sign1, read but not yet verified. */
export interface SignedParts {
    protectedHeader: Buffer
    /** Which key claims to have signed (first 8 bytes of SHA-256 of its public key). */
    kid: Buffer
    payload: Buffer
    signature: Buffer
}

/** A plain Uint8Array view: cbor2 encodes a Node Buffer as an object (via toJSON), not as a byte string. */
export function bstr(b: Uint8Array): Uint8Array {
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

/** The key id of a public key. */
export function keyId(publicKey: Uint8Array): Buffer {
    return createHash("sha256").update(publicKey).digest().subarray(0, KEY_ID_BYTES)
}

/** Makes a key pair (the library draws its seed from the platform's CSPRNG). */
export function generateSigningKey(): SigningKey {
    const { publicKey, secretKey } = slh_dsa_sha2_128s.keygen()
    return { publicKey, secretKey }
}

/** The bytes signed: Sig_structure (RFC 9052 §4.4) with empty external AAD. */
export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Buffer {
    return Buffer.from(encode(["Signature1", bstr(protectedHeader), new Uint8Array(0), bstr(payload)], { cde: true }))
}

/** The protected header naming the algorithm and the signer. */
export function protectedHeaderFor(publicKey: Uint8Array): Buffer {
    return Buffer.from(
        encode(
            new Map<number, unknown>([
                [1, SIGNATURE_ALG],
                [4, bstr(keyId(publicKey))],
            ]),
            { cde: true }
        )
    )
}

/** Signs `payload` with `key`: the COSE_Sign1 bytes (deterministic CBOR, RFC 8949 §4.2.1). */
export function signCose(payload: Uint8Array, key: SigningKey): Buffer {
    const protectedHeader = protectedHeaderFor(key.publicKey)
    const signature = slh_dsa_sha2_128s.sign(sigStructure(protectedHeader, payload), key.secretKey)
    return Buffer.from(encode(new Tag(COSE_SIGN1_TAG, [bstr(protectedHeader), new Map(), bstr(payload), bstr(signature)]), { cde: true }))
}

function asBuffer(v: unknown, what: string): Buffer {
    if (!(v instanceof Uint8Array)) throw new SignatureError(`${what} must be a byte string`)
    return Buffer.from(v)
}

/** One CBOR item, or a `SignatureError` that names `what` was not CBOR. */
export function decodeCborItem(bytes: Uint8Array, what: string): unknown {
    try {
        return decode(bytes)
    } catch {
        throw new SignatureError(`${what} is not CBOR`)
    }
}

/** Reads a COSE_Sign1 as this project signs them. Throws `SignatureError`. */
export function readCose(signed: Uint8Array): SignedParts {
    const v = decodeCborItem(signed, "signed document")
    if (!(v instanceof Tag) || Number(v.tag) !== COSE_SIGN1_TAG || !Array.isArray(v.contents) || v.contents.length !== 4)
        throw new SignatureError("not a COSE_Sign1")
    const [p, , payloadField, sigField] = v.contents as unknown[]
    const protectedHeader = asBuffer(p, "protected header")
    const header = decodeCborItem(protectedHeader, "protected header")
    const kid = header instanceof Map ? header.get(4) : undefined
    if (!(header instanceof Map) || header.size !== 2 || header.get(1) !== SIGNATURE_ALG || !(kid instanceof Uint8Array))
        throw new SignatureError(`protected header must name ${SIGNATURE_ALG} and the signer's kid only`)
    if (kid.length !== KEY_ID_BYTES) throw new SignatureError(`kid must be ${KEY_ID_BYTES} bytes`)
    return {
        protectedHeader,
        kid: Buffer.from(kid),
        payload: asBuffer(payloadField, "payload"),
        signature: asBuffer(sigField, "signature"),
    }
}

/** Whether `parts` carry a valid signature by `publicKey`. */
export function verifyCose(parts: SignedParts, publicKey: Uint8Array): boolean {
    return (
        parts.signature.length === slh_dsa_sha2_128s.lengths.signature &&
        publicKey.length === slh_dsa_sha2_128s.lengths.publicKey &&
        slh_dsa_sha2_128s.verify(parts.signature, sigStructure(parts.protectedHeader, parts.payload), publicKey)
    )
}
