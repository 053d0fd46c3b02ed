// The dApp's screens: wallet, plans and mint, my tokens (with sync, renew, upgrade, quota) and a
// drive per token. Plain DOM: each render function owns one section of index.html.

import './style.css'
import { getAddress, recoverTypedDataAddress, type EIP1193Provider } from 'viem'
import { Chain, UserError, explain, gateText, syncStatusText, type Deployment, type Plan, type TokenState } from './chain'
import { cleanTemp, downloadFile, downloadSink, listFiles, pickFileSink, uploadFile, type Listed, type Stage } from './drive'
import { DEFAULT_SEGMENT_SIZE, OwnerKey, encryptedLen, ownerKeyTypedData } from './format'
import { NodeClient, NodeError, type Usage } from './node'
import { date, formatAmount, humanBytes, humanDuration } from './units'

interface AppConfig {
  deployment: Deployment
  rpcUrl: string | null
}

interface TokenView {
  t: TokenState
  usage: Usage | null
  usageError?: string
  gate: { ok: boolean; reason: number }
}

const state: {
  cfg: AppConfig | null
  chain: Chain | null
  node: NodeClient | null
  owner: OwnerKey | null
  plans: Plan[]
  tokens: Map<number, TokenView>
  drive: number | null
  files: Listed[]
  syncing: Set<number>
} = {
  cfg: null,
  chain: null,
  node: null,
  owner: null,
  plans: [],
  tokens: new Map(),
  drive: null,
  files: [],
  syncing: new Set(),
}

const nodeBase = ((import.meta.env.VITE_PX_NODE as string | undefined) ?? location.origin).replace(/\/+$/, '')

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T

type Child = Node | string | null | undefined | false
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | number | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v)
    else if (v === true) el.setAttribute(k, '')
    else if (v !== false) el.setAttribute(k, String(v))
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c)
  return el
}

/** Messages by element id, kept so that re-rendered token cards show them again. */
const notes = new Map<string, string>()

function say(id: string, text: string) {
  notes.set(id, text)
  const el = $(id)
  if (el) el.textContent = text
}

/** Runs `fn` with `button` disabled, showing errors (with the next step) in `errorId`. */
async function busy(button: HTMLButtonElement | null, errorId: string, fn: () => Promise<void>) {
  if (button) button.disabled = true
  say(errorId, '')
  try {
    await fn()
  } catch (e) {
    console.error(e)
    say(errorId, explain(e))
  } finally {
    if (button) button.disabled = false
  }
}

function provider(): EIP1193Provider {
  const eth = (window as unknown as { ethereum?: EIP1193Provider }).ethereum
  if (!eth) {
    throw new UserError(
      'no wallet found in this browser: install MetaMask, Rabby or Frame (or open this page in a wallet\'s browser), then reload',
    )
  }
  return eth
}

async function loadConfig(): Promise<AppConfig> {
  const r = await fetch(`${nodeBase}/dapp-config.json`).catch(() => null)
  if (!r || !r.ok) {
    throw new UserError(`the storage node at ${nodeBase} did not answer /dapp-config.json; check that it runs with web_dir set`)
  }
  return (await r.json()) as AppConfig
}

// ---- wallet -------------------------------------------------------------------------------

async function connect() {
  const eth = provider()
  const cfg = state.cfg ?? (state.cfg = await loadConfig())
  const accounts = (await eth.request({ method: 'eth_requestAccounts' })) as string[]
  if (!accounts.length) throw new UserError('the wallet shared no account; unlock it and connect again')
  await Chain.ensureChain(eth, cfg.deployment, cfg.rpcUrl)
  const account = getAddress(accounts[0])
  const chain = new Chain(eth, account, cfg.deployment, cfg.rpcUrl)
  state.chain = chain
  state.owner = null
  state.node = new NodeClient(nodeBase, cfg.deployment.chainId, account, (message) =>
    chain.wallet.signMessage({ account, message }),
  )
  const onChange = () => location.reload()
  const ev = eth as unknown as { on?: (e: string, f: () => void) => void }
  ev.on?.('accountsChanged', onChange)
  ev.on?.('chainChanged', onChange)
  say('wallet-text', 'Signing in to the storage node (a signature in your wallet, no transaction)...')
  await state.node.token()
  $('connect').hidden = true
  say('wallet-text', `Connected to the storage node at ${nodeBase}.`)
  for (const id of ['plans', 'tokens']) $(id).hidden = false
  await Promise.all([renderAccount(), renderPlans(), refreshTokens()])
}

