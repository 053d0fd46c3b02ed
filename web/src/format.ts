// The PX encryption format, version 2 (and version 1, read only), with WebCrypto: byte for
// byte what px-core's `crypto` module writes and reads (its module docs are the spec; the test
// vectors there are checked by test/format.test.ts).
//
// Streaming: an Encryptor seals one segment at a time and a Decryptor releases plaintext one
// authenticated segment at a time, so no file needs to sit in memory whole.

import { sha256 } from '@noble/hashes/sha2'
import { createSHA256 } from 'hash-wasm'

export const MAGIC = new Uint8Array([0x89, 0x50, 0x58, 0x45, 0x0d, 0x0a, 0x1a, 0x0a])
export const VERSION = 2
export const VERSION_1 = 1
export const ALG_AES_256_GCM = 1
export const HEADER_LEN = 132
export const HEADER_LEN_V1 = 100
export const TAG_LEN = 16
export const FILE_ID_LEN = 16
export const DEFAULT_SEGMENT_SIZE = 256 * 1024
export const MIN_SEGMENT_SIZE = 1024
export const MAX_SEGMENT_SIZE = 16 * 1024 * 1024
export const NAME_PREFIX = 'pxe2.'
export const NAME_PREFIX_V1 = 'pxe1.'
/** The text a wallet is shown when it signs the owner-key message. */
export const OWNER_KEY_PURPOSE =
  'Derive my PX storage encryption key. Sign only in PX storage clients.'

const WRAP_AAD_LEN = 52
const enc = new TextEncoder()
const KEY_ID_INFO = enc.encode('px-storage key id v1')
const WRAP_INFO = enc.encode('px-storage wrap v1')
const NAME_INFO = enc.encode('px-storage name v1')
const NAME_AAD_V2 = enc.encode('px-storage name v2')
const WALLET_SALT = enc.encode('px-storage owner key v1')

/** Why encryption or decryption failed; `kind` lets callers tell a wrong key from damage. */
export class FormatError extends Error {
  constructor(
    readonly kind: 'wrong_key' | 'corrupt' | 'invalid',
    message: string,
  ) {
    super(message)
    this.name = 'FormatError'
  }
}

const subtle = globalThis.crypto.subtle

/** An incremental SHA-256. */
export interface Hasher {
  update(b: Uint8Array): void
  digest(): Uint8Array
}

/** SHA-256 in WebAssembly (hash-wasm: several times faster than JavaScript), or in JavaScript
 * (@noble/hashes) where WebAssembly is not allowed. WebCrypto has no incremental digest. */
export async function createSha256(): Promise<Hasher> {
  try {
    const h = await createSHA256()
    h.init()
    return {
      update: (b) => {
        h.update(b)
      },
      digest: () => h.digest('binary'),
    }
  } catch {
    const h = sha256.create()
    return { update: (b) => h.update(b), digest: () => h.digest() }
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export function toHex(b: Uint8Array): string {
  let s = ''
  for (const x of b) s += x.toString(16).padStart(2, '0')
  return s
}

export function fromHex(h: string): Uint8Array {
  const s = h.startsWith('0x') ? h.slice(2) : h
  if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new FormatError('invalid', `not hex: ${h}`)
  const out = new Uint8Array(s.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16)
  return out
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i]
  return d === 0
}

function b64url(b: Uint8Array): string {
  let s = ''
  for (const x of b) s += String.fromCharCode(x)
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function fromB64url(s: string): Uint8Array {
  if (/[^A-Za-z0-9_-]/.test(s)) throw new Error('not base64url')
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/'))
  const out = new Uint8Array(b.length)
  for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i)
  return out
}

// WebCrypto wants ArrayBuffer-backed views; our Uint8Arrays always are.
const buf = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>

async function hkdf32(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Promise<Uint8Array> {
  const key = await subtle.importKey('raw', buf(ikm), 'HKDF', false, ['deriveBits'])
  // An absent salt is HashLen zero bytes (RFC 5869), the same HMAC key as an empty one.
  const bits = await subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: buf(salt), info: buf(info) },
    key,
    256,
  )
  return new Uint8Array(bits)
}

function aesKey(raw: Uint8Array): Promise<CryptoKey> {
  return subtle.importKey('raw', buf(raw), 'AES-GCM', false, ['encrypt', 'decrypt'])
}

