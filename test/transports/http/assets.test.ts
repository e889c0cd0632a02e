import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { removeTree, startTestEngine } from '../../helpers/engine.ts'

const run = promisify(execFile)

/** curl against the engine listening on loopback: real HTTP parsing, no injection shortcuts. */
async function curl(args: string[]): Promise<{ status: number; headers: string; body: string }> {
  const { stdout } = await run('curl', ['--silent', '--show-error', '--path-as-is', '--include', '--max-time', '10', ...args], { encoding: 'latin1' })
  const split = stdout.indexOf('\r\n\r\n')
  const headers = stdout.slice(0, split)
  return { status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(headers)?.[1]), headers, body: stdout.slice(split + 4) }
}

t.test('/assets: files, ranges, and no way out of the folder', async (t) => {
  const { engine, contentDir, dataDir } = await startTestEngine()
  const assets = path.join(contentDir, 'assets')
  mkdirSync(path.join(assets, 'flatcar'), { recursive: true })
  const kernel = Buffer.alloc(100_000, 0)
  for (let index = 0; index < kernel.length; index++) kernel[index] = index % 251
  writeFileSync(path.join(assets, 'flatcar', 'vmlinuz'), kernel)
  writeFileSync(path.join(contentDir, 'secret.txt'), 'TOP-SECRET-CONTENT')
  symlinkSync(path.join(contentDir, 'secret.txt'), path.join(assets, 'escape'))
  symlinkSync('/etc', path.join(assets, 'etc-link'))
  symlinkSync(path.join(assets, 'flatcar', 'vmlinuz'), path.join(assets, 'inside-link'))
  const address = await engine.app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })

  const whole = await curl([`${address}/assets/flatcar/vmlinuz`])
  t.equal(whole.status, 200)
  t.match(whole.headers, /accept-ranges: bytes/i)
  t.match(whole.headers, /content-length: 100000/i)
  t.ok(Buffer.from(whole.body, 'latin1').equals(kernel), 'body is the file')

  const part = await curl(['-r', '1000-1999', `${address}/assets/flatcar/vmlinuz`])
  t.equal(part.status, 206)
  t.match(part.headers, /content-range: bytes 1000-1999\/100000/i)
  t.ok(Buffer.from(part.body, 'latin1').equals(kernel.subarray(1000, 2000)), 'range body')

  const suffix = await curl(['-H', 'Range: bytes=-10', `${address}/assets/flatcar/vmlinuz`])
  t.equal(suffix.status, 206)
  t.ok(Buffer.from(suffix.body, 'latin1').equals(kernel.subarray(99_990)))
  const unsatisfiable = await curl(['-H', 'Range: bytes=200000-', `${address}/assets/flatcar/vmlinuz`])
  t.equal(unsatisfiable.status, 416)
  t.match(unsatisfiable.headers, /content-range: bytes \*\/100000/i)

  const etag = /etag: (.+)\r?$/im.exec(whole.headers)?.[1]?.trim()
  t.ok(etag)
  t.equal((await curl(['-H', `If-None-Match: ${etag}`, `${address}/assets/flatcar/vmlinuz`])).status, 304)
  const head = await curl(['--head', `${address}/assets/flatcar/vmlinuz`])
  t.equal(head.status, 200)
  t.equal(head.body, '')

  t.equal((await curl([`${address}/assets/inside-link`])).status, 200, 'a link that stays inside is fine')
  for (const [url, status] of [
    ['/assets/../secret.txt', 400],
    ['/assets/flatcar/../../secret.txt', 400],
    ['/assets/%2e%2e/secret.txt', 400],
    ['/assets/flatcar/%2e%2e%2f%2e%2e%2fsecret.txt', 400],
    ['/assets/..%5csecret.txt', 400],
    ['/assets/escape', 403],
    ['/assets/etc-link/passwd', 403],
    ['/assets/missing', 404],
    ['/assets/flatcar', 404],
    ['/assets/flatcar/vmlinuz%00.txt', 400],
  ] as const) {
    const response = await curl([`${address}${url}`])
    t.equal(response.status, status, url)
    t.notMatch(response.body, /TOP-SECRET-CONTENT|root:/, `${url} leaks nothing`)
  }
})

t.test('/pxe serves the iPXE binaries for UEFI HTTP boot, contained the same way', async (t) => {
  const binaries = mkdtempSync(path.join(os.tmpdir(), 'slipway-ipxe-'))
  const efi = Buffer.from(Array.from({ length: 70_000 }, (_, index) => (index * 7) % 256))
  const elsewhere = mkdtempSync(path.join(os.tmpdir(), 'slipway-boot-'))
  writeFileSync(path.join(elsewhere, 'ipxe.efi'), efi)
  // Debian's layout: /usr/lib/ipxe/ipxe.efi is a link to /boot/ipxe.efi.
  symlinkSync(path.join(elsewhere, 'ipxe.efi'), path.join(binaries, 'ipxe.efi'))
  mkdirSync(path.join(binaries, 'sub'))
  symlinkSync('/etc/passwd', path.join(binaries, 'sub', 'passwd'))
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_TFTP_IPXE_DIR: binaries } })
  const address = await engine.app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
    removeTree(binaries)
    removeTree(elsewhere)
  })
  const response = await curl([`${address}/pxe/ipxe.efi`])
  t.equal(response.status, 200)
  t.ok(Buffer.from(response.body, 'latin1').equals(efi))
  t.equal((await curl([`${address}/pxe/../pxe/ipxe.efi`])).status, 400)
  t.equal((await curl([`${address}/pxe/snp.efi`])).status, 404)
  t.equal((await curl([`${address}/pxe/sub/passwd`])).status, 403, 'only top-level links may leave the folder')
})