async function renderAccount() {
  const c = state.chain as Chain
  const [px, eth] = await Promise.all([c.pxBalance(), c.nativeBalance()])
  say('account', `${c.account} on chain ${c.d.chainId}: ${formatAmount(px)} PX, ${formatAmount(eth)} ETH`)
}

/** The owner key from the wallet's EIP-712 signature (signed twice: a wallet that does not sign
 * deterministically would lose the files, so it is refused). */
async function ownerKey(): Promise<OwnerKey> {
  if (state.owner) return state.owner
  const c = state.chain as Chain
  say('drive-status', 'Sign the key request in your wallet: it derives your encryption key (no transaction).')
  const typed = ownerKeyTypedData(c.account)
  const first = await c.wallet.signTypedData({ account: c.account, ...typed })
  const second = await c.wallet.signTypedData({ account: c.account, ...typed })
  if (first !== second) {
    throw new UserError('this wallet signs the key request differently each time, so files encrypted with it could never be opened again; use a wallet with deterministic (RFC 6979) signatures')
  }
  const signer = await recoverTypedDataAddress({ ...typed, signature: first })
  if (getAddress(signer) !== c.account) {
    throw new UserError(`the key signature comes from ${signer}, not from ${c.account}; check the wallet`)
  }
  state.owner = await OwnerKey.fromSignature(c.account, first)
  say('drive-status', `Encryption key ${state.owner.idHex} ready.`)
  return state.owner
}

// ---- plans --------------------------------------------------------------------------------

function planLabel(p: Plan): string {
  const validity = p.validity ? `${humanDuration(p.validity)}` : 'no expiry'
  return `Plan ${p.id}: ${humanBytes(p.quota)}, ${validity}`
}

async function renderPlans() {
  const c = state.chain as Chain
  state.plans = await c.plans()
  const list = h('ul', { class: 'cards' })
  for (const p of state.plans.filter((x) => x.mintable)) {
    const prices = p.free
      ? 'free (one per address)'
      : [p.tokenPrice ? `${formatAmount(p.tokenPrice)} PX` : '', p.nativePrice ? `${formatAmount(p.nativePrice)} ETH` : '']
          .filter(Boolean)
          .join(' or ')
    const buttons: HTMLButtonElement[] = []
    const mint = (label: string, pay: 'permit' | 'native' | 'free') => {
      const b = h('button', { type: 'button', 'data-plan': p.id, 'data-pay': pay }, label)
      b.addEventListener('click', () => busy(b, 'plans-error', () => mintPlan(p, pay)))
      buttons.push(b)
    }
    if (p.free) mint(`Mint plan ${p.id} for free`, 'free')
    if (!p.free && p.tokenPrice) mint(`Mint plan ${p.id} with PX (permit)`, 'permit')
    if (!p.free && p.nativePrice) mint(`Mint plan ${p.id} with ETH`, 'native')
    list.append(
      h(
        'li',
        { class: 'card' },
        h('h3', {}, planLabel(p)),
        h('p', {}, prices),
        h('p', {}, p.validity ? `${p.syncCredits} sync requests included` : 'up to 4 sync requests per sync window'),
        h('div', { class: 'actions' }, ...buttons),
      ),
    )
  }
  $('plans-list').replaceChildren(list)
}

async function mintPlan(p: Plan, pay: 'permit' | 'native' | 'free') {
  const c = state.chain as Chain
  const node = state.node as NodeClient
  let id: number
  if (pay === 'permit') {
    // One transaction paid by an EIP-2612 permit; then the node binds its IPNS key.
    say('plans-status', `Minting plan ${p.id}: sign the PX permit, then confirm the transaction...`)
    id = await c.mintWithPermit(p)
    say('plans-status', `Token ${id} minted; the node binds its storage key...`)
    await node.registerKey(id)
  } else {
    say('plans-status', `Minting plan ${p.id}: the node assigns a storage key, then confirm the transaction...`)
    const a = await node.keyAssignment()
    if (getAddress(a.minter) !== c.account || getAddress(a.contract) !== getAddress(c.d.storageNFT) || a.chainId !== c.d.chainId) {
      throw new UserError('the node\'s key assignment is for another wallet or deployment; reload the page')
    }
    id = await c.mintWithKey(p, a, pay === 'native' ? 'native' : 'free')
  }
  say('plans-status', `Minted token ${id} (plan ${p.id}).`)
  await Promise.all([renderAccount(), refreshTokens()])
  await openDrive(id)
}

