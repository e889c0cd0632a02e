// Integration tests of the engine's TFTP server with real clients (curl, atftp, tftp-hpa) on 127.0.0.1.
import { access, readdir } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { startTftpServer, type TftpServer } from '../../../src/transports/tftp/tftp-server.ts'
import {
  RawTftpClient,
  captureLogs,
  createTftpFixture,
  errorPacket,
  parseOptions,
  requestPacket,
  runCommand,
  runLimited,
  sha256,
  sha256OfFile,
  windowedDownload,
  type TftpFixture,
} from './tftp-test-kit.ts'

const fixture: TftpFixture = await createTftpFixture()
const logs = captureLogs()
const server: TftpServer = await startTftpServer({
  host: '127.0.0.1',
  port: 0,
  ipxeDir: fixture.ipxeDir,
  root: fixture.root,
  logger: logs.logger,
})
t.teardown(async () => {
  await server.close()
  await fixture.cleanup()
})

const port = String(server.port)
let downloadCounter = 0
const downloadPath = (name: string): string => path.join(fixture.downloads, `${downloadCounter++}-${path.basename(name)}`)
const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false)

async function curlGet(name: string, extraArgs: string[] = []): Promise<{ code: number | null; file: string }> {
  const file = downloadPath(name)
  const result = await runCommand('curl', ['-s', ...extraArgs, '-o', file, `tftp://127.0.0.1:${port}/${name}`])
  return { code: result.code, file }
}

/** Log records of finished or refused requests for `file`. */
const requestLogs = (file: string): Record<string, unknown>[] => logs.records.filter((record) => record.file === file)

t.test('port 0 picks a free port and reports it', async (t) => {
  t.ok(server.port > 1024 && server.port < 65536, `listening on ${server.port}`)
})

t.test('curl downloads every iPXE binary, default blksize 512 and blksize 1468', async (t) => {
  for (const name of ['undionly.kpxe', 'ipxe.efi', 'snponly.efi', 'one-mib.bin', 'exact-1024.bin']) {
    const plain = await curlGet(name)
    t.equal(plain.code, 0, `curl ${name} (512) exits 0`)
    t.equal(await sha256OfFile(plain.file), fixture.expected.get(name), `curl ${name} (512) sha256`)
    const large = await curlGet(name, ['--tftp-blksize', '1468'])
    t.equal(large.code, 0, `curl ${name} (1468) exits 0`)
    t.equal(await sha256OfFile(large.file), fixture.expected.get(name), `curl ${name} (1468) sha256`)
  }
  const sent = requestLogs('undionly.kpxe').filter((record) => record.outcome === 'sent')
  t.ok(sent.some((record) => record.blksize === 1468), 'blksize 1468 was negotiated')
  const undionlySize = (await import('node:fs')).statSync(path.join(fixture.ipxeDir, 'undionly.kpxe')).size
  t.equal(sent.length, 2, 'two downloads, two log lines')
  t.match(sent[0], { level: 30, client: /^127\.0\.0\.1:\d+$/, bytes: undionlySize, ms: Number })
})

t.test('curl downloads 40 MiB with blksize 1468', async (t) => {
  const result = await curlGet('big.bin', ['--tftp-blksize', '1468'])
  t.equal(result.code, 0)
  t.equal(await sha256OfFile(result.file), fixture.expected.get('big.bin'))
})

t.test('atftp: blksize, tsize and windowsize options', async (t) => {
  const cases: [string, string[]][] = [
    ['undionly.kpxe', []],
    ['ipxe.efi', ['--option', 'blksize 1468']],
    ['snponly.efi', ['--option', 'tsize 0']],
    ['one-mib.bin', ['--option', 'blksize 1468', '--option', 'tsize 0', '--option', 'windowsize 4']],
    ['big.bin', ['--option', 'blksize 1468', '--option', 'windowsize 4']],
    ['empty.bin', ['--option', 'tsize 0']],
    ['exact-1024.bin', ['--option', 'windowsize 4']],
  ]
  for (const [name, options] of cases) {
    const file = downloadPath(name)
    const result = await runCommand('atftp', ['--get', '-r', name, '-l', file, ...options, '127.0.0.1', port])
    t.equal(result.code, 0, `atftp ${name} ${options.join(' ')} exits 0 ${result.stderr}`)
    t.equal(await sha256OfFile(file), fixture.expected.get(name), `atftp ${name} sha256`)
  }
  const windowed = requestLogs('one-mib.bin').find((record) => record.windowsize === 4)
  t.ok(windowed, 'windowsize 4 was negotiated with atftp')
})

