// The chain side, all through the wallet (EIP-1193) with viem: plans, tokens, the gate, mint,
// sync, renew, upgrade, extra quota. The UI never builds JSON-RPC itself.

import {
  BaseError,
  ContractFunctionRevertedError,
  UserRejectedRequestError,
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  getAddress,
  parseEventLogs,
  parseSignature,
  type Address,
  type Chain as ViemChain,
  type EIP1193Provider,
  type Hex,
  type PublicClient,
  type WalletClient,
} from 'viem'
import { pxTokenAbi, storageNftAbi } from './abi'
import { humanBytes, humanDuration } from './units'

/** The deployment file the node serves (`/dapp-config.json`). */
export interface Deployment {
  chainId: number
  startBlock: number
  storageNFT: Address
  pxToken: Address
}

export interface Plan {
  id: number
  quota: bigint
  validity: number
  syncCredits: number
  mintable: boolean
  renewable: boolean
  free: boolean
  tokenPrice: bigint
  nativePrice: bigint
}

export interface TokenState {
  id: number
  owner: Address
  plan: number
  quota: bigint
  used: bigint
  fileCount: number
  expiresAt: number
  lastSyncAt: number
  seq: bigint
  syncCredits: number
  pending: boolean
  lastStatus: number
  hasKey: boolean
  now: number
  syncWindow: number
}

/** Gate reasons as the contract numbers them (`canUpload`). */
export const GATE = {
  none: 0,
  paused: 1,
  noToken: 2,
  expired: 3,
  noKey: 4,
  notSynced: 5,
  quotaExceeded: 6,
} as const

/** A refusal or failure, said so that the user knows what to do next. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message)
    this.name = 'UserError'
  }
}

const SYNC_STATUS: Record<number, [string, string]> = {
  0: ['ok', ''],
  1: ['the usage record was not found under the token\'s IPNS name', 'ask the node to publish it by syncing again'],
  2: ['the IPNS record\'s signature is invalid', 'the storage node published a bad record; sync again, and contact the node operator if it persists'],
  3: ['the IPNS record expired', 'sync again: the node publishes a fresh record first'],
  4: ['the IPNS record has only a V1 signature', 'the node must publish V2 records; contact its operator'],
  5: ['the usage record is invalid', 'contact the node operator'],
  6: ['the usage record is bound to another chain, contract or token', 'contact the node operator'],
  7: ['the oracle could not reach IPFS', 'sync again in a few minutes'],
  8: ['the usage record\'s sequence went backwards', 'sync again; if it persists the node lost state, contact its operator'],
  253: ['the oracle\'s answer carried no usage record', 'sync again'],
  254: ['the oracle\'s answer named another token', 'sync again'],
  255: ['the usage record is not newer than the last synced one', 'sync again (a fresh record is published first)'],
}

/** A sync status code in words, with the next step. */
export function syncStatusText(status: number): string {
  const [what, next] = SYNC_STATUS[status] ?? [`unknown status ${status}`, 'sync again']
  return next ? `${what}; ${next}` : what
}

/** Why uploads to a token are closed, in plain words, with the next step. */
export function gateText(reason: number, t: TokenState | null, size = 0n): string {
  switch (reason) {
    case GATE.none:
      return 'uploads are open'
    case GATE.paused:
      return 'the contract is paused by its admin; try again later'
    case GATE.noToken:
      return 'this token does not exist; mint one under Plans'
    case GATE.expired:
      return t
        ? `the plan expired ${humanDuration(t.now - t.expiresAt)} ago; renew the token to upload again`
        : 'the plan expired; renew the token to upload again'
    case GATE.noKey:
      return 'no storage node key is bound to this token; mint through this node, or ask it to register a key (Register key)'
    case GATE.notSynced:
      return t
        ? `uploads are locked: last sync ${humanDuration(t.now - t.lastSyncAt)} ago (uploads stay open for ${humanDuration(t.syncWindow)} after a sync); press Sync to unlock them`
        : 'uploads are locked until the token is synced; press Sync'
    case GATE.quotaExceeded:
      return t
        ? `${humanBytes(size)} more would exceed the quota: ${humanBytes(t.used)} of ${humanBytes(t.quota)} used as of the last sync; delete files and sync, or buy quota`
        : 'the upload would exceed the quota; delete files and sync, or buy quota'
    default:
      return `the gate is closed (reason ${reason})`
  }
}