// ---- tokens -------------------------------------------------------------------------------

async function loadToken(id: number): Promise<TokenView> {
  const c = state.chain as Chain
  const t = await c.token(id)
  const gate = await c.canUpload(id, 0n)
  let usage: Usage | null = null
  let usageError: string | undefined
  try {
    usage = await (state.node as NodeClient).usage(id)
  } catch (e) {
    usageError = explain(e)
  }
  const v = { t, usage, usageError, gate }
  state.tokens.set(id, v)
  return v
}

async function refreshTokens() {
  const c = state.chain as Chain
  const ids = await c.myTokens()
  state.tokens.clear()
  for (const id of ids) await loadToken(id)
  renderTokens()
}

function syncHint(t: TokenState, gateOk: boolean): string {
  if (!gateOk) return ''
  const left = t.lastSyncAt + t.syncWindow - t.now
  return left > 0 ? `sync needed in ${humanDuration(left)} to keep uploads open` : 'sync needed now'
}

function renderTokens() {
  const list = h('ul', { class: 'cards' })
  if (!state.tokens.size) list.append(h('li', {}, 'No tokens yet: mint one under Plans.'))
  for (const [id, v] of state.tokens) list.append(tokenCard(id, v))
  $('tokens-list').replaceChildren(list)
}

function tokenCard(id: number, v: TokenView): HTMLElement {
  const { t, usage, gate } = v
  const plan = state.plans.find((p) => p.id === t.plan)
  const err = `token-${id}-error`
  const row = (k: string, val: string, testid: string) => h('div', {}, h('dt', {}, k), h('dd', { 'data-testid': testid }, val))
  const gateLine = gate.ok ? 'open' : gateText(gate.reason, t)
  const card = h(
    'li',
    { class: 'card', id: `token-${id}`, 'aria-labelledby': `token-${id}-h` },
    h('h3', { id: `token-${id}-h` }, `Token ${id}`, plan ? ` (${planLabel(plan)})` : ''),
    h(
      'dl',
      {},
      row('Quota', humanBytes(t.quota), `quota-${id}`),
      row('Used (synced on chain)', `${humanBytes(t.used)} in ${t.fileCount} file(s), seq ${t.seq}`, `used-synced-${id}`),
      row(
        'Used (live on the node)',
        usage ? `${humanBytes(usage.used)} in ${usage.fileCount} file(s), seq ${usage.seq}` : (v.usageError ?? 'unknown'),
        `used-live-${id}`,
      ),
      row('Expires', t.expiresAt ? `${date(t.expiresAt)}${t.expiresAt <= t.now ? ' (expired)' : ''}` : 'never', `expires-${id}`),
      row('Last sync', `${date(t.lastSyncAt)} (${humanDuration(t.now - t.lastSyncAt)} ago)`, `last-sync-${id}`),
      row('Uploads', gateLine, `gate-${id}`),
      row('Sync', t.pending ? 'a request is waiting for the oracle' : syncHint(t, gate.ok) || (t.lastStatus ? `last answer: ${syncStatusText(t.lastStatus)}` : 'no request pending'), `sync-hint-${id}`),
    ),
    h('p', { id: `sync-status-${id}`, role: 'status', 'aria-live': 'polite' }, notes.get(`sync-status-${id}`) ?? ''),
    h('p', { id: err, class: 'error', role: 'alert' }, notes.get(err) ?? ''),
  )
  const actions = h('div', { class: 'actions' })
  const button = (label: string, fn: (b: HTMLButtonElement) => Promise<void>, extra: Record<string, string> = {}) => {
    const b = h('button', { type: 'button', ...extra }, label)
    b.addEventListener('click', () => busy(b, err, () => fn(b)))
    actions.append(b)
    return b
  }
  button('Open drive', async () => openDrive(id), { 'data-action': 'drive' })
  button(t.pending ? 'Wait for the sync answer' : 'Sync', async () => syncToken(id), { 'data-action': 'sync' })
  if (!t.hasKey) button('Register key', async () => { await (state.node as NodeClient).registerKey(id); await reloadToken(id) })
  card.append(actions)

  // Renew, upgrade, quota: paid in PX (approved first) or ETH.
  const pay = h('select', { id: `pay-${id}` }, h('option', { value: 'px' }, 'PX'), h('option', { value: 'native' }, 'ETH'))
  const buy = h('div', { class: 'actions' }, h('label', { for: `pay-${id}` }, 'Pay with '), pay)
  const payWith = () => pay.value as 'px' | 'native'
  const more = h('div', { class: 'actions' })
  if (plan?.renewable && t.expiresAt) {
    const b = h('button', { type: 'button' }, `Renew (${plan.tokenPrice ? formatAmount(plan.tokenPrice) + ' PX' : ''}${plan.nativePrice ? ' / ' + formatAmount(plan.nativePrice) + ' ETH' : ''})`)
    b.addEventListener('click', () => busy(b, err, async () => {
      say(`sync-status-${id}`, 'Renewing: confirm in your wallet...')
      await (state.chain as Chain).renew(id, plan, payWith())
      say(`sync-status-${id}`, `Token ${id} renewed.`)
      await reloadToken(id)
    }))
    more.append(b)
  }
  const bigger = state.plans.filter((p) => p.mintable && !p.free && p.quota > t.quota)
  if (bigger.length) {
    const sel = h('select', { id: `upgrade-${id}` }, ...bigger.map((p) => h('option', { value: String(p.id) }, planLabel(p))))
    const b = h('button', { type: 'button' }, 'Upgrade')
    b.addEventListener('click', () => busy(b, err, async () => {
      const to = state.plans.find((p) => p.id === Number(sel.value)) as Plan
      say(`sync-status-${id}`, `Upgrading to plan ${to.id}: confirm in your wallet...`)
      await (state.chain as Chain).upgrade(id, to, payWith())
      say(`sync-status-${id}`, `Token ${id} is on plan ${to.id} now.`)
      await reloadToken(id)
    }))
    more.append(h('label', { for: `upgrade-${id}` }, 'Upgrade to '), sel, b)
  }
  const units = h('input', { id: `units-${id}`, type: 'number', min: '1', value: '1', inputmode: 'numeric', size: 4 })
  const qb = h('button', { type: 'button' }, 'Buy quota')
  qb.addEventListener('click', () => busy(qb, err, async () => {
    const n = BigInt(Math.max(1, Math.floor(Number(units.value) || 1)))
    const c = state.chain as Chain
    const price = await c.quotaPrice()
    say(`sync-status-${id}`, `Buying ${n} × ${humanBytes(price.unit)}: confirm in your wallet...`)
    await c.buyQuota(id, n, payWith())
    say(`sync-status-${id}`, `Bought ${humanBytes(price.unit * n)} of quota.`)
    await reloadToken(id)
  }))
  more.append(h('label', { for: `units-${id}` }, 'Quota units (GiB) '), units, qb)
  card.append(buy, more)
  return card
}

