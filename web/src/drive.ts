// Upload and download pipelines: encryption and decryption segment by segment, so a file is
// never held in the JavaScript heap whole.
//
// Upload: the file is read twice from disk in 4 MiB slices: once to hash (the SHA-256 is sealed
// in the header before the first segment), once to encrypt. The ciphertext is written to a
// temporary file in the origin's private file system (OPFS, on disk), and that file is sent with
// XMLHttpRequest (a Content-Length, progress, cancel), then removed. Where OPFS is missing, the
// sealed segments go into Blobs of 16 MiB instead (the browser's blob store, which Chromium caps
// at a few hundred MiB here: large files need OPFS).
//
// Download: the response streams through the Decryptor; each authenticated plaintext segment is
// written to a file the user picked (File System Access API: written to a temporary file that
// becomes the file only when every segment and the sealed SHA-256 checked out) or, where that API
// is missing, to a temporary OPFS file (else Blobs) handed to the browser's download at the end.

import {
  DEFAULT_SEGMENT_SIZE,
  Decryptor,
  Encryptor,
  FormatError,
  concat,
  OwnerKey,
  encryptName,
  encryptedLen,
  isEncryptedName,
  openName,
  createSha256,
} from './format'
import type { FileEntry, NodeClient } from './node'

const READ_STEP = 4 * 1024 * 1024
const BLOB_STEP = 16 * 1024 * 1024

export type Stage = 'hashing' | 'encrypting' | 'sending' | 'done'

/** Collects chunks into Blobs of about 16 MiB so that the JavaScript heap holds at most one. */
class BlobBuilder {
  private parts: BlobPart[] = []
  private pending: Uint8Array[] = []
  private pendingLen = 0

  push(b: Uint8Array) {
    this.pending.push(b)
    this.pendingLen += b.length
    if (this.pendingLen >= BLOB_STEP) this.flush()
  }

  private flush() {
    if (this.pending.length) this.parts.push(new Blob(this.pending as BlobPart[]))
    this.pending = []
    this.pendingLen = 0
  }

  blob(type = 'application/octet-stream'): Blob {
    this.flush()
    return new Blob(this.parts, { type })
  }
}

/** A temporary file in the origin private file system (disk), or `null` where the browser has
 * none (or no writable streams for it). Removed by `remove`, or at the next start. */
interface TempFile {
  write(b: Uint8Array): Promise<void>
  close(): Promise<File>
  remove(): Promise<void>
}

const TMP_DIR = 'px-tmp'

async function tempDir(): Promise<FileSystemDirectoryHandle | null> {
  try {
    const root = await navigator.storage.getDirectory()
    return await root.getDirectoryHandle(TMP_DIR, { create: true })
  } catch {
    return null
  }
}

let tmpSeq = 0

export async function tempFile(): Promise<TempFile | null> {
  const dir = await tempDir()
  if (!dir) return null
  const name = `${Date.now()}-${tmpSeq++}`
  try {
    const fh = await dir.getFileHandle(name, { create: true })
    const w = await (fh as unknown as { createWritable(): Promise<FileSystemWritableFileStream> }).createWritable()
    return {
      write: (b) => w.write(b as Uint8Array<ArrayBuffer>),
      close: async () => {
        await w.close()
        return fh.getFile()
      },
      remove: () => dir.removeEntry(name).catch(() => {}),
    }
  } catch {
    await dir.removeEntry(name).catch(() => {})
    return null
  }
}

/** Removes temporary files left by earlier visits (a closed tab, a finished download). */
export async function cleanTemp(olderThanMs = 0) {
  const dir = await tempDir()
  if (!dir) return
  const names: string[] = []
  for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name)
  for (const name of names) {
    if (Date.now() - Number(name.split('-')[0]) >= olderThanMs) await dir.removeEntry(name).catch(() => {})
  }
}

async function readSlice(file: Blob, at: number, signal: AbortSignal): Promise<Uint8Array> {
  signal.throwIfAborted()
  return new Uint8Array(await file.slice(at, Math.min(file.size, at + READ_STEP)).arrayBuffer())
}

/** Encrypts `file` and uploads it as `file.name`; `progress` gets (stage, done, total). */
export async function uploadFile(
  node: NodeClient,
  owner: OwnerKey,
  tokenId: number,
  file: File,
  progress: (stage: Stage, done: number, total: number) => void,
  signal: AbortSignal,
): Promise<{ file: FileEntry; ms: number; stages: Record<string, number> }> {
  const started = performance.now()
  const stages: Record<string, number> = {}
  const lap = (name: string) => (stages[name] = Math.round(performance.now() - started))
  const size = file.size
  const hasher = await createSha256()
  for (let at = 0; at < size; at += READ_STEP) {
    hasher.update(await readSlice(file, at, signal))
    progress('hashing', Math.min(size, at + READ_STEP), size)
  }
  lap('hashed')
  const enc = await Encryptor.create(owner, hasher.digest(), DEFAULT_SEGMENT_SIZE)
  const wireName = await encryptName(owner, enc.fileId, file.name)
  const tmp = await tempFile()
  try {
    const blobs = tmp ? null : new BlobBuilder()
    const write = async (parts: Uint8Array[]) => {
      if (tmp) await tmp.write(concat(...parts))
      else for (const p of parts) blobs?.push(p)
    }
    await write([enc.header])
    const seg = DEFAULT_SEGMENT_SIZE
    if (size === 0) await write([await enc.seal(new Uint8Array(0), true)])
    for (let at = 0; at < size; at += READ_STEP) {
      const slice = await readSlice(file, at, signal)
      const sealed: Uint8Array[] = []
      for (let off = 0; off < slice.length; off += seg) {
        const end = at + Math.min(slice.length, off + seg)
        sealed.push(await enc.seal(slice.subarray(off, Math.min(slice.length, off + seg)), end === size))
      }
      await write(sealed)
      progress('encrypting', Math.min(size, at + READ_STEP), size)
    }
    const body = tmp ? await tmp.close() : (blobs as BlobBuilder).blob()
    lap('encrypted')
    return await send(node, tokenId, wireName, body, size, progress, signal, started, stages, lap)
  } finally {
    await tmp?.remove()
  }
}