/** Turns a viem or wallet error into a sentence with the next step. */
export function explain(e: unknown): string {
  if (e instanceof UserError) return e.message
  if (e instanceof BaseError) {
    if (e.walk((x) => x instanceof UserRejectedRequestError)) {
      return 'you declined the request in your wallet; try again and approve it there'
    }
    const revert = e.walk((x) => x instanceof ContractFunctionRevertedError)
    if (revert instanceof ContractFunctionRevertedError && revert.data?.errorName) {
      return revertText(revert.data.errorName, (revert.data.args ?? []) as readonly unknown[])
    }
    return e.shortMessage
  }
  return e instanceof Error ? e.message : String(e)
}

function revertText(name: string, args: readonly unknown[]): string {
  const now = Math.floor(Date.now() / 1000)
  switch (name) {
    case 'SyncPending':
      return 'a sync request is already pending; wait for the oracle\'s answer (Wait for answer)'
    case 'TokenExpired':
      return 'the plan expired; renew the token first'
    case 'NoSyncCredits':
      return 'the token has used all the sync requests its plan included; renew it to get more'
    case 'SyncTooSoon':
      return `syncs of this token are rate-limited; try again in ${humanDuration(Number(args[1] as bigint) - now)}`
    case 'PriceAboveMax':
      return 'the price changed while you decided; reload the page and try again'
    case 'WrongPayment':
      return 'the amount sent does not match the plan\'s coin price; reload the page and try again'
    case 'FreePlanClaimed':
      return 'this address already minted its free token; choose a paid plan'
    case 'PlanNotMintable':
    case 'PlanNotFound':
      return 'this plan cannot be minted; choose another plan'
    case 'PlanNotRenewable':
      return 'this plan cannot be renewed; upgrade to another plan instead'
    case 'NotAnUpgrade':
      return 'choose a plan with a larger quota than the current one'
    case 'NotForSale':
      return 'this is not for sale on this deployment (no price set)'
    case 'EnforcedPause':
      return 'the contract is paused by its admin; try again later'
    case 'NotTokenOwner':
      return 'this wallet does not own the token; connect the owner\'s wallet'
    case 'ERC20InsufficientBalance':
      return 'the wallet holds too little PX; pay with the native coin or get PX first'
    case 'ERC20InsufficientAllowance':
      return 'the PX allowance is too small; approve the payment in your wallet when asked'
    case 'AssignmentExpired':
      return 'the storage node\'s key assignment expired; mint again'
    case 'PrepaidTooLong':
      return 'the token is already paid as far ahead as the contract allows (10 years); renew later'
    case 'InsufficientLink':
      return 'the contract has no LINK left to pay the oracle; tell the deployment\'s admin'
    default:
      return `the contract refused: ${name}`
  }
}

const u = (v: bigint | number) => Number(v)

/** Chain access for one connected account. */
export class Chain {
  readonly pub: PublicClient
  readonly wallet: WalletClient
  readonly chain: ViemChain

