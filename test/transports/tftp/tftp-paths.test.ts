// Unit tests of the name -> file decision (pure) and its realpath containment (temp folders).
import t from 'tap'
import { isInsideFolder } from '../../../src/lib/contained-file.ts'
import {
  normalizeRequestedName,
  resolveServedFile,
  servedFolders,
} from '../../../src/transports/tftp/tftp-paths.ts'
import { createTftpFixture } from './tftp-test-kit.ts'

t.test('normalizeRequestedName', async (t) => {
  const ok = (name: string, relativePath: string) =>
    t.same(normalizeRequestedName(name), { ok: true, relativePath }, `${JSON.stringify(name)} -> ${relativePath}`)
  const refused = (name: string, errorCode: number) =>
    t.match(normalizeRequestedName(name), { ok: false, errorCode }, `${JSON.stringify(name)} refused with ${errorCode}`)
  ok('undionly.kpxe', 'undionly.kpxe')
  ok('/undionly.kpxe', 'undionly.kpxe')
  ok('//./efi//ipxe.efi', 'efi/ipxe.efi')
  ok('boot\\x64\\wdsnbp.com', 'boot/x64/wdsnbp.com')
  ok('a..b', 'a..b')
  refused('../x', 2)
  refused('a/../../x', 2)
  refused('a/../b', 2)
  refused('..\\x', 2)
  refused('..%2fx', 2)
  refused('\u00e9', 2)
  refused('a\nb', 2)
  refused('', 1)
  refused('/', 1)
  refused('./.', 1)
})

t.test('isInsideFolder and servedFolders', async (t) => {
  t.ok(isInsideFolder('/srv/tftp', '/srv/tftp/a'))
  t.ok(isInsideFolder('/srv/tftp/', '/srv/tftp/a/b'))
  t.notOk(isInsideFolder('/srv/tftp', '/srv/tftp'))
  t.notOk(isInsideFolder('/srv/tftp', '/srv/tftp-other/a'))
  t.notOk(isInsideFolder('/srv/tftp', '/etc/passwd'))
  t.same(servedFolders({ ipxeDir: '/i' }), ['/i'])
  t.same(servedFolders({ ipxeDir: '/i', root: '/r' }), ['/r', '/i'], 'root first')
})

t.test('resolveServedFile on real folders', async (t) => {
  const fixture = await createTftpFixture({ bigFileMiB: 1 })
  t.teardown(fixture.cleanup)
  const folders = { ipxeDir: fixture.ipxeDir, root: fixture.root }
  t.match(await resolveServedFile('undionly.kpxe', folders), { ok: true, folder: fixture.ipxeDir })
  t.match(await resolveServedFile('shadowed.txt', folders), { ok: true, folder: fixture.root }, 'root wins')
  t.match(await resolveServedFile('inside-link.txt', folders), { ok: true, realPath: /sub\/inside\.txt$/ })
  t.match(await resolveServedFile('escape-link.txt', folders), { ok: false, errorCode: 2 })
  t.match(await resolveServedFile('escape-dir/secret.txt', folders), { ok: false, errorCode: 2 })
  t.match(await resolveServedFile('relative-escape.txt', folders), { ok: false, errorCode: 2 })
  t.match(await resolveServedFile('missing', folders), { ok: false, errorCode: 1 })
  t.match(await resolveServedFile('sub', folders), { ok: false, errorCode: 1 }, 'a folder is not a file')
  t.match(await resolveServedFile('undionly.kpxe/x', folders), { ok: false, errorCode: 1 })
  t.match(await resolveServedFile('inside-link.txt', { ipxeDir: fixture.ipxeDir }), { ok: false, errorCode: 1 }, 'no root')
})

t.test("top-level links in ipxeDir are the distribution's and may point outside; nothing else may", async (t) => {
  const { mkdtempSync, mkdirSync, symlinkSync, writeFileSync, rmSync } = await import('node:fs')
  const os = await import('node:os')
  const path = await import('node:path')
  const base = mkdtempSync(path.join(os.tmpdir(), 'slipway-ipxe-links-'))
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const ipxeDir = path.join(base, 'lib-ipxe')
  const root = path.join(base, 'root')
  const boot = path.join(base, 'boot')
  for (const dir of [ipxeDir, root, boot, path.join(ipxeDir, 'sub')]) mkdirSync(dir)
  writeFileSync(path.join(boot, 'ipxe.efi'), 'efi')
  symlinkSync(path.join(boot, 'ipxe.efi'), path.join(ipxeDir, 'ipxe.efi')) // as Debian ships it
  symlinkSync(path.join(boot, 'ipxe.efi'), path.join(ipxeDir, 'sub', 'deep.efi'))
  symlinkSync(path.join(boot, 'ipxe.efi'), path.join(root, 'root-link.efi'))
  t.match(await resolveServedFile('ipxe.efi', { ipxeDir, root }), { ok: true, realPath: path.join(boot, 'ipxe.efi') })
  t.match(await resolveServedFile('sub/deep.efi', { ipxeDir, root }), { ok: false, errorCode: 2 }, 'deeper links stay contained')
  t.match(await resolveServedFile('root-link.efi', { ipxeDir, root }), { ok: false, errorCode: 2 }, 'links in root stay contained')
})