async function seal(key: CryptoKey, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array) {
  const out = await subtle.encrypt(
    { name: 'AES-GCM', iv: buf(nonce), additionalData: buf(aad), tagLength: 128 },
    key,
    buf(plain),
  )
  return new Uint8Array(out) // ciphertext || tag
}

async function open(key: CryptoKey, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array) {
  const out = await subtle.decrypt(
    { name: 'AES-GCM', iv: buf(nonce), additionalData: buf(aad), tagLength: 128 },
    key,
    buf(sealed),
  )
  return new Uint8Array(out)
}

function randomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n))
}

/** A wallet's owner key: wraps file keys and encrypts names. */
export class OwnerKey {
  private constructor(
    /** The 8-byte key id. */
    readonly id: Uint8Array,
    readonly wrapKey: CryptoKey,
    readonly nameKey: CryptoKey,
  ) {}

  static async fromBytes(key: Uint8Array): Promise<OwnerKey> {
    if (key.length !== 32) throw new FormatError('invalid', 'an owner key is 32 bytes')
    const id = sha256(concat(KEY_ID_INFO, key)).slice(0, 8)
    const none = new Uint8Array(0)
    const wrap = await aesKey(await hkdf32(key, none, WRAP_INFO))
    const name = await aesKey(await hkdf32(key, none, NAME_INFO))
    return new OwnerKey(id, wrap, name)
  }

  /** The key from the wallet's 65-byte signature over {@link ownerKeyTypedData}: HKDF-SHA256
   * of `r || s` with the salt "px-storage owner key v1" and the owner's address as info. */
  static async fromSignature(owner: string, signature: string): Promise<OwnerKey> {
    const sig = fromHex(signature)
    if (sig.length !== 65) throw new FormatError('invalid', 'the signature is not 65 bytes')
    const key = await hkdf32(sig.slice(0, 64), WALLET_SALT, fromHex(owner))
    return OwnerKey.fromBytes(key)
  }

  get idHex(): string {
    return toHex(this.id)
  }
}

/** The EIP-712 message a wallet signs to derive its owner key (no chain: the same key on
 * every chain). */
export function ownerKeyTypedData(owner: `0x${string}`) {
  return {
    domain: { name: 'PX storage', version: '1' },
    types: {
      PxStorageOwnerKey: [
        { name: 'purpose', type: 'string' },
        { name: 'owner', type: 'address' },
        { name: 'version', type: 'uint32' },
      ],
    },
    primaryType: 'PxStorageOwnerKey' as const,
    message: { purpose: OWNER_KEY_PURPOSE, owner, version: 1 },
  }
}

/** Ciphertext length of a `plainLen`-byte file (version 2). */
export function encryptedLen(plainLen: number, segmentSize = DEFAULT_SEGMENT_SIZE): number {
  const segments = Math.max(1, Math.ceil(plainLen / segmentSize))
  return HEADER_LEN + plainLen + segments * TAG_LEN
}

function segmentNonce(index: number, last: boolean): Uint8Array {
  const n = new Uint8Array(12)
  new DataView(n.buffer).setUint32(7, index >>> 0, false)
  n[11] = last ? 1 : 0
  return n
}

function checkSegmentSize(s: number) {
  if (!Number.isInteger(s) || s < MIN_SEGMENT_SIZE || s > MAX_SEGMENT_SIZE) {
    throw new FormatError(
      'invalid',
      `segment size must be between ${MIN_SEGMENT_SIZE} and ${MAX_SEGMENT_SIZE}`,
    )
  }
}

/** Fixed secrets, for test vectors only (a file key must never be reused). */
export interface Deterministic {
  fileKey: Uint8Array
  fileId: Uint8Array
  wrapNonce: Uint8Array
}

/** Encrypts one file segment by segment. The plaintext's SHA-256 is sealed in the header, so
 * it must be known first; the last segment is refused if the plaintext sealed hashes otherwise
 * (the input changed while it was read). */
export class Encryptor {
  private index = 0
  private done = false

  private constructor(
    private readonly key: CryptoKey,
    readonly header: Uint8Array,
    readonly segmentSize: number,
    private readonly sha: Uint8Array,
    private readonly hasher: Hasher,
  ) {}

