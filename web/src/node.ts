// The storage node's HTTP API (core/src/api.rs, node/src/openapi.json): Sign-In with Ethereum
// through the wallet (`personal_sign`), a session reused until it nears expiry (kept in
// sessionStorage, so a reload in the same tab does not ask the wallet again), and the file
// calls. The UI never builds a request itself.

import { getAddress, type Address, type Hex } from 'viem'

export interface FileEntry {
  id: number
  name: string
  cid: string
  size: number
  sha256?: string
  createdAt: number
  /** Set (`k/n`) for a file stored on the provider network: `cid` is then its manifest. */
  redundancy?: string
}

export interface Usage {
  tokenId: number
  quota: number
  used: number
  fileCount: number
  seq: number
  index: string
  ipnsId: string
}

export interface KeyAssignment {
  minter: Address
  ipnsName: Hex
  ipnsId: string
  deadline: number
  signature: Hex
  chainId: number
  contract: Address
}

interface Session {
  token: string
  address: Address
  expiresAt: number
  obtained: number
}

/** A refusal of the node, with its machine-readable code (`api::ErrorCode`). */
export class NodeError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | null,
    message: string,
    readonly gate: string | null = null,
  ) {
    super(message)
    this.name = 'NodeError'
  }
}

/** Renew the session when less than this is left (px-sdk: 2 minutes). */
const RENEW_BEFORE = 120
/** Lifetime asked for in the sign-in message; the node may grant less. */
const SESSION_LIFETIME = 24 * 3600

const now = () => Math.floor(Date.now() / 1000)