async function reloadToken(id: number) {
  await loadToken(id)
  renderTokens()
  if (state.drive === id) renderGate()
  await renderAccount()
}

/** Sync: ask the node for a fresh record, send the request, wait for the oracle's answer. */
async function syncToken(id: number) {
  const c = state.chain as Chain
  const status = (s: string) => say(`sync-status-${id}`, s)
  if (state.syncing.has(id)) return
  state.syncing.add(id)
  try {
    const t = await c.token(id)
    let req = t.pending ? await c.lastSyncRequest(id) : null
    if (!req) {
      status('Checking that a sync may be requested...')
      await c.checkSync(id)
      status('The node publishes a fresh usage record...')
      const usage = await (state.node as NodeClient).refresh(id)
      status(`Record seq ${usage.seq} published; confirm the sync request in your wallet...`)
      req = await c.requestSync(id)
    }
    status('Sync requested; waiting for the oracle\'s answer through the Chainlink Operator...')
    const answer = await c.waitAnswer(id, req)
    await loadToken(id)
    renderTokens()
    if (answer.ok) {
      say(`sync-status-${id}`, `Synced: on chain now ${humanBytes(answer.used)} in ${answer.fileCount} file(s), seq ${answer.seq}.`)
    } else {
      say(`token-${id}-error`, `The oracle answered with status ${answer.status}: ${syncStatusText(answer.status)}.`)
    }
    if (state.drive === id) renderGate()
  } finally {
    state.syncing.delete(id)
  }
}

// ---- drive --------------------------------------------------------------------------------