  static async create(
    owner: OwnerKey,
    plainSha256: Uint8Array,
    segmentSize = DEFAULT_SEGMENT_SIZE,
    fixed?: Deterministic,
  ): Promise<Encryptor> {
    checkSegmentSize(segmentSize)
    const fileKey = fixed?.fileKey ?? randomBytes(32)
    const fileId = fixed?.fileId ?? randomBytes(FILE_ID_LEN)
    const wrapNonce = fixed?.wrapNonce ?? randomBytes(12)
    const header = new Uint8Array(HEADER_LEN)
    header.set(MAGIC, 0)
    header[8] = VERSION
    header[9] = ALG_AES_256_GCM
    new DataView(header.buffer).setUint32(12, segmentSize, true)
    header.set(fileId, 16)
    header.set(owner.id, 32)
    header.set(wrapNonce, 40)
    const sealed = await seal(
      owner.wrapKey,
      wrapNonce,
      header.slice(0, WRAP_AAD_LEN),
      concat(fileKey, plainSha256),
    )
    header.set(sealed, WRAP_AAD_LEN)
    return new Encryptor(await aesKey(fileKey), header, segmentSize, plainSha256.slice(), await createSha256())
  }

  /** The file id (header bytes 16..32) the encrypted name is bound to. */
  get fileId(): Uint8Array {
    return this.header.slice(16, 32)
  }

  /** Seals one plaintext segment: exactly `segmentSize` bytes, or at most that for the last. */
  async seal(plain: Uint8Array, last: boolean): Promise<Uint8Array> {
    if (this.done) throw new FormatError('corrupt', 'segment after the final segment')
    if (plain.length > this.segmentSize || (!last && plain.length !== this.segmentSize)) {
      throw new FormatError(
        'corrupt',
        `segment of ${plain.length} bytes (segment size ${this.segmentSize}, final: ${last})`,
      )
    }
    this.hasher.update(plain)
    if (last) {
      this.done = true
      if (!equal(this.hasher.digest(), this.sha)) {
        throw new FormatError(
          'invalid',
          'the file changed while it was encrypted: it no longer hashes to the SHA-256 sealed ' +
            'in the header; upload it again',
        )
      }
    }
    const out = await seal(this.key, segmentNonce(this.index, last), this.header, plain)
    this.index++
    return out
  }
}

/** Bytes received but not yet consumed, kept as a list of chunks (no quadratic copying). */
class ByteQueue {
  private chunks: Uint8Array[] = []
  length = 0

  push(b: Uint8Array) {
    if (b.length) {
      this.chunks.push(b)
      this.length += b.length
    }
  }

  /** Removes and answers the first `n` bytes (n <= length). */
  take(n: number): Uint8Array {
    const out = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const c = this.chunks[0]
      const k = Math.min(c.length, n - at)
      out.set(c.subarray(0, k), at)
      at += k
      if (k === c.length) this.chunks.shift()
      else this.chunks[0] = c.subarray(k)
    }
    this.length -= n
    return out
  }

  peek(n: number): Uint8Array {
    const out = new Uint8Array(Math.min(n, this.length))
    let at = 0
    for (const c of this.chunks) {
      if (at >= out.length) break
      const k = Math.min(c.length, out.length - at)
      out.set(c.subarray(0, k), at)
      at += k
    }
    return out
  }
}

/** What {@link Decryptor.finish} learned about a file. */
export interface Opened {
  version: number
  fileId: Uint8Array
  /** SHA-256 of the plaintext released (version 2: checked against the sealed one). */
  sha256: Uint8Array
}

interface OpenHeader {
  key: CryptoKey
  header: Uint8Array
  segmentSize: number
  version: number
  fileId: Uint8Array
  sha256: Uint8Array | null
}

/** Decrypts a stream, releasing only authenticated plaintext.
 * `binding`: a file id (the entry's version 2 name is bound to it), `null` (a version 1 name:
 * version 1 content), or `undefined` (any file, for tests and raw content). */
export class Decryptor {
  private queue = new ByteQueue()
  private open: OpenHeader | null = null
  private index = 0
  private hasher: Hasher | null = null

  constructor(
    private readonly owner: OwnerKey,
    private readonly binding?: Uint8Array | null,
  ) {}

  private headerLen(): number | null {
    if (this.queue.length < 9) return null
    const head = this.queue.peek(9)
    if (!equal(head.subarray(0, 8), MAGIC)) {
      throw new FormatError('corrupt', 'not PX-encrypted content (bad magic)')
    }
    if (head[8] === VERSION) return HEADER_LEN
    if (head[8] === VERSION_1) return HEADER_LEN_V1
    throw new FormatError('corrupt', `unsupported format version ${head[8]}`)
  }

