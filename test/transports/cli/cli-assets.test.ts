/**
 * `slipway assets mirror`, the real binary against a release server and an extensions server on
 * loopback laid out as Flatcar's (`<version>/<file>` with `<file>.DIGESTS`, `current/version.txt`)
 * and the sysext bakery's (`SHA256SUMS`): files land only when they match their published checksum,
 * a second run keeps what is there, and the engine then serves the PXE kernel its discovery profile
 * names from the mirror, with no internet.
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { removeTree, startTestEngine } from '../../helpers/engine.ts'
import { closedPort, slipway } from './run-slipway.ts'

const VERSION = '4152.2.3'
const hex = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex')
const digests = (name: string, data: Buffer) => `# MD5 HASH\n${hex('md5', data)}  ${name}\n# SHA1 HASH\n${hex('sha1', data)}  ${name}\n# SHA512 HASH\n${hex('sha512', data)}  ${name}\n`

t.test('mirror a Flatcar release and a sysext, verified; keep what matches; refuse what does not; the engine serves the mirror', async (t) => {
  const release: Record<string, Buffer> = {
    'flatcar_production_pxe.vmlinuz': randomBytes(300_000),
    'flatcar_production_pxe_image.cpio.gz': randomBytes(500_000),
    'flatcar_production_image.bin.bz2': randomBytes(800_000),
  }
  const sysext = randomBytes(200_000)
  const tampered = randomBytes(1000)
  const files = new Map<string, Buffer>([[`/amd64-usr/current/version.txt`, Buffer.from(`FLATCAR_BUILD=4152\nFLATCAR_VERSION=${VERSION}\n`)]])
  for (const [name, data] of Object.entries(release)) {
    files.set(`/amd64-usr/${VERSION}/${name}`, data)
    files.set(`/amd64-usr/${VERSION}/${name}.DIGESTS`, Buffer.from(digests(name, data)))
  }
  files.set(`/amd64-usr/${VERSION}/flatcar_production_image.bin.bz2.sig`, Buffer.from('signature'))
  files.set(`/amd64-usr/${VERSION}/version.txt`, Buffer.from(`FLATCAR_VERSION=${VERSION}\n`))
  files.set('/ext/kubernetes-v1.31.8-x86-64.raw', sysext)
  // The server hands out a different file than the one SHA256SUMS lists for v1.32.0.
  files.set('/ext/kubernetes-v1.32.0-x86-64.raw', tampered)
  files.set('/ext/SHA256SUMS', Buffer.from(`${hex('sha256', sysext)}  kubernetes-v1.31.8-x86-64.raw\n${hex('sha256', randomBytes(10))}  kubernetes-v1.32.0-x86-64.raw\n`))
  const served: string[] = []
  const server = http.createServer((request, response) => {
    served.push(request.url!)
    const body = files.get(request.url!)
    response.writeHead(body ? 200 : 404).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-assets-'))
  t.teardown(() => removeTree(scratch))
  const dir = path.join(scratch, 'assets')
  const mirror = (...extra: string[]) => slipway(['assets', 'mirror', '--dir', dir, '--from-flatcar', `${base}/amd64-usr`, '--from-extensions', `${base}/ext`, ...extra], { cwd: scratch, timeoutMs: 60_000 })

  const first = await mirror('--kubernetes', 'v1.31.8')
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, new RegExp(`Flatcar ${VERSION.replaceAll('.', '\\.')} \\(stable\\) and 1 sysext\\(s\\) are in place`))
  for (const [name, data] of Object.entries(release)) t.ok(readFileSync(path.join(dir, 'flatcar/stable', VERSION, name)).equals(data), `${name}: the published bytes`)
  t.ok(readFileSync(path.join(dir, 'extensions/kubernetes-v1.31.8-x86-64.raw')).equals(sysext))
  t.equal(readlinkSync(path.join(dir, 'flatcar/stable/current')), VERSION, 'current names the release, as on the release server')

  served.length = 0
  const again = await mirror('--kubernetes', 'v1.31.8')
  t.equal(again.code, 0, again.stderr)
  t.equal(again.stdout.match(/^kept /gm)?.length, 4, 'a second run keeps the files that match')
  t.notOk(served.some((url) => url.endsWith('.bz2') || url.endsWith('.vmlinuz') || url.endsWith('.raw')), 'and downloads none of them again')

  const mismatch = await mirror('--kubernetes', 'v1.32.0')
  t.equal(mismatch.code, 1)
  t.match(mismatch.stderr, /kubernetes-v1\.32\.0-x86-64\.raw: sha256 [0-9a-f]{64} is not the published [0-9a-f]{64}; nothing was written \(CHECKSUM_MISMATCH\)/)
  t.notOk(existsSync(path.join(dir, 'extensions/kubernetes-v1.32.0-x86-64.raw')), 'a file that does not match never lands')
  t.same(readdirSync(path.join(dir, 'extensions')), ['kubernetes-v1.31.8-x86-64.raw'], 'and leaves nothing half-written')

  const unknown = await mirror('--kubernetes', 'v1.30.0')
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /no SHA-256 for kubernetes-v1\.30\.0-x86-64\.raw: .* give one with --sysext-sha256 .*\(CHECKSUM_UNKNOWN\)/)
  const byHand = await mirror('--kubernetes', 'v1.32.0', '--sysext-sha256', `kubernetes-v1.32.0-x86-64.raw=${hex('sha256', tampered)}`)
  t.equal(byHand.code, 0, `a digest given by hand counts: ${byHand.stderr}`)

  // Fedora CoreOS members' Kubernetes binaries, from a server in dl.k8s.io's layout, each against its .sha256.
  const binaries = Object.fromEntries(['kubeadm', 'kubelet', 'kubectl'].map((name) => [name, randomBytes(50_000)]))
  for (const [name, data] of Object.entries(binaries)) {
    files.set(`/k8s/v1.31.8/bin/linux/amd64/${name}`, data)
    files.set(`/k8s/v1.31.8/bin/linux/amd64/${name}.sha256`, Buffer.from(hex('sha256', data)))
  }
  const withBinaries = await mirror('--kubernetes', 'v1.31.8', '--kubernetes-binaries', '--from-kubernetes', `${base}/k8s`)
  t.equal(withBinaries.code, 0, withBinaries.stderr)
  for (const [name, data] of Object.entries(binaries)) t.ok(readFileSync(path.join(dir, 'kubernetes/v1.31.8/bin/linux/amd64', name)).equals(data), `${name}: the published bytes, where Fedora CoreOS members fetch it`)
  files.set('/k8s/v1.31.8/bin/linux/amd64/kubectl', randomBytes(10))
  rmSync(path.join(dir, 'kubernetes/v1.31.8/bin/linux/amd64/kubectl'))
  const badBinary = await mirror('--kubernetes', 'v1.31.8', '--kubernetes-binaries', '--from-kubernetes', `${base}/k8s`)
  t.equal(badBinary.code, 1)
  t.match(badBinary.stderr, /kubectl: sha256 [0-9a-f]{64} is not the published [0-9a-f]{64}; nothing was written \(CHECKSUM_MISMATCH\)/)
  t.notOk(existsSync(path.join(dir, 'kubernetes/v1.31.8/bin/linux/amd64/kubectl')), 'a binary that does not match never lands')

  const down = await slipway(['assets', 'mirror', '--dir', dir, '--from-flatcar', `http://127.0.0.1:${await closedPort()}/amd64-usr`], { cwd: scratch })
  t.equal(down.code, 6, 'an unreachable server: exit 6')
  const usage = await slipway(['assets', 'mirror', '--dir', dir, '--flatcar-version', 'latest'], { cwd: scratch })
  t.equal(usage.code, 2)

  // The engine serves what the sample discovery profile names, from the mirror.
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_CONTENT_ASSETS_DIR: dir } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const ipxe = await engine.app.inject({ method: 'GET', url: '/ipxe?mac=52:54:00:00:00:99', headers: { host: 'engine.test:8080' } })
  const kernel = /\nkernel http:\/\/engine\.test:8080(\S+)/.exec(ipxe.body)?.[1]
  t.equal(kernel, '/assets/flatcar/stable/current/flatcar_production_pxe.vmlinuz')
  const fetched = await engine.app.inject({ method: 'GET', url: kernel! })
  t.equal(fetched.statusCode, 200)
  t.ok(fetched.rawPayload.equals(release['flatcar_production_pxe.vmlinuz']!), 'the PXE kernel, from the mirror')
})