async function openDrive(id: number) {
  state.drive = id
  $('drive').hidden = false
  say('drive-h', `Drive of token ${id}`)
  say('drive-error', '')
  await loadToken(id)
  renderTokens()
  renderGate()
  await ownerKey()
  await renderFiles()
  $('drive').scrollIntoView({ block: 'start' })
}

function renderGate() {
  const id = state.drive as number
  const v = state.tokens.get(id)
  if (!v) return
  const why = gateText(v.gate.reason, v.t)
  say('drive-gate', v.gate.ok ? `Uploads are open; ${syncHint(v.t, true)}.` : `${why[0].toUpperCase()}${why.slice(1)}.`)
}

async function renderFiles() {
  const id = state.drive as number
  const owner = await ownerKey()
  state.files = await listFiles(state.node as NodeClient, owner, id)
  const body = $('files').querySelector('tbody') as HTMLElement
  body.replaceChildren(
    ...state.files.map((f) => {
      const dl = h('button', { type: 'button', 'aria-label': `Download ${f.name}`, 'data-cid': f.entry.cid }, 'Download')
      const rm = h('button', { type: 'button', 'aria-label': `Delete ${f.name}` }, 'Delete')
      const st = h('span', { class: 'row-status', role: 'status', 'aria-live': 'polite' })
      dl.addEventListener('click', () => busy(dl, 'drive-error', () => download(f, st)))
      // Files on the provider network are read from the providers: px-sdk and the CLI do it.
      const network = f.entry.redundancy
      if (network) {
        dl.setAttribute('disabled', '')
        dl.title = `stored on providers at ${network}: download it with \`px download\``
      }
      rm.addEventListener('click', () => busy(rm, 'drive-error', async () => {
        if (!confirm(`Delete ${f.name} (${humanBytes(f.entry.size)}) from token ${id}? This cannot be undone.`)) return
        const r = await (state.node as NodeClient).remove(id, f.entry.id)
        say('drive-status', `Deleted ${f.name}; the node now holds ${humanBytes(r.usage.used)} in ${r.usage.fileCount} file(s). Sync to update the usage on chain.`)
        await Promise.all([renderFiles(), reloadToken(id)])
      }))
      return h(
        'tr',
        { 'data-name': f.name },
        h(
          'td',
          { 'data-label': 'Name' },
          f.name,
          network ? h('span', { class: 'muted' }, ` (on providers, ${network})`) : null,
          f.problem ? h('span', { class: 'error' }, ` (${f.problem})`) : null,
        ),
        h('td', { 'data-label': 'Size' }, humanBytes(f.entry.size)),
        h('td', { 'data-label': 'Uploaded' }, date(f.entry.createdAt)),
        h('td', {}, dl, ' ', rm, ' ', st),
      )
    }),
  )
  if (!state.files.length) body.append(h('tr', {}, h('td', { colspan: 4 }, 'No files yet.')))
}

async function download(f: Listed, st: HTMLElement) {
  const id = state.drive as number
  const owner = await ownerKey()
  // Where the browser can write a chosen file as it goes (Chromium's File System Access API),
  // plaintext streams to disk; elsewhere it is collected into Blobs and saved at the end.
  const sink = (await pickFileSink(f.name).catch((e: Error) => {
    if (e.name === 'AbortError') throw new UserError('download cancelled')
    return null
  })) ?? (await downloadSink(f.name))
  const ctl = new AbortController()
  const { written, ms } = await downloadFile(state.node as NodeClient, owner, id, f, sink, (got, total) => {
    st.textContent = `${Math.floor((100 * got) / Math.max(1, total))}%`
  }, ctl.signal)
  const rate = written / 1048576 / Math.max(0.001, ms / 1000)
  st.textContent = `downloaded ${humanBytes(written)} in ${(ms / 1000).toFixed(1)} s (${rate.toFixed(1)} MiB/s), decrypted and checked`
  st.dataset.ms = String(Math.round(ms))
}

// Uploads run one at a time (bounded memory); each can be cancelled, queued or running.
const queue: Array<() => Promise<void>> = []
let running = false

async function pump() {
  if (running) return
  running = true
  while (queue.length) await (queue.shift() as () => Promise<void>)()
  running = false
}

