// Throughput of the dApp in headless Chromium against the `px` CLI on the same devnet: upload
// and download of one file (default 256 MiB; PX_BENCH_MIB changes it), as the user sees them
// (hashing, encryption and sending for uploads; receiving, decryption, checks and the saved file
// for downloads), and the browser's JavaScript heap at its peak during each.
//   cd web && npm run bench        (after `make web` and a workspace build)
import { spawnSync } from 'node:child_process'
import { createReadStream, writeFileSync } from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { openBrowser, pxCli, startDevnet } from './harness.mjs'

const MIB = Number(process.env.PX_BENCH_MIB ?? 256)
const bytes = MIB * 1024 * 1024

const hashFile = (path) =>
  new Promise((ok, fail) => {
    const h = createHash('sha256')
    createReadStream(path).on('data', (d) => h.update(d)).on('end', () => ok(h.digest('hex'))).on('error', fail)
  })

const net = await startDevnet()
const user = net.accounts[1]
const file = join(net.dir, 'bench.bin')
{
  // Random content, written in 16 MiB steps.
  const step = 16 << 20
  writeFileSync(file, '')
  for (let at = 0; at < bytes; at += step) writeFileSync(file, randomBytes(Math.min(step, bytes - at)), { flag: 'a' })
}
const want = await hashFile(file)
const browser = await openBrowser(net, user)
const { page } = browser
page.setDefaultTimeout(600_000)
const result = { mib: MIB }
const peak = async (fn) => {
  let max = 0
  let on = true
  const sampler = (async () => {
    while (on) {
      const used = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0).catch(() => 0)
      max = Math.max(max, used)
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  try {
    return await fn()
  } finally {
    on = false
    await sampler
    result.lastPeakHeapMiB = +(max / 1048576).toFixed(1)
  }
}
try {
  await page.goto(`${net.dapp}/`)
  await page.getByRole('button', { name: 'Connect wallet' }).click()
  await page.getByRole('button', { name: 'Mint plan 2 with PX (permit)' }).click()
  await page.locator('#drive-status', { hasText: /^Encryption key/ }).waitFor()
  const id = Number((await page.locator('#plans-status').textContent()).match(/Minted token (\d+)/)[1])

  const t0 = Date.now()
  await peak(async () => {
    await page.locator('#picker').setInputFiles(file)
    await page.locator('#uploads li[data-name="bench.bin"] .job-status', { hasText: /^stored as / }).waitFor()
  })
  const upMs = Number(await page.locator('#uploads li[data-name="bench.bin"] .job-status').getAttribute('data-ms'))
  result.browserUploadMiBs = +(MIB / (upMs / 1000)).toFixed(1)
  result.browserUploadStagesMs = JSON.parse(await page.locator('#uploads li[data-name="bench.bin"] .job-status').getAttribute('data-stages'))
  result.browserUploadPeakHeapMiB = result.lastPeakHeapMiB
  result.browserUploadWallMs = Date.now() - t0

  const row = page.locator('#files tr[data-name="bench.bin"]')
  const cid = await row.getByRole('button', { name: 'Download bench.bin' }).getAttribute('data-cid')
  const t1 = Date.now()
  const saved = join(net.dir, 'browser-bench.bin')
  await peak(async () => {
    const [dl] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'Download bench.bin' }).click()])
    const why = await dl.failure()
    if (why) throw new Error(`the browser's download failed: ${why}`)
    await dl.saveAs(saved)
  })
  const toSaved = Date.now() - t1
  const downMs = Number(await row.locator('.row-status').getAttribute('data-ms'))
  result.browserDownloadMiBs = +(MIB / (downMs / 1000)).toFixed(1)
  result.browserDownloadToSavedFileMiBs = +(MIB / (toSaved / 1000)).toFixed(1)
  result.browserDownloadPeakHeapMiB = result.lastPeakHeapMiB
  if ((await hashFile(saved)) !== want) throw new Error('the browser download differs from the file')

  let t = Date.now()
  await pxCli(net, user, ['upload', String(id), file])
  result.cliUploadMiBs = +(MIB / ((Date.now() - t) / 1000)).toFixed(1)
  t = Date.now()
  const out = join(net.dir, 'cli-bench.bin')
  await pxCli(net, user, ['download', String(id), cid, '-o', out])
  result.cliDownloadMiBs = +(MIB / ((Date.now() - t) / 1000)).toFixed(1)
  if ((await hashFile(out)) !== want) throw new Error('the CLI download differs from the file')
  result.uploadRatio = +(result.browserUploadMiBs / result.cliUploadMiBs).toFixed(2)
  result.downloadRatio = +(result.browserDownloadMiBs / result.cliDownloadMiBs).toFixed(2)
  delete result.lastPeakHeapMiB
  result.chromium = spawnSync('/usr/bin/chromium', ['--version']).stdout?.toString().trim()
  console.log(JSON.stringify(result, null, 2))
} finally {
  await browser.close()
  await net.stop()
}