async function send(
  node: NodeClient,
  tokenId: number,
  wireName: string,
  body: Blob,
  size: number,
  progress: (stage: Stage, done: number, total: number) => void,
  signal: AbortSignal,
  started: number,
  stages: Record<string, number>,
  lap: (name: string) => number,
): Promise<{ file: FileEntry; ms: number; stages: Record<string, number> }> {
  const seg = DEFAULT_SEGMENT_SIZE
  if (body.size !== encryptedLen(size, seg)) {
    throw new FormatError('invalid', 'the file changed size while it was read; upload it again')
  }
  progress('sending', 0, body.size)
  const r = await node.upload(tokenId, wireName, body, (sent) => progress('sending', sent, body.size), signal)
  if (r.file.size !== body.size) {
    throw new FormatError('corrupt', `sent ${body.size} bytes, the node stored ${r.file.size}; upload again`)
  }
  lap('sent')
  progress('done', body.size, body.size)
  return { file: r.file, ms: performance.now() - started, stages }
}

/** A file entry with its name opened. */
export interface Listed {
  entry: FileEntry
  name: string
  encrypted: boolean
  /** The file id the name is bound to (null: a version 1 name). */
  fileId: Uint8Array | null
  /** Why the name could not be opened (another key, damaged). */
  problem?: string
}

export async function listFiles(node: NodeClient, owner: OwnerKey, tokenId: number): Promise<Listed[]> {
  const entries = await node.list(tokenId)
  const out: Listed[] = []
  for (const entry of entries) {
    if (!isEncryptedName(entry.name)) {
      out.push({ entry, name: entry.name, encrypted: false, fileId: null })
      continue
    }
    try {
      const o = await openName(owner, entry.name)
      out.push({ entry, name: o?.name ?? entry.name, encrypted: true, fileId: o?.fileId ?? null })
    } catch (e) {
      out.push({ entry, name: '(name not readable)', encrypted: true, fileId: null, problem: (e as Error).message })
    }
  }
  return out
}

/** Where a download's plaintext goes. */
export interface Sink {
  write(b: Uint8Array): Promise<void>
  /** Everything checked out: keep the file. */
  close(): Promise<void>
  /** Something failed: drop what was written. */
  abort(): Promise<void>
}

type SavePicker = (o: { suggestedName: string }) => Promise<{
  createWritable(): Promise<{ write(b: BufferSource): Promise<void>; close(): Promise<void>; abort(): Promise<void> }>
}>

/** A sink on a file the user picks (File System Access API), or `null` where the API is
 * missing (Firefox, Safari, some embedded browsers). Must be called from a click handler. */
export async function pickFileSink(name: string): Promise<Sink | null> {
  const picker = (window as unknown as { showSaveFilePicker?: SavePicker }).showSaveFilePicker
  if (!picker) return null
  const handle = await picker({ suggestedName: name })
  const w = await handle.createWritable()
  return {
    write: (b) => w.write(b as Uint8Array<ArrayBuffer>),
    close: () => w.close(),
    abort: () => w.abort(),
  }
}

/** A sink on a temporary OPFS file handed to the browser's download when complete (the file is
 * removed at the next start of the dApp, once the browser has long copied it); Blobs where the
 * browser has no OPFS. */
export async function downloadSink(name: string): Promise<Sink> {
  const tmp = await tempFile()
  if (!tmp) return blobSink(name)
  return {
    write: (b) => tmp.write(b),
    close: async () => saveAs(await tmp.close(), name),
    abort: () => tmp.remove(),
  }
}

function saveAs(blob: Blob, name: string) {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = name
  a.hidden = true
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}

/** A sink that builds a Blob and hands it to the browser's download when complete. */
export function blobSink(name: string): Sink {
  const b = new BlobBuilder()
  return {
    write: async (chunk) => b.push(chunk),
    close: async () => saveAs(b.blob(), name),
    abort: async () => {},
  }
}

/** Downloads, decrypts and checks a file into `sink`: only authenticated plaintext is written,
 * the name must be bound to the content (a node cannot swap entries), and the plaintext must
 * hash to the SHA-256 its uploader sealed in the header. */
export async function downloadFile(
  node: NodeClient,
  owner: OwnerKey,
  tokenId: number,
  f: Listed,
  sink: Sink,
  progress: (received: number, total: number) => void,
  signal: AbortSignal,
): Promise<{ written: number; ms: number }> {
  const started = performance.now()
  if (!f.encrypted) {
    throw new FormatError('corrupt', `${f.entry.cid} is stored unencrypted under a plain name; download it with \`px download --plain\``)
  }
  if (f.problem) throw new FormatError('wrong_key', f.problem)
  const dec = new Decryptor(owner, f.fileId)
  let written = 0
  try {
    const r = await node.content(tokenId, f.entry.cid, signal)
    if (!r.body) throw new FormatError('corrupt', 'the node sent no content')
    const reader = r.body.getReader()
    let received = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      received += value.length
      for (const p of await dec.push(value)) {
        await sink.write(p)
        written += p.length
      }
      progress(received, f.entry.size)
    }
    const { plain } = await dec.finish()
    await sink.write(plain)
    written += plain.length
    await sink.close()
  } catch (e) {
    await sink.abort().catch(() => {})
    throw e
  }
  return { written, ms: performance.now() - started }
}

