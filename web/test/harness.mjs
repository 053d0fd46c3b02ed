// Shared by the end-to-end test and the benchmark: starts the built `px devnet` on free loopback
// ports, launches Debian's Chromium through playwright-core with a wallet (EIP-1193) injected
// into the page that forwards every call to anvil, where the account is unlocked (anvil signs
// eth_sendTransaction, eth_signTypedData_v4 and personal_sign), and runs the `px` CLI as the
// same wallet.
import { spawn, execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { chromium } from 'playwright-core'

export const root = resolve(new URL('../..', import.meta.url).pathname)
const bins = process.env.PX_BIN_DIR ?? join(root, 'target/debug')
const run = promisify(execFile)

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.once('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => ok(port))
    })
  })
}

export const sha256 = (b) => createHash('sha256').update(b).digest('hex')

/** Starts `px devnet` in a temporary directory; resolves once it printed its endpoints. */
export async function startDevnet() {
  const px = join(bins, 'px')
  if (!existsSync(px)) throw new Error(`${px} not found: build the binaries first (cargo build --workspace --bins)`)
  if (!existsSync(join(root, 'web/dist/index.html'))) throw new Error('web/dist is not built: run `npm run build` in web/')
  const dir = mkdtempSync(join(tmpdir(), 'px-web-e2e-'))
  const chainPort = await freePort()
  const child = spawn(px, ['devnet', '--dir', join(dir, 'devnet'), '--chain-port', String(chainPort)], {
    cwd: root,
    env: { ...process.env, PX_ROOT: root, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const up = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`px devnet did not come up in 300 s:\n${out}\n${err}`)), 300_000)
    child.on('exit', (code) => fail(new Error(`px devnet exited (${code}):\n${out}\n${err}`)))
    child.stdout.on('data', (d) => {
      out += d
      const dapp = out.match(/^\s*dApp\s+(http:\/\/\S+?)\/?\s/m)
      const chain = out.match(/^\s*chain\s+(http:\/\/\S+)/m)
      const node = out.match(/^\s*node\s+(http:\/\/\S+)/m)
      const deployment = out.match(/^\s*deployment\s+(\S+)/m)
      const accounts = [...out.matchAll(/^\s+(0x[0-9a-fA-F]{40})\s+(0x[0-9a-fA-F]{64})\s*$/gm)]
      if (out.includes('dApp') && /not built/.test(out)) fail(new Error('px devnet did not find web/dist'))
      if (dapp && chain && node && deployment && accounts.length >= 3 && out.includes('Drive it with px')) {
        clearTimeout(timer)
        ok({ dapp: dapp[1], rpc: chain[1], node: node[1], deployment: deployment[1], accounts: accounts.map((m) => ({ address: m[1], key: m[2] })) })
      }
    })
  })
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await new Promise((r) => {
        const t = setTimeout(() => {
          child.kill('SIGKILL')
          r()
        }, 15_000)
        child.once('exit', () => {
          clearTimeout(t)
          r()
        })
      })
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return { ...up, dir, stop, log: () => out + err }
}

/** Calls anvil's JSON-RPC. */
export async function rpc(url, method, params = []) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const j = await r.json()
  if (j.error) throw new Error(`${method}: ${j.error.message}`)
  return j.result
}

/** Runs the `px` CLI as `account` against the devnet. */
export async function pxCli(net, account, args) {
  const { stdout } = await run(join(bins, 'px'), args, {
    cwd: net.dir,
    env: {
      ...process.env,
      XDG_CONFIG_HOME: join(net.dir, 'xdg'),
      PX_RPC_URL: net.rpc,
      PX_DEPLOYMENT: net.deployment,
      PX_NODE: net.node,
      PX_PRIVATE_KEY: account.key,
      NO_COLOR: '1',
    },
    maxBuffer: 64 << 20,
  })
  return stdout
}

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** Chromium with a page whose `window.ethereum` forwards to anvil as `account`. */
export async function openBrowser(net, account, { viewport = { width: 1100, height: 900 } } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'px-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.PX_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    acceptDownloads: true,
    viewport,
  })
  const calls = []
  await context.exposeFunction('__pxRpc', async (method, params) => {
    calls.push(method)
    const r = await fetch(net.rpc, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    })
    return r.json()
  })
  await context.addInitScript((address) => {
    // The File System Access save picker needs a person to answer it: the test takes the Blob
    // download path, which every browser has.
    delete window.showSaveFilePicker
    window.ethereum = {
      isPxTestWallet: true,
      async request({ method, params }) {
        if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [address]
        if (method === 'wallet_switchEthereumChain') return null
        const r = await window.__pxRpc(method, params ?? [])
        if (r.error) throw Object.assign(new Error(r.error.message), { code: r.error.code, data: r.error.data })
        return r.result
      },
      on() {},
      removeListener() {},
    }
  }, account.address)
  const page = context.pages()[0] ?? (await context.newPage())
  const close = async () => {
    await context.close()
    rmSync(profile, { recursive: true, force: true })
  }
  return { context, page, calls, close }
}

export { readFileSync }