  private async openHeader(len: number) {
    const header = this.queue.take(len)
    const version = header[8]
    if (header[9] !== ALG_AES_256_GCM || header[10] !== 0 || header[11] !== 0) {
      throw new FormatError('corrupt', `unsupported algorithm ${header[9]} (format version ${version})`)
    }
    const segmentSize = new DataView(header.buffer).getUint32(12, true)
    if (segmentSize < MIN_SEGMENT_SIZE || segmentSize > MAX_SEGMENT_SIZE) {
      throw new FormatError('corrupt', `segment size ${segmentSize} out of range`)
    }
    if (!equal(header.subarray(32, 40), this.owner.id)) {
      throw new FormatError(
        'wrong_key',
        `wrong key: the content is encrypted for owner key ${toHex(header.subarray(32, 40))}, ` +
          `but the key in use is ${this.owner.idHex}; connect the wallet the file was uploaded with`,
      )
    }
    const fileId = header.slice(16, 32)
    const b = this.binding
    if (b === null && version !== VERSION_1) {
      throw new FormatError(
        'corrupt',
        `version ${version} content under a version 1 name (version ${version} files always have version ${version} names)`,
      )
    }
    if (b instanceof Uint8Array) {
      if (version !== VERSION) {
        throw new FormatError(
          'corrupt',
          `the file entry's name is bound to a version ${VERSION} file, but the content is version ${version}`,
        )
      }
      if (!equal(b, fileId)) {
        throw new FormatError(
          'corrupt',
          "the file entry's name belongs to another file (the node swapped names between entries)",
        )
      }
    }
    const secretsLen = version === VERSION ? 64 : 32
    let secrets: Uint8Array
    try {
      secrets = await open(
        this.owner.wrapKey,
        header.subarray(40, 52),
        header.subarray(0, WRAP_AAD_LEN),
        header.subarray(WRAP_AAD_LEN, len),
      )
    } catch {
      throw new FormatError('corrupt', 'the file key does not unwrap (header modified)')
    }
    this.open = {
      key: await aesKey(secrets.subarray(0, 32)),
      header,
      segmentSize,
      version,
      fileId,
      sha256: version === VERSION ? secrets.slice(32, secretsLen) : null,
    }
  }

  private async tryOpenHeader(): Promise<boolean> {
    if (this.open) return true
    const len = this.headerLen()
    if (len !== null && this.queue.length >= len) {
      await this.openHeader(len)
      return true
    }
    return false
  }

  private async openSegment(len: number, last: boolean): Promise<Uint8Array> {
    const o = this.open as OpenHeader
    const sealed = this.queue.take(len)
    let plain: Uint8Array
    try {
      plain = await open(o.key, segmentNonce(this.index, last), o.header, sealed)
    } catch {
      let truncated = false
      if (last) {
        try {
          await open(o.key, segmentNonce(this.index, false), o.header, sealed)
          truncated = true
        } catch {
          /* modified, not cut off */
        }
      }
      throw new FormatError(
        'corrupt',
        truncated
          ? `truncated: the stream ends after segment ${this.index}, which is not the final one`
          : `segment ${this.index} failed authentication (modified, reordered or from another file)`,
      )
    }
    ;(this.hasher ??= await createSha256()).update(plain)
    this.index++
    return plain
  }

  /** Feeds ciphertext; answers the plaintext segments it authenticated. */
  async push(data: Uint8Array): Promise<Uint8Array[]> {
    this.queue.push(data)
    const out: Uint8Array[] = []
    if (!(await this.tryOpenHeader())) return out
    const seg = (this.open as OpenHeader).segmentSize + TAG_LEN
    // A full segment is known not to be the last once a byte follows it.
    while (this.queue.length > seg) out.push(await this.openSegment(seg, false))
    return out
  }

  /** Ends the stream: opens the final segment and checks the plaintext hash (version 2). */
  async finish(): Promise<{ plain: Uint8Array; opened: Opened }> {
    if (!(await this.tryOpenHeader())) {
      const want = this.headerLen() ?? HEADER_LEN_V1
      throw new FormatError(
        'corrupt',
        `truncated: ${this.queue.length} bytes, shorter than the ${want}-byte header`,
      )
    }
    if (this.queue.length < TAG_LEN) {
      throw new FormatError('corrupt', `truncated: the final segment is missing after segment ${this.index}`)
    }
    const plain = await this.openSegment(this.queue.length, true)
    const o = this.open as OpenHeader
    const digest = (this.hasher as Hasher).digest()
    if (o.sha256 && !equal(o.sha256, digest)) {
      throw new FormatError(
        'corrupt',
        `the plaintext's SHA-256 ${toHex(digest)} differs from the ${toHex(o.sha256)} sealed in the header`,
      )
    }
    return { plain, opened: { version: o.version, fileId: o.fileId, sha256: digest } }
  }
}