function rfc3339(secs: number): string {
  return new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** The EIP-4361 message, exactly as px-core's `SiweMessage` renders it. */
export function siweMessage(m: {
  domain: string
  address: Address
  statement: string
  uri: string
  chainId: number
  nonce: string
  issuedAt: number
  expirationTime: number
}): string {
  return (
    `${m.domain} wants you to sign in with your Ethereum account:\n${getAddress(m.address)}\n\n` +
    `${m.statement}\n\nURI: ${m.uri}\nVersion: 1\nChain ID: ${m.chainId}\nNonce: ${m.nonce}\n` +
    `Issued At: ${rfc3339(m.issuedAt)}\nExpiration Time: ${rfc3339(m.expirationTime)}`
  )
}

/** What to do about a node refusal, as the CLI says it. */
function nextStep(code: string | null, message: string, tokenId?: number): string {
  const t = tokenId === undefined ? 'the token' : `token ${tokenId}`
  switch (code) {
    case 'not_owner':
      return `this wallet does not own ${t}; connect the owner's wallet`
    case 'over_quota':
      return `${message}; delete files, or buy quota for ${t}`
    case 'not_served':
      return `this node does not serve ${t} (no key of this node is bound to it); use Register key, or the node that serves it`
    case 'key_moved':
      return `${t} moved to another storage node, which serves it now; open that node's dApp`
    case 'unavailable':
      return `the node cannot reach the chain or IPFS right now (${message}); try again in a minute`
    case 'not_found':
      return `${message}; reload the file list`
    case 'too_large':
      return `${message}; split the file or use another node`
    default:
      return message
  }
}

export class NodeClient {
  private session: Session | null = null
  private readonly storeKey: string

  constructor(
    /** The node's base URL: its origin when the node serves the dApp. */
    readonly base: string,
    readonly chainId: number,
    readonly address: Address,
    private readonly signMessage: (message: string) => Promise<Hex>,
  ) {
    this.storeKey = `px-session:${base}:${address.toLowerCase()}:${chainId}`
    try {
      const s = JSON.parse(sessionStorage.getItem(this.storeKey) ?? 'null') as Session | null
      if (s && s.expiresAt > now()) this.session = s
    } catch {
      /* no storage: sign in again */
    }
  }

  /** The session's expiry, if signed in. */
  get sessionExpiry(): number | null {
    return this.session?.expiresAt ?? null
  }

  /** Signs in: a nonce from the node, an EIP-4361 message signed with `personal_sign`. The
   * message's domain and URI are this client's node URL, never the node's word for them. */
  async login(): Promise<Session> {
    for (let attempt = 0; ; attempt++) {
      const r = await fetch(`${this.base}/v1/auth/nonce`)
      if (r.status === 429 && attempt < 5) {
        await this.waitRetry(r)
        continue
      }
      const nonce = (await this.json(r)) as { nonce: string; domain: string; uri: string; chainId: number }
      if (nonce.chainId !== this.chainId) {
        throw new NodeError(0, null, `the node serves chain ${nonce.chainId} but the deployment is for chain ${this.chainId}; open the dApp of a node for this chain`)
      }
      const url = new URL(this.base)
      const domain = url.host
      const uri = this.base.replace(/\/+$/, '')
      if (nonce.domain !== domain || nonce.uri.replace(/\/+$/, '') !== uri) {
        throw new NodeError(0, null, `refusing to sign in: the node at ${uri} asked for a sign-in to domain ${JSON.stringify(nonce.domain)} and URI ${JSON.stringify(nonce.uri)}; check the node URL (or the node's public_url)`)
      }
      const issuedAt = now()
      const message = siweMessage({
        domain,
        address: this.address,
        statement: 'Sign in to the PX storage node.',
        uri,
        chainId: this.chainId,
        nonce: nonce.nonce,
        issuedAt,
        expirationTime: issuedAt + SESSION_LIFETIME,
      })
      const signature = await this.signMessage(message)
      const resp = await fetch(`${this.base}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message, signature }),
      })
      if (resp.status === 429 && attempt < 5) {
        await this.waitRetry(resp)
        continue
      }
      const s = (await this.json(resp)) as { token: string; address: Address; expiresAt: number }
      if (getAddress(s.address) !== getAddress(this.address)) {
        throw new NodeError(0, null, `signed in as ${this.address}, but the node issued a session for ${s.address}`)
      }
      this.session = { ...s, obtained: issuedAt }
      try {
        sessionStorage.setItem(this.storeKey, JSON.stringify(this.session))
      } catch {
        /* not kept across reloads */
      }
      return this.session
    }
  }

  private async waitRetry(r: Response) {
    const secs = Math.min(60, Number(r.headers.get('retry-after') ?? '1') || 1)
    await new Promise((res) => setTimeout(res, secs * 1000 + Math.random() * 500))
  }

  /** A valid session token, signing in when there is none or it is about to expire. */
  async token(): Promise<string> {
    const s = this.session
    if (s) {
      const margin = Math.min(RENEW_BEFORE, Math.floor((s.expiresAt - s.obtained) / 4))
      if (s.expiresAt > now() + margin) return s.token
    }
    return (await this.login()).token
  }

  forget() {
    this.session = null
    try {
      sessionStorage.removeItem(this.storeKey)
    } catch {
      /* nothing kept */
    }
  }

  private async json(r: Response, tokenId?: number): Promise<unknown> {
    const text = await r.text()
    let body: { error?: string; message?: string; gate?: string } | null = null
    try {
      body = JSON.parse(text)
    } catch {
      /* not JSON */
    }
    if (!r.ok) {
      const code = body?.error ?? null
      const message = body?.message ?? (text.trim() || `HTTP ${r.status}`)
      if (r.status === 429) {
        throw new NodeError(429, code, `${message}; the node rate-limits requests, try again in ${r.headers.get('retry-after') ?? '1'} s`)
      }
      throw new NodeError(r.status, code, nextStep(code, message, tokenId), body?.gate ?? null)
    }
    return body
  }

  /** A request with the session; signs in again once on 401. */
  async call(method: string, path: string, init: RequestInit = {}, tokenId?: number): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.token()
      const r = await fetch(`${this.base}${path}`, {
        ...init,
        method,
        headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` },
      })
      if (r.status === 401 && attempt === 0) {
        this.forget()
        continue
      }
      if (!r.ok) await this.json(r, tokenId)
      return r
    }
  }

  private async get<T>(method: string, path: string, tokenId?: number): Promise<T> {
    return (await this.json(await this.call(method, path, {}, tokenId), tokenId)) as T
  }

  keyAssignment(): Promise<KeyAssignment> {
    return this.get('GET', '/v1/key-assignment')
  }

  registerKey(tokenId: number): Promise<{ tokenId: number; ipnsId: string }> {
    return this.get('POST', `/v1/tokens/${tokenId}/key`, tokenId)
  }

  /** Asks the node to publish a fresh usage record (same files, sequence + 1) before a sync. */
  refresh(tokenId: number): Promise<Usage> {
    return this.get('POST', `/v1/tokens/${tokenId}/refresh`, tokenId)
  }

  usage(tokenId: number): Promise<Usage> {
    return this.get('GET', `/v1/tokens/${tokenId}/usage`, tokenId)
  }

  async list(tokenId: number): Promise<FileEntry[]> {
    const out: FileEntry[] = []
    let after: number | undefined
    for (;;) {
      const q = new URLSearchParams({ limit: '1000' })
      if (after !== undefined) q.set('after', String(after))
      const page = await this.get<{ files: FileEntry[]; next?: number }>('GET', `/v1/tokens/${tokenId}/files?${q}`, tokenId)
      out.push(...page.files)
      if (page.next === undefined || page.next === null) return out
      after = page.next
    }
  }

  remove(tokenId: number, fileId: number): Promise<{ file: FileEntry; usage: Usage }> {
    return this.get('DELETE', `/v1/tokens/${tokenId}/files/${fileId}`, tokenId)
  }

  /** Uploads `body` (a Blob: the browser sends it from its blob store with a Content-Length,
   * as the node requires) with progress and cancel. XMLHttpRequest, because fetch reports no
   * upload progress and streams a request body only over HTTP/2. */
  async upload(
    tokenId: number,
    wireName: string,
    body: Blob,
    onProgress: (sent: number) => void,
    signal: AbortSignal,
  ): Promise<{ file: FileEntry; usage: Usage }> {
    const token = await this.token()
    const url = `${this.base}/v1/tokens/${tokenId}/files?${new URLSearchParams({ name: wireName })}`
    const r = await new Promise<Response>((resolve, reject) => {
      const xhr = new XMLHttpRequest()
      xhr.open('POST', url)
      xhr.setRequestHeader('authorization', `Bearer ${token}`)
      xhr.setRequestHeader('content-type', 'application/octet-stream')
      xhr.upload.onprogress = (e) => onProgress(e.loaded)
      xhr.onload = () =>
        resolve(
          new Response(xhr.responseText, {
            status: xhr.status,
            headers: { 'retry-after': xhr.getResponseHeader('retry-after') ?? '' },
          }),
        )
      xhr.onerror = () => reject(new NodeError(0, 'interrupted', 'the upload was interrupted: the connection to the node broke while the file was being sent; try again'))
      xhr.onabort = () => reject(new DOMException('upload cancelled', 'AbortError'))
      signal.addEventListener('abort', () => xhr.abort(), { once: true })
      if (signal.aborted) return xhr.abort()
      xhr.send(body)
    })
    if (r.status === 401) this.forget()
    return (await this.json(r, tokenId)) as { file: FileEntry; usage: Usage }
  }

  /** The stored bytes of `cid`, streamed. */
  async content(tokenId: number, cid: string, signal?: AbortSignal): Promise<Response> {
    return this.call('GET', `/v1/tokens/${tokenId}/content/${encodeURIComponent(cid)}`, { signal }, tokenId)
  }
}