t.test('tftp-hpa: binary mode, verbose, and 40 MiB without options (block numbers roll over)', async (t) => {
  for (const name of ['undionly.kpxe', 'ipxe.efi', 'empty.bin', 'exact-1024.bin']) {
    const file = downloadPath(name)
    const result = await runCommand('tftp', ['127.0.0.1', port, '-m', 'binary', '-c', 'get', name, file])
    t.equal(result.code, 0)
    t.equal(await sha256OfFile(file), fixture.expected.get(name), `tftp-hpa ${name} sha256`)
  }
  const verboseFile = downloadPath('snponly.efi')
  const verbose = await runCommand('tftp', ['-v', '127.0.0.1', port, '-m', 'binary', '-c', 'get', 'snponly.efi', verboseFile])
  t.match(verbose.stdout, /Received \d+ bytes/, 'verbose output reports the transfer')
  t.equal(await sha256OfFile(verboseFile), fixture.expected.get('snponly.efi'))

  const bigFile = downloadPath('big.bin')
  const big = await runCommand('tftp', ['127.0.0.1', port, '-m', 'binary', '-c', 'get', 'big.bin', bigFile])
  t.equal(big.code, 0)
  t.equal(await sha256OfFile(bigFile), fixture.expected.get('big.bin'), '40 MiB at 512-byte blocks: more than 65535 blocks')
})

t.test('a missing file is TFTP error 1 for every client and is logged once at info', async (t) => {
  const curl = await curlGet('missing-for-curl.bin')
  t.equal(curl.code, 68, 'curl: CURLE_TFTP_NOTFOUND')
  const atftp = await runCommand('atftp', ['--get', '-r', 'missing-for-atftp.bin', '-l', downloadPath('x'), '127.0.0.1', port])
  t.not(atftp.code, 0)
  t.match(atftp.stderr, /File not found/)
  const hpa = await runCommand('tftp', ['127.0.0.1', port, '-m', 'binary', '-c', 'get', 'missing-for-hpa.bin', downloadPath('y')])
  t.match(hpa.stdout + hpa.stderr, /Error code 1: File not found/)

  await new Promise((resolve) => setTimeout(resolve, 100))
  for (const name of ['missing-for-curl.bin', 'missing-for-atftp.bin', 'missing-for-hpa.bin']) {
    const records = requestLogs(name)
    t.equal(records.length, 1, `${name} logged once`)
    t.match(records[0], { outcome: 'not-found', level: 30, bytes: 0 })
  }
})

t.test('traversal and absolute names are refused, never served', async (t) => {
  const raw = await RawTftpClient.open()
  t.teardown(() => raw.close())
  const cases: [string, number][] = [
    ['../x', 2],
    ['../../../../etc/passwd', 2],
    ['sub/../../outside/secret.txt', 2],
    ['..\\..\\etc\\passwd', 2],
    ['/etc/passwd', 1], // root-relative: <folder>/etc/passwd does not exist
    ['..%2fetc%2fpasswd', 2], // not percent-decoded, but a segment starting with .. is refused anyway
    ['caf\u00e9.bin', 2],
    ['/', 1],
  ]
  for (const [name, expectedCode] of cases) {
    raw.send(requestPacket(1, name), server.port)
    const answer = await raw.receive()
    t.ok(answer, `answer for ${name}`)
    t.equal(answer!.data.readUInt16BE(0), 5, `${name}: ERROR packet`)
    t.equal(answer!.data.readUInt16BE(2), expectedCode, `${name}: error code ${expectedCode}`)
  }
  // A leading slash is root-relative, the way PXE configs often write it.
  raw.send(requestPacket(1, '/undionly.kpxe', 'octet', { blksize: '1468' }), server.port)
  const oack = await raw.receive()
  t.equal(oack?.data.readUInt16BE(0), 6, '/undionly.kpxe is served (OACK)')
  raw.send(errorPacket(8, 'done'), oack!.from.port)

  const curlEncoded = await curlGet('..%2f..%2fetc%2fpasswd')
  t.equal(curlEncoded.code, 69, 'curl ..%2f (decoded by curl to ../): CURLE_TFTP_PERM')
  t.notOk(await exists(curlEncoded.file), 'nothing written by curl')
  const atftp = await runCommand('atftp', ['--get', '-r', '../../etc/passwd', '-l', downloadPath('passwd'), '127.0.0.1', port])
  t.not(atftp.code, 0)
  t.match(atftp.stderr, /Access violation/)
  const absolute = await runCommand('atftp', ['--get', '-r', '/etc/passwd', '-l', downloadPath('passwd2'), '127.0.0.1', port])
  t.not(absolute.code, 0, 'atftp /etc/passwd fails')
  t.match(absolute.stderr, /File not found/)
  const refused = logs.records.filter((record) => record.outcome === 'access-denied')
  t.ok(refused.every((record) => record.level === 40), 'access violations are logged at warn')
})