/** Encrypts a whole buffer (small files and tests). */
export async function encrypt(
  owner: OwnerKey,
  plain: Uint8Array,
  segmentSize = DEFAULT_SEGMENT_SIZE,
  fixed?: Deterministic,
): Promise<Uint8Array> {
  const h = await createSha256()
  h.update(plain)
  const e = await Encryptor.create(owner, h.digest(), segmentSize, fixed)
  const parts = [e.header]
  if (plain.length === 0) parts.push(await e.seal(plain, true))
  for (let at = 0; at < plain.length; at += segmentSize) {
    const end = Math.min(plain.length, at + segmentSize)
    parts.push(await e.seal(plain.subarray(at, end), end === plain.length))
  }
  return concat(...parts)
}

/** Decrypts a whole buffer (any version, any file id). */
export async function decrypt(owner: OwnerKey, sealed: Uint8Array): Promise<Uint8Array> {
  const d = new Decryptor(owner)
  const parts = await d.push(sealed)
  parts.push((await d.finish()).plain)
  return concat(...parts)
}

function nameAad(owner: OwnerKey, fileId: Uint8Array | null): Uint8Array {
  return fileId ? concat(NAME_AAD_V2, owner.id, fileId) : concat(NAME_INFO, owner.id)
}

/** Encrypts a file name bound to its file (`pxe2.<key id>.<file id>.<base64url>`). */
export async function encryptName(
  owner: OwnerKey,
  fileId: Uint8Array,
  name: string,
  nonce: Uint8Array = randomBytes(12),
): Promise<string> {
  const sealed = await seal(owner.nameKey, nonce, nameAad(owner, fileId), enc.encode(name))
  return `${NAME_PREFIX}${owner.idHex}.${toHex(fileId)}.${b64url(concat(nonce, sealed))}`
}

export function isEncryptedName(name: string): boolean {
  return name.startsWith(NAME_PREFIX) || name.startsWith(NAME_PREFIX_V1)
}

/** Opens an encrypted name (version 2 or 1); `null` for a plain name. `fileId` is `null` for a
 * version 1 name (bound to no file). */
export async function openName(
  owner: OwnerKey,
  name: string,
): Promise<{ name: string; fileId: Uint8Array | null } | null> {
  const bad = () => new FormatError('corrupt', `malformed encrypted name ${JSON.stringify(name)}`)
  let rest: string
  let v2: boolean
  if (name.startsWith(NAME_PREFIX)) [rest, v2] = [name.slice(NAME_PREFIX.length), true]
  else if (name.startsWith(NAME_PREFIX_V1)) [rest, v2] = [name.slice(NAME_PREFIX_V1.length), false]
  else return null
  const parts = rest.split('.')
  if (parts.length !== (v2 ? 3 : 2)) throw bad()
  if (parts[0] !== owner.idHex) {
    throw new FormatError(
      'wrong_key',
      `wrong key: the name is encrypted for owner key ${parts[0]}, but the key in use is ` +
        `${owner.idHex}; connect the wallet the file was uploaded with`,
    )
  }
  let fileId: Uint8Array | null = null
  let blob: Uint8Array
  try {
    if (v2) {
      fileId = fromHex(parts[1])
      if (fileId.length !== FILE_ID_LEN) throw bad()
    }
    blob = fromB64url(parts[parts.length - 1])
  } catch {
    throw bad()
  }
  if (blob.length < 12 + TAG_LEN) throw bad()
  let plain: Uint8Array
  try {
    plain = await open(owner.nameKey, blob.subarray(0, 12), nameAad(owner, fileId), blob.subarray(12))
  } catch {
    throw new FormatError('corrupt', `encrypted name ${JSON.stringify(name)} failed authentication`)
  }
  try {
    return { name: new TextDecoder('utf-8', { fatal: true }).decode(plain), fileId }
  } catch {
    throw bad()
  }
}

export { sha256 }