function enqueue(files: FileList | File[]) {
  const id = state.drive
  if (id === null) return
  for (const file of Array.from(files)) {
    const ctl = new AbortController()
    const bar = h('progress', { max: 100, value: 0, 'aria-label': `Upload progress of ${file.name}` })
    const text = h('span', { class: 'job-status' }, 'queued')
    const cancel = h('button', { type: 'button', 'aria-label': `Cancel upload of ${file.name}` }, 'Cancel')
    const li = h('li', { 'data-name': file.name }, h('span', {}, `${file.name} (${humanBytes(file.size)}) `), bar, ' ', text, ' ', cancel)
    cancel.addEventListener('click', () => ctl.abort())
    $('uploads').append(li)
    queue.push(async () => {
      try {
        ctl.signal.throwIfAborted()
        await uploadOne(id, file, bar, text, ctl.signal)
        li.classList.add('done')
      } catch (e) {
        li.classList.add('failed')
        text.textContent = ctl.signal.aborted ? 'cancelled' : `failed: ${await uploadError(id, e, file.size)}`
      } finally {
        cancel.hidden = true
      }
    })
  }
  void pump()
}

const STAGE_TEXT: Record<Stage, string> = { hashing: 'hashing', encrypting: 'encrypting', sending: 'sending', done: 'stored' }

async function uploadOne(id: number, file: File, bar: HTMLProgressElement, text: HTMLElement, signal: AbortSignal) {
  const c = state.chain as Chain
  const size = BigInt(encryptedLen(file.size, DEFAULT_SEGMENT_SIZE))
  const gate = await c.canUpload(id, size)
  if (!gate.ok) throw new UserError(gateText(gate.reason, await c.token(id), size))
  const owner = await ownerKey()
  // Hashing, encrypting and sending weigh 10%, 30% and 60% of the bar.
  const weight: Record<Stage, [number, number]> = { hashing: [0, 10], encrypting: [10, 30], sending: [40, 60], done: [100, 0] }
  const { file: entry, ms, stages } = await uploadFile(state.node as NodeClient, owner, id, file, (stage, done, total) => {
    const [base, span] = weight[stage]
    bar.value = Math.min(100, base + (span * done) / Math.max(1, total))
    text.textContent = `${STAGE_TEXT[stage]} ${Math.floor((100 * done) / Math.max(1, total))}%`
  }, signal)
  const rate = file.size / 1048576 / Math.max(0.001, ms / 1000)
  text.textContent = `stored as ${entry.cid} in ${(ms / 1000).toFixed(1)} s (${rate.toFixed(1)} MiB/s)`
  text.dataset.ms = String(Math.round(ms))
  text.dataset.stages = JSON.stringify(stages)
  bar.value = 100
  await renderFiles()
  await reloadToken(id)
}

/** An upload failure with the next step; a closed gate is re-derived from the chain. */
async function uploadError(id: number, e: unknown, size: number): Promise<string> {
  if (e instanceof NodeError && (e.code === 'gate_closed' || e.code === 'interrupted')) {
    const c = state.chain as Chain
    const gate = await c.canUpload(id, BigInt(size)).catch(() => null)
    if (gate && !gate.ok) return gateText(gate.reason, await c.token(id), BigInt(size))
  }
  return explain(e)
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  const connectButton = $<HTMLButtonElement>('connect')
  connectButton.addEventListener('click', () => busy(connectButton, 'wallet-error', connect))
  const picker = $<HTMLInputElement>('picker')
  const zone = $('dropzone')
  picker.addEventListener('change', () => {
    if (picker.files) enqueue(picker.files)
    picker.value = ''
  })
  zone.addEventListener('click', () => picker.click())
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault()
      picker.click()
    }
  })
  zone.addEventListener('dragover', (e) => {
    e.preventDefault()
    zone.classList.add('over')
  })
  zone.addEventListener('dragleave', () => zone.classList.remove('over'))
  zone.addEventListener('drop', (e) => {
    e.preventDefault()
    zone.classList.remove('over')
    if (e.dataTransfer?.files.length) enqueue(e.dataTransfer.files)
  })
  // Refresh the token view now and then: chain time moves, answers arrive.
  setInterval(() => {
    if (state.chain && !document.hidden && !running && !state.syncing.size) {
      refreshTokens()
        .then(() => state.drive !== null && renderGate())
        .catch(() => {})
    }
  }, 15_000)
}

wire()
// Temporary files of earlier visits (uploads cut off by a closed tab, finished downloads).
void cleanTemp(10 * 60_000).catch(() => {})
