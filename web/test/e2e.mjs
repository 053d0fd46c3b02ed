// End-to-end: the dApp in headless Chromium against a devnet this test starts (the built
// `px devnet`, free loopback ports), with the real wallet code path (an injected EIP-1193
// provider that forwards to anvil). Run by `make test-web` (`npm run e2e` in web/).
//
// The story: connect, mint with a PX permit, upload a 5 MiB file and see its progress, see it
// listed, download it and compare the bytes; the same file downloaded with `px` and a file
// uploaded with `px` downloaded in the browser; sync and see the usage on chain; move chain
// time past the sync window and see the refusal explained; sync again and upload.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openBrowser, pxCli, root, rpc, sha256, startDevnet } from './harness.mjs'

const shots = join(root, 'web/test-results/screenshots')
mkdirSync(shots, { recursive: true })
const started = Date.now()
const step = (s) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${s}`)
const T = 120_000

const net = await startDevnet()
step(`devnet up: dApp ${net.dapp}, chain ${net.rpc}`)
const user = net.accounts[0]
let browser
let failed = false
try {
  browser = await openBrowser(net, user)
  const { page } = browser
  page.setDefaultTimeout(T)
  const errors = []
  page.on('pageerror', (e) => errors.push(e.message))
  page.on('dialog', (d) => d.accept())

  await page.goto(`${net.dapp}/`)
  await page.screenshot({ path: join(shots, '1-connect.png') })
  await page.getByRole('button', { name: 'Connect wallet' }).click()
  await page.locator('#plans:not([hidden])').waitFor()
  await page.getByText(/^Connected to the storage node/).waitFor()
  const account = await page.locator('#account').textContent()
  assert.match(account, new RegExp(user.address.slice(2), 'i'), 'the header shows the connected account')
  assert.match(account, /10000 PX/, 'the demo account holds 10,000 PX')
  step('connected and signed in (SIWE through personal_sign)')
  await page.screenshot({ path: join(shots, '2-plans.png') })

  // Mint plan 2 with a permit: the node then binds its key; the drive opens.
  await page.getByRole('button', { name: 'Mint plan 2 with PX (permit)' }).click()
  const minted = await page.locator('#plans-status').filter({ hasText: /^Minted token \d+/ }).textContent({ timeout: T })
  const id = Number(minted.match(/Minted token (\d+)/)[1])
  await page.locator(`#token-${id}`).waitFor()
  await page.locator(`[data-testid="gate-${id}"]`, { hasText: /^open$/ }).waitFor()
  await page.locator('#drive-h', { hasText: `Drive of token ${id}` }).waitFor()
  await page.locator('#drive-status', { hasText: /^Encryption key [0-9a-f]{16} ready/ }).waitFor()
  const afterMint = await page.locator('#account').textContent()
  assert.match(afterMint, /9900 PX/, 'the permit paid 100 PX')
  step(`minted token ${id} with a PX permit; its key is bound`)

  // Upload 5 MiB, watching the job's progress texts as they change.
  await page.evaluate(() => {
    window.__jobTexts = []
    new MutationObserver(() => {
      for (const s of document.querySelectorAll('#uploads .job-status')) window.__jobTexts.push(s.textContent)
    }).observe(document.getElementById('uploads'), { subtree: true, childList: true, characterData: true })
  })
  const five = randomBytes(5 * 1024 * 1024)
  await page.locator('#picker').setInputFiles({ name: 'five.bin', mimeType: 'application/octet-stream', buffer: five })
  const job = page.locator('#uploads li[data-name="five.bin"]')
  await job.locator('.job-status', { hasText: /^stored as / }).waitFor()
  const texts = await page.evaluate(() => window.__jobTexts)
  const stages = new Set(texts.map((t) => t.split(' ')[0]))
  for (const s of ['hashing', 'encrypting', 'sending', 'stored']) assert.ok(stages.has(s), `progress shows ${s}: ${texts.join(' | ')}`)
  assert.ok(texts.some((t) => /^(hashing|encrypting|sending) ([1-9]|[1-9]\d)%$/.test(t)), `an intermediate percentage was shown: ${texts.join(' | ')}`)
  assert.equal(await job.locator('progress').evaluate((p) => p.value), 100)
  step(`uploaded 5 MiB; progress went ${[...new Set(texts)].join(' -> ')}`)

  const row = page.locator('#files tr[data-name="five.bin"]')
  await row.waitFor()
  assert.match(await row.textContent(), /5\.0 MiB/)
  const cid = await row.getByRole('button', { name: 'Download five.bin' }).getAttribute('data-cid')
  await page.screenshot({ path: join(shots, '3-drive.png'), fullPage: true })
  step(`listed as five.bin (${cid})`)

  const save = async (name) => {
    const r = page.locator(`#files tr[data-name="${name}"]`)
    const [dl] = await Promise.all([page.waitForEvent('download'), r.getByRole('button', { name: `Download ${name}` }).click()])
    assert.equal(dl.suggestedFilename(), name)
    const path = join(net.dir, `browser-${name}`)
    await dl.saveAs(path)
    await r.locator('.row-status', { hasText: /decrypted and checked/ }).waitFor()
    return readFileSync(path)
  }
  assert.equal(sha256(await save('five.bin')), sha256(five), 'the browser download equals the upload')
  step('downloaded in the browser, decrypted, bytes equal')

  // Cross-implementation, both ways, same wallet.
  const viaCli = join(net.dir, 'cli-five.bin')
  await pxCli(net, user, ['download', String(id), cid, '-o', viaCli])
  assert.equal(sha256(readFileSync(viaCli)), sha256(five), '`px download` of the browser upload equals it')
  const fromCli = randomBytes(700 * 1024 + 3)
  writeFileSync(join(net.dir, 'from-cli.bin'), fromCli)
  await pxCli(net, user, ['upload', String(id), join(net.dir, 'from-cli.bin')])
  await page.locator(`#token-${id}`).getByRole('button', { name: 'Open drive' }).click()
  await page.locator('#files tr[data-name="from-cli.bin"]').waitFor()
  assert.equal(sha256(await save('from-cli.bin')), sha256(fromCli), 'the browser download of a `px upload` equals it')
  step('cross-implementation: browser upload -> px download, px upload -> browser download')

  // Sync: the node publishes, the oracle answers, the usage lands on chain.
  const status = async () => JSON.parse(await pxCli(net, user, ['--json', 'status', String(id)]))
  const before = await status()
  assert.equal(before.token.used, 0, 'nothing synced yet')
  await page.locator(`#token-${id}`).getByRole('button', { name: 'Sync' }).click()
  await page.locator(`#sync-status-${id}`, { hasText: /^Synced: on chain now / }).waitFor()
  const onChain = await status()
  const live = JSON.parse(await pxCli(net, user, ['--json', 'ls', String(id)]))
  const liveBytes = (Array.isArray(live) ? live : live.files).reduce((n, f) => n + (f.entry?.size ?? f.size), 0)
  assert.ok(onChain.token.used > 5 * 1024 * 1024, `usage on chain after the sync: ${onChain.token.used}`)
  assert.equal(onChain.token.used, liveBytes, 'on-chain usage equals the bytes the node stores')
  assert.match(await page.locator(`[data-testid="used-synced-${id}"]`).textContent(), /^5\.\d MiB in 2 file\(s\)/)
  await page.screenshot({ path: join(shots, '4-synced.png'), fullPage: true })
  step(`synced: ${onChain.token.used} bytes on chain`)

  // Past the sync window: the dApp refuses and says why and what to do.
  await rpc(net.rpc, 'evm_increaseTime', [31 * 24 * 3600])
  await rpc(net.rpc, 'evm_mine')
  await page.locator(`#token-${id}`).getByRole('button', { name: 'Open drive' }).click()
  await page.locator('#drive-gate', { hasText: /^Uploads are locked: last sync 31 days ago/ }).waitFor()
  await page.locator('#picker').setInputFiles({ name: 'late.bin', mimeType: 'application/octet-stream', buffer: randomBytes(64 * 1024) })
  const late = page.locator('#uploads li[data-name="late.bin"] .job-status')
  await late.filter({ hasText: /^failed: / }).waitFor()
  assert.match(await late.textContent(), /uploads are locked: last sync 31 days ago \(uploads stay open for 30 days after a sync\); press Sync to unlock them/)
  await page.screenshot({ path: join(shots, '5-locked.png'), fullPage: true })
  await page.locator('#drive').screenshot({ path: join(shots, 'drive-locked.png') })
  step('31 days later: the upload is refused with the reason and the next step')

  await page.locator(`#token-${id}`).getByRole('button', { name: 'Sync' }).click()
  await page.locator(`#sync-status-${id}`, { hasText: /^Synced: on chain now / }).waitFor()
  await page.locator(`#token-${id}`).getByRole('button', { name: 'Open drive' }).click()
  await page.locator('#drive-gate', { hasText: /^Uploads are open; sync needed in 30 days/ }).waitFor()
  await page.locator('#picker').setInputFiles({ name: 'after.bin', mimeType: 'application/octet-stream', buffer: randomBytes(256 * 1024) })
  await page.locator('#uploads li[data-name="after.bin"] .job-status', { hasText: /^stored as / }).waitFor()
  await page.locator('#files tr[data-name="after.bin"]').waitFor()
  step('synced again; the upload is accepted')

  // Delete with confirmation (the dialog is accepted), renew and buy quota with PX.
  const card = page.locator(`#token-${id}`)
  await page.locator(`[data-testid="used-live-${id}"]`, { hasText: / in 3 file\(s\)/ }).waitFor()
  await page.getByRole('button', { name: 'Delete after.bin' }).click()
  await page.locator('#drive-status', { hasText: /^Deleted after\.bin; the node now holds / }).waitFor()
  await page.locator('#files tr[data-name="after.bin"]').waitFor({ state: 'detached' })
  await page.locator(`[data-testid="used-live-${id}"]`, { hasText: / in 2 file\(s\)/ }).waitFor()
  const expiresBefore = await page.locator(`[data-testid="expires-${id}"]`).textContent()
  await card.getByRole('button', { name: /^Renew/ }).click()
  await page.locator(`#sync-status-${id}`, { hasText: `Token ${id} renewed.` }).waitFor()
  // The plan's validity more: 365 days.
  const expires = page.locator(`[data-testid="expires-${id}"]`)
  await expires.filter({ hasNotText: expiresBefore }).waitFor()
  const unix = (t) => Date.parse(t.replace(' UTC', 'Z').replace(' ', 'T')) / 1000
  assert.equal(unix(await expires.textContent()) - unix(expiresBefore), 365 * 86400, 'renewed for 365 days')
  await page.locator(`#units-${id}`).fill('2')
  await card.getByRole('button', { name: 'Buy quota' }).click()
  await page.locator(`#sync-status-${id}`, { hasText: 'Bought 2.0 GiB of quota.' }).waitFor()
  await page.locator(`[data-testid="quota-${id}"]`, { hasText: /^12\.0 GiB$/ }).waitFor()
  // 100 PX mint + 100 PX renewal + 2 x 10 PX of quota.
  await page.locator('#account', { hasText: /: 9780 PX/ }).waitFor()
  step('deleted a file (confirmed), renewed, bought 2 GiB of quota')

  // Several files at once, one cancelled while it is being prepared: the other is stored.
  const bigPath = join(net.dir, 'big.bin')
  const smallPath = join(net.dir, 'small.bin')
  writeFileSync(bigPath, randomBytes(64 * 1024 * 1024))
  writeFileSync(smallPath, randomBytes(1024 * 1024))
  await page.locator('#picker').setInputFiles([bigPath, smallPath])
  await page.getByRole('button', { name: 'Cancel upload of big.bin' }).click()
  await page.locator('#uploads li[data-name="big.bin"] .job-status', { hasText: /^cancelled$/ }).waitFor()
  await page.locator('#uploads li[data-name="small.bin"] .job-status', { hasText: /^stored as / }).waitFor()
  await page.locator('#files tr[data-name="small.bin"]').waitFor()
  assert.equal(await page.locator('#files tr[data-name="big.bin"]').count(), 0, 'the cancelled file is not stored')
  step('two files picked at once; the cancelled one is not stored, the other is')

  // A phone-sized viewport: every control still on screen and reachable.
  await page.setViewportSize({ width: 390, height: 844 })
  await page.screenshot({ path: join(shots, '6-phone.png'), fullPage: true })
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  assert.ok(overflow <= 1, `no horizontal scrolling on a phone (${overflow} px too wide)`)
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('button, input, select, [role="button"]')]
      .filter((el) => !el.closest('[hidden]') && el.getAttribute('type') !== 'hidden')
      .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.getAttribute('aria-describedby')))
      .map((el) => el.outerHTML.slice(0, 80)),
  )
  assert.deepEqual(unlabelled, [], 'every control is labelled')
  assert.deepEqual(errors, [], 'no uncaught errors in the page')
  // One sign-in for the whole run (the session is reused), and the owner key derived once (the
  // key request signed twice and compared) beside the permit's signature.
  const count = (m) => browser.calls.filter((c) => c === m).length
  assert.equal(count('personal_sign'), 1, 'the SIWE session is reused')
  assert.equal(count('eth_signTypedData_v4'), 3, 'permit + the owner-key request twice')
  step('phone layout and labels checked')
} catch (e) {
  failed = true
  console.error(e)
  if (browser) await browser.page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {})
  console.error(`--- px devnet output ---\n${net.log().slice(-4000)}`)
} finally {
  if (browser) await browser.close()
  await net.stop()
}
step(failed ? 'FAILED' : 'e2e passed')
process.exit(failed ? 1 : 0)