t.test('symlinks: inside the root served, escaping ones refused with error 2', async (t) => {
  const inside = await curlGet('inside-link.txt')
  t.equal(inside.code, 0)
  t.equal(await sha256OfFile(inside.file), fixture.expected.get('inside-link.txt'))
  const nested = await curlGet('sub/inside.txt')
  t.equal(await sha256OfFile(nested.file), fixture.expected.get('sub/inside.txt'))

  for (const name of ['escape-link.txt', 'escape-dir/secret.txt', 'relative-escape.txt']) {
    const escape = await curlGet(name)
    t.equal(escape.code, 69, `${name}: curl gets access violation`)
    t.notOk(await exists(escape.file), `${name}: no bytes downloaded`)
    const hpa = await runCommand('tftp', ['127.0.0.1', port, '-m', 'binary', '-c', 'get', name, downloadPath(name)])
    t.match(hpa.stdout + hpa.stderr, /Error code 2/, `${name}: tftp-hpa error code 2`)
  }
  t.ok(requestLogs('escape-link.txt').every((record) => record.outcome === 'access-denied' && record.level === 40))
})

t.test('names in root win over ipxeDir', async (t) => {
  const result = await curlGet('shadowed.txt')
  t.equal(await sha256OfFile(result.file), fixture.expected.get('shadowed.txt'))
})

t.test('writes are refused with access violation and create nothing', async (t) => {
  const before = [...(await readdir(fixture.ipxeDir)), ...(await readdir(fixture.root))].sort()
  const source = path.join(fixture.ipxeDir, 'undionly.kpxe')
  const atftp = await runCommand('atftp', ['--put', '-r', 'uploaded-atftp.bin', '-l', source, '127.0.0.1', port])
  t.not(atftp.code, 0)
  t.match(atftp.stderr, /read-only/)
  const hpa = await runCommand('tftp', ['127.0.0.1', port, '-m', 'binary', '-c', 'put', source, 'uploaded-hpa.bin'])
  t.match(hpa.stdout + hpa.stderr, /Error code 2/)
  const curl = await runCommand('curl', ['-s', '-T', source, `tftp://127.0.0.1:${port}/uploaded-curl.bin`])
  t.not(curl.code, 0, 'curl upload fails')

  const raw = await RawTftpClient.open()
  t.teardown(() => raw.close())
  raw.send(requestPacket(2, 'undionly.kpxe', 'octet', { tsize: '10' }), server.port)
  const answer = await raw.receive()
  t.equal(answer?.data.readUInt16BE(2), 2, 'raw WRQ: error code 2')

  const after = [...(await readdir(fixture.ipxeDir)), ...(await readdir(fixture.root))].sort()
  t.same(after, before, 'no file created in ipxeDir or root')
  t.equal(await sha256OfFile(source), fixture.expected.get('undionly.kpxe'), 'existing file untouched')
})

t.test('RFC 7440 windowsize with a raw client', async (t) => {
  const raw = await RawTftpClient.open()
  t.teardown(() => raw.close())
  const four = await windowedDownload(raw, server.port, 'one-mib.bin', { blksize: 1468, windowsize: 4 })
  t.same(four.oack, { blksize: '1468', windowsize: '4', tsize: String(1024 * 1024) }, 'OACK acknowledges all three')
  t.equal(sha256(four.data), fixture.expected.get('one-mib.bin'))

  const capped = await windowedDownload(raw, server.port, 'ipxe.efi', { blksize: 9000, windowsize: 64 })
  t.equal(capped.oack.windowsize, '16', 'windowsize capped at 16')
  t.equal(capped.oack.blksize, '1468', 'blksize capped at 1468')
  t.equal(sha256(capped.data), fixture.expected.get('ipxe.efi'))

  const exact = await windowedDownload(raw, server.port, 'exact-1024.bin', { blksize: 512, windowsize: 2 })
  t.equal(sha256(exact.data), fixture.expected.get('exact-1024.bin'), 'file ending on a window boundary')
})