  constructor(
    readonly provider: EIP1193Provider,
    readonly account: Address,
    readonly d: Deployment,
    rpcUrl: string | null,
  ) {
    this.chain = defineChain({
      id: d.chainId,
      name: d.chainId === 31337 ? 'PX devnet (anvil)' : `chain ${d.chainId}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: rpcUrl ? [rpcUrl] : [] } },
    })
    const transport = custom(provider)
    this.pub = createPublicClient({ chain: this.chain, transport, pollingInterval: 250 })
    this.wallet = createWalletClient({ account, chain: this.chain, transport })
  }

  /** Asks the wallet to switch to the deployment's chain (adding it when it does not know it). */
  static async ensureChain(provider: EIP1193Provider, d: Deployment, rpcUrl: string | null) {
    const current = Number(await provider.request({ method: 'eth_chainId' }))
    if (current === d.chainId) return
    const chainId = `0x${d.chainId.toString(16)}` as Hex
    try {
      await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId }] })
    } catch (e) {
      if ((e as { code?: number }).code !== 4902 || !rpcUrl) {
        throw new UserError(
          `the wallet is on chain ${current}, but this node serves chain ${d.chainId}; switch the wallet to chain ${d.chainId}`,
        )
      }
      await provider.request({
        method: 'wallet_addEthereumChain',
        params: [
          {
            chainId,
            chainName: `PX chain ${d.chainId}`,
            nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
            rpcUrls: [rpcUrl],
          },
        ],
      })
    }
  }

  private nft = () => ({ address: this.d.storageNFT, abi: storageNftAbi }) as const
  private px = () => ({ address: this.d.pxToken, abi: pxTokenAbi }) as const

  async now(): Promise<number> {
    return u((await this.pub.getBlock()).timestamp)
  }

  async plans(): Promise<Plan[]> {
    const count = u(await this.pub.readContract({ ...this.nft(), functionName: 'planCount' }))
    const out: Plan[] = []
    for (let id = 1; id <= count; id++) {
      const p = await this.pub.readContract({ ...this.nft(), functionName: 'plan', args: [BigInt(id)] })
      out.push({
        id,
        quota: p.quota,
        validity: p.validity,
        syncCredits: p.syncCredits,
        mintable: p.mintable,
        renewable: p.renewable,
        free: p.free,
        tokenPrice: p.tokenPrice,
        nativePrice: p.nativePrice,
      })
    }
    return out
  }

  async pxBalance(): Promise<bigint> {
    return this.pub.readContract({ ...this.px(), functionName: 'balanceOf', args: [this.account] })
  }

  async nativeBalance(): Promise<bigint> {
    return this.pub.getBalance({ address: this.account })
  }

  /** Token ids this account holds: every token transferred to it, still owned by it. */
  async myTokens(): Promise<number[]> {
    const head = await this.pub.getBlockNumber()
    const ids = new Set<bigint>()
    const WINDOW = 5000n
    for (let from = BigInt(this.d.startBlock); from <= head; from += WINDOW) {
      const to = from + WINDOW - 1n < head ? from + WINDOW - 1n : head
      const logs = await this.pub.getContractEvents({
        ...this.nft(),
        eventName: 'Transfer',
        args: { to: this.account },
        fromBlock: from,
        toBlock: to,
      })
      for (const l of logs) if (l.args.tokenId !== undefined) ids.add(l.args.tokenId)
    }
    const mine: number[] = []
    for (const id of ids) {
      const owner = await this.pub.readContract({ ...this.nft(), functionName: 'ownerOf', args: [id] }).catch(() => null)
      if (owner && getAddress(owner) === getAddress(this.account)) mine.push(u(id))
    }
    return mine.sort((a, b) => a - b)
  }

  async token(id: number): Promise<TokenState> {
    const tid = BigInt(id)
    const [owner, info, window, now] = await Promise.all([
      this.pub.readContract({ ...this.nft(), functionName: 'ownerOf', args: [tid] }),
      this.pub.readContract({ ...this.nft(), functionName: 'tokenInfo', args: [tid] }),
      this.pub.readContract({ ...this.nft(), functionName: 'syncWindow' }),
      this.now(),
    ])
    return {
      id,
      owner,
      plan: info.planId,
      quota: info.quota,
      used: info.used,
      fileCount: info.fileCount,
      expiresAt: u(info.expiresAt),
      lastSyncAt: u(info.lastSyncAt),
      seq: info.seq,
      syncCredits: info.syncCredits,
      pending: info.pending,
      lastStatus: info.lastStatus,
      hasKey: BigInt(info.ipnsKey) !== 0n,
      now,
      syncWindow: u(window),
    }
  }

  async canUpload(id: number, size: bigint): Promise<{ ok: boolean; reason: number }> {
    const [ok, reason] = await this.pub.readContract({
      ...this.nft(),
      functionName: 'canUpload',
      args: [BigInt(id), size],
    })
    return { ok, reason }
  }

  /** Simulates then sends a StorageNFT call, waits for its receipt; answers the receipt. */
  private async send(
    functionName:
      | 'mint'
      | 'mintWithPermit'
      | 'mintWithKey'
      | 'requestSync'
      | 'renew'
      | 'upgradePlan'
      | 'buyQuota',
    args: readonly unknown[],
    value?: bigint,
  ) {
    const { request } = await this.pub.simulateContract({
      ...this.nft(),
      // PXToken's errors too: a payment that fails inside the mint reverts with them.
      abi: [...storageNftAbi, ...pxTokenAbi.filter((x) => x.type === 'error')],
      functionName,
      args,
      account: this.account,
      value,
    } as Parameters<PublicClient['simulateContract']>[0])
    const hash = await this.wallet.writeContract(request as Parameters<WalletClient['writeContract']>[0])
    const receipt = await this.pub.waitForTransactionReceipt({ hash, pollingInterval: 250 })
    if (receipt.status !== 'success') throw new UserError(`transaction ${hash} failed on chain; try again`)
    return receipt
  }

  private async approveIfNeeded(amount: bigint) {
    if (amount === 0n) return
    const allowance = await this.pub.readContract({
      ...this.px(),
      functionName: 'allowance',
      args: [this.account, this.d.storageNFT],
    })
    if (allowance >= amount) return
    const hash = await this.wallet.writeContract({
      ...this.px(),
      functionName: 'approve',
      args: [this.d.storageNFT, amount],
      account: this.account,
      chain: this.chain,
    })
    await this.pub.waitForTransactionReceipt({ hash, pollingInterval: 250 })
  }

  private mintedId(receipt: Awaited<ReturnType<Chain['send']>>): number {
    const [ev] = parseEventLogs({ abi: storageNftAbi, logs: receipt.logs, eventName: 'Minted' })
    if (!ev) throw new UserError('the mint receipt carries no Minted event; check the token list')
    return u(ev.args.tokenId)
  }

  /** Mints `plan` paying PXToken with an EIP-2612 permit (one transaction, no approval). */
  async mintWithPermit(plan: Plan): Promise<number> {
    const deadline = BigInt((await this.now()) + 3600)
    const [nonce, domain] = await Promise.all([
      this.pub.readContract({ ...this.px(), functionName: 'nonces', args: [this.account] }),
      this.pub.readContract({ ...this.px(), functionName: 'eip712Domain' }),
    ])
    const signature = await this.wallet.signTypedData({
      account: this.account,
      domain: {
        name: domain[1],
        version: domain[2],
        chainId: Number(domain[3]),
        verifyingContract: domain[4],
      },
      types: {
        Permit: [
          { name: 'owner', type: 'address' },
          { name: 'spender', type: 'address' },
          { name: 'value', type: 'uint256' },
          { name: 'nonce', type: 'uint256' },
          { name: 'deadline', type: 'uint256' },
        ],
      },
      primaryType: 'Permit',
      message: {
        owner: this.account,
        spender: this.d.storageNFT,
        value: plan.tokenPrice,
        nonce,
        deadline,
      },
    })
    const sig = parseSignature(signature)
    const v = sig.v ?? BigInt(27 + (sig.yParity ?? 0))
    const receipt = await this.send('mintWithPermit', [
      BigInt(plan.id),
      plan.tokenPrice,
      deadline,
      Number(v),
      sig.r,
      sig.s,
    ])
    return this.mintedId(receipt)
  }

  /** Mints with the storage node's key assignment, paying the native coin (or nothing for a
   * free plan). */
  async mintWithKey(
    plan: Plan,
    assignment: { ipnsName: Hex; deadline: number; signature: Hex },
    pay: 'native' | 'px' | 'free',
  ): Promise<number> {
    if (pay === 'px') await this.approveIfNeeded(plan.tokenPrice)
    const receipt = await this.send(
      'mintWithKey',
      [BigInt(plan.id), plan.tokenPrice, assignment.ipnsName, BigInt(assignment.deadline), assignment.signature],
      pay === 'native' ? plan.nativePrice : undefined,
    )
    return this.mintedId(receipt)
  }

  async renew(id: number, plan: Plan, pay: 'px' | 'native') {
    if (pay === 'px') await this.approveIfNeeded(plan.tokenPrice)
    await this.send('renew', [BigInt(id), plan.tokenPrice], pay === 'native' ? plan.nativePrice : undefined)
  }

  async upgrade(id: number, to: Plan, pay: 'px' | 'native') {
    // The contract credits the prepaid time of the current plan; PX is approved up to the new
    // plan's full price (the most it can take).
    if (pay === 'px') await this.approveIfNeeded(to.tokenPrice)
    await this.send(
      'upgradePlan',
      [BigInt(id), BigInt(to.id), to.tokenPrice],
      pay === 'native' ? to.nativePrice : undefined,
    )
  }

  async quotaPrice(): Promise<{ unit: bigint; tokenPrice: bigint; nativePrice: bigint }> {
    const [unit, price] = await Promise.all([
      this.pub.readContract({ ...this.nft(), functionName: 'QUOTA_UNIT' }),
      this.pub.readContract({ ...this.nft(), functionName: 'quotaUnitPrice' }),
    ])
    return { unit, tokenPrice: price[0], nativePrice: price[1] }
  }

  async buyQuota(id: number, units: bigint, pay: 'px' | 'native') {
    const p = await this.quotaPrice()
    const total = p.tokenPrice * units
    if (pay === 'px') await this.approveIfNeeded(total)
    await this.send('buyQuota', [BigInt(id), units, total], pay === 'native' ? p.nativePrice * units : undefined)
  }

  /** Sends `requestSync` (simulated first, so a refusal is explained before anything is
   * signed); answers the Chainlink request id and its block. */
  async requestSync(id: number): Promise<{ requestId: Hex; block: bigint }> {
    const receipt = await this.send('requestSync', [BigInt(id)])
    const [ev] = parseEventLogs({ abi: storageNftAbi, logs: receipt.logs, eventName: 'SyncRequested' })
    if (!ev) throw new UserError('the requestSync receipt carries no SyncRequested event; try again')
    return { requestId: ev.args.requestId, block: receipt.blockNumber }
  }

  /** Checks, without sending, whether a sync may be requested now; throws the explanation. */
  async checkSync(id: number) {
    await this.pub.simulateContract({
      ...this.nft(),
      functionName: 'requestSync',
      args: [BigInt(id)],
      account: this.account,
      blockTag: 'pending',
    })
  }

  /** Waits for the oracle's answer to a request: the `Synced` or `SyncFailed` event. */
  async waitAnswer(
    id: number,
    req: { requestId: Hex; block: bigint },
    timeoutMs = 300_000,
    signal?: AbortSignal,
  ): Promise<{ ok: true; used: bigint; fileCount: number; seq: bigint } | { ok: false; status: number }> {
    const end = Date.now() + timeoutMs
    let from = req.block
    while (Date.now() < end) {
      signal?.throwIfAborted()
      const head = await this.pub.getBlockNumber()
      if (head >= from) {
        const [ok, failed] = await Promise.all([
          this.pub.getContractEvents({
            ...this.nft(),
            eventName: 'Synced',
            args: { tokenId: BigInt(id), requestId: req.requestId },
            fromBlock: from,
            toBlock: head,
          }),
          this.pub.getContractEvents({
            ...this.nft(),
            eventName: 'SyncFailed',
            args: { tokenId: BigInt(id), requestId: req.requestId },
            fromBlock: from,
            toBlock: head,
          }),
        ])
        const s = ok[0]?.args
        if (s) return { ok: true, used: s.used ?? 0n, fileCount: s.fileCount ?? 0, seq: s.seq ?? 0n }
        const f = failed[0]?.args
        if (f) return { ok: false, status: f.status ?? 0 }
        from = head + 1n
      }
      await new Promise((r) => setTimeout(r, 500))
    }
    throw new UserError(
      `no answer from the oracle within ${Math.round(timeoutMs / 60000)} minutes; the request stays pending, wait again later`,
    )
  }

  /** The last sync request of a token, to wait for a request sent in an earlier visit. */
  async lastSyncRequest(id: number): Promise<{ requestId: Hex; block: bigint } | null> {
    const logs = await this.pub.getContractEvents({
      ...this.nft(),
      eventName: 'SyncRequested',
      args: { tokenId: BigInt(id) },
      fromBlock: BigInt(this.d.startBlock),
    })
    const l = logs[logs.length - 1]
    return l?.args.requestId ? { requestId: l.args.requestId, block: l.blockNumber } : null
  }
}
