// The browser's format code against px-core's test vectors (read from core/src/crypto.rs, so
// the two cannot drift apart) and its own round trips and tamper checks.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  Decryptor,
  Encryptor,
  FormatError,
  OwnerKey,
  decrypt,
  encrypt,
  encryptName,
  encryptedLen,
  fromHex,
  openName,
  sha256,
  toHex,
} from '../src/format'

const spec = readFileSync(new URL('../../core/src/crypto.rs', import.meta.url), 'utf8')

/** The string constant `name` of the doc test (a literal or a `concat!` of literals). */
function vector(name: string): string {
  const m = spec.match(new RegExp(`const ${name}: &str =(?:\\s|//!)*(concat!\\(([^)]*)\\)|"([^"]*)")`))
  if (!m) throw new Error(`vector ${name} not found in core/src/crypto.rs`)
  if (m[3] !== undefined) return m[3]
  return [...m[2].matchAll(/"([^"]*)"/g)].map((x) => x[1]).join('')
}

const fill = (n: number, b: number) => new Uint8Array(n).fill(b)
const hello = new TextEncoder().encode('hello')

describe("px-core's test vectors", async () => {
  const owner = await OwnerKey.fromBytes(fill(32, 7))
  const fixed = { fileKey: fill(32, 0x11), fileId: fill(16, 0x22), wrapNonce: fill(12, 0x33) }

  it('derives the key id', () => {
    expect(owner.idHex).toBe(vector('KEY_ID'))
  })

  it('writes the version 2 file byte for byte', async () => {
    expect(toHex(sha256(hello))).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824')
    const sealed = await encrypt(owner, hello, 1024, fixed)
    expect(toHex(sealed)).toBe(vector('FILE_V2'))
    expect(sealed.length).toBe(encryptedLen(hello.length, 1024))
  })

  it('writes the version 2 name byte for byte', async () => {
    const name = await encryptName(owner, fill(16, 0x22), 'report.pdf', fill(12, 0x44))
    expect(name).toBe(vector('NAME_V2'))
  })

  it('reads version 2 bound to its file id, and version 1', async () => {
    const d = new Decryptor(owner, fill(16, 0x22))
    const parts = await d.push(fromHex(vector('FILE_V2')))
    const { plain, opened } = await d.finish()
    expect(new TextDecoder().decode(new Uint8Array([...parts.flatMap((p) => [...p]), ...plain]))).toBe('hello')
    expect(opened.version).toBe(2)
    expect(toHex(opened.sha256)).toBe(toHex(sha256(hello)))
    expect(new TextDecoder().decode(await decrypt(owner, fromHex(vector('FILE_V1'))))).toBe('hello')
    expect(await openName(owner, vector('NAME_V1'))).toEqual({ name: 'report.pdf', fileId: null })
    const v2 = await openName(owner, vector('NAME_V2'))
    expect(v2?.name).toBe('report.pdf')
    expect(toHex(v2?.fileId as Uint8Array)).toBe('22'.repeat(16))
  })

  it('derives the owner key from a signature as px-core does', async () => {
    // HKDF-SHA256(ikm = r || s, salt = "px-storage owner key v1", info = address): the same
    // inputs always give the same key, and another address gives another key.
    const sig = '0x' + '11'.repeat(32) + '22'.repeat(32) + '1b'
    const a = await OwnerKey.fromSignature('0x' + '33'.repeat(20), sig)
    const b = await OwnerKey.fromSignature('0x' + '33'.repeat(20), sig.slice(0, -2) + '1c')
    const c = await OwnerKey.fromSignature('0x' + '44'.repeat(20), sig)
    expect(a.idHex).toBe(b.idHex) // v is not part of the key
    expect(a.idHex).not.toBe(c.idHex)
  })
})

describe('streaming and tampering', async () => {
  const owner = await OwnerKey.fromBytes(fill(32, 42))
  const data = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31) % 251)

  it('round-trips sizes around segment boundaries, fed in odd chunks', async () => {
    for (const n of [0, 1, 1023, 1024, 1025, 4096, 5000]) {
      const plain = data(n)
      const sealed = await encrypt(owner, plain, 1024)
      expect(sealed.length).toBe(encryptedLen(n, 1024))
      const d = new Decryptor(owner)
      const out: number[] = []
      for (let at = 0; at < sealed.length; at += 77) {
        for (const p of await d.push(sealed.subarray(at, at + 77))) out.push(...p)
      }
      out.push(...(await d.finish()).plain)
      expect(toHex(new Uint8Array(out))).toBe(toHex(plain))
    }
  })

  it('detects truncation, modification, a wrong key, a swapped name and a changed input', async () => {
    const plain = data(3000)
    const sealed = await encrypt(owner, plain, 1024)
    const cut = sealed.subarray(0, sealed.length - (3000 - 2048) - 16)
    await expect(decrypt(owner, cut)).rejects.toThrow(/truncated/)
    const flipped = sealed.slice()
    flipped[200] ^= 1
    await expect(decrypt(owner, flipped)).rejects.toThrow(/segment 0 failed authentication/)
    const other = await OwnerKey.fromBytes(fill(32, 8))
    await expect(decrypt(other, sealed)).rejects.toMatchObject({ kind: 'wrong_key' })
    const bound = new Decryptor(owner, fill(16, 9))
    await expect(bound.push(sealed)).rejects.toThrow(/another file/)
    const e = await Encryptor.create(owner, sha256(plain), 1024)
    await e.seal(plain.subarray(0, 1024), false)
    await expect(e.seal(fill(10, 1), true)).rejects.toBeInstanceOf(FormatError)
  })
})