t.test('option handling: invalid values ignored, timeout not acknowledged', async (t) => {
  const raw = await RawTftpClient.open()
  t.teardown(() => raw.close())
  const ask = async (options: Record<string, string>): Promise<Record<string, string> | 'no-oack'> => {
    raw.send(requestPacket(1, 'exact-1024.bin', 'OCTET', options), server.port)
    const answer = await raw.receive()
    if (!answer) throw new Error('no answer')
    const opcode = answer.data.readUInt16BE(0)
    raw.send(errorPacket(8, 'enough'), answer.from.port)
    return opcode === 6 ? parseOptions(answer.data) : 'no-oack'
  }
  t.same(await ask({ blksize: '0' }), 'no-oack', 'blksize 0 ignored: plain DATA')
  t.same(await ask({ blksize: '1', tsize: '0' }), { tsize: '1024' }, 'blksize 1 ignored, tsize answered')
  t.same(await ask({ blksize: '70000' }), { blksize: '1468' }, 'blksize 70000 clamped')
  t.same(await ask({ BLKSIZE: '1024', timeout: '5' }), { blksize: '1024' }, 'names are case-insensitive; timeout ignored')
  t.same(await ask({ windowsize: '0' }), 'no-oack', 'windowsize 0 ignored')
  t.same(await ask({ foo: 'bar' }), 'no-oack', 'unknown options ignored')
})

t.test('firmware-style tsize probe then abort (error 8) is logged at info, not as an error', async (t) => {
  const raw = await RawTftpClient.open()
  t.teardown(() => raw.close())
  raw.send(requestPacket(1, 'snponly.efi', 'octet', { tsize: '0' }), server.port)
  const oack = await raw.receive()
  t.equal(oack?.data.readUInt16BE(0), 6)
  const size = parseOptions(oack!.data).tsize
  raw.send(errorPacket(8, 'User aborted the transfer'), oack!.from.port)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const record = logs.records.find((entry) => entry.client === `127.0.0.1:${raw.socket.address().port}`)
  t.match(record, { outcome: 'client-aborted', level: 30, reason: /error 8/ })
  t.equal(size, String((await import('node:fs')).statSync(path.join(fixture.ipxeDir, 'snponly.efi')).size))
})

t.test('packets from strangers and junk on a transfer port do not disturb it', async (t) => {
  const client = await RawTftpClient.open()
  const stranger = await RawTftpClient.open()
  t.teardown(async () => {
    await client.close()
    await stranger.close()
  })
  client.send(requestPacket(1, 'exact-1024.bin', 'octet', { blksize: '512' }), server.port)
  const oack = await client.receive()
  const transferPort = oack!.from.port
  stranger.send(errorPacket(0, 'go away'), transferPort)
  const rebuke = await stranger.receive()
  t.equal(rebuke?.data.readUInt16BE(2), 5, 'stranger gets error 5 (unknown transfer ID)')
  client.send(Buffer.from([0]), transferPort)
  client.send(Buffer.from([0, 4, 0]), transferPort)
  client.send(Buffer.from([0, 4, 0, 0]), transferPort)
  const blocks: Buffer[] = []
  for (let block = 1; block <= 3; block++) {
    const data = await client.receive()
    t.equal(data?.data.readUInt16BE(0), 3, `DATA ${block}`)
    blocks.push(data!.data.subarray(4))
    client.send(Buffer.from([0, 4, 0, block]), transferPort)
  }
  t.equal(sha256(Buffer.concat(blocks)), fixture.expected.get('exact-1024.bin'))
})

t.test('50 concurrent curl transfers (10 at a time) all arrive intact', async (t) => {
  const names = ['undionly.kpxe', 'ipxe.efi', 'snponly.efi', 'one-mib.bin', 'exact-1024.bin']
  const tasks = Array.from({ length: 50 }, (_, index) => async () => {
    const name = names[index % names.length]!
    const args = index % 2 === 0 ? ['--tftp-blksize', '1468'] : []
    const result = await curlGet(name, args)
    return { name, code: result.code, sha: result.code === 0 ? await sha256OfFile(result.file) : '' }
  })
  const started = Date.now()
  const sentBefore = logs.records.filter((record) => record.outcome === 'sent').length
  const results = await runLimited(tasks, 10)
  const failures = results.filter((result) => result.code !== 0 || result.sha !== fixture.expected.get(result.name))
  t.same(failures, [], `50 transfers intact in ${Date.now() - started} ms`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const sentAfter = logs.records.filter((record) => record.outcome === 'sent').length
  t.equal(sentAfter - sentBefore, 50, 'one "sent" log line per transfer')
})

t.test('every log line of a request carries client, file, outcome, bytes and ms; nothing at error level', async (t) => {
  const transferLogs = logs.records.filter((record) => typeof record.outcome === 'string')
  t.ok(transferLogs.length > 100)
  t.ok(transferLogs.every((record) => ['client', 'file', 'bytes', 'ms'].every((field) => field in record)))
  t.notOk(logs.records.some((record) => Number(record.level) >= 50), 'nothing logged at error level')
})
