// Integration tests of the engine's TFTP server with real clients (curl, atftp, tftp-hpa) on 127.0.0.1.
import { access, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { EngineMetrics } from '../../../src/transports/metrics.ts'
import { startTftpServer, type TftpServer } from '../../../src/transports/tftp/tftp-server.ts'
import {
  RawTftpClient,
  ackPacket,
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
import { sleep } from '../../helpers/wait.ts'

const fixture: TftpFixture = await createTftpFixture()
const logs = captureLogs()
const server: TftpServer = await startTftpServer({
  host: '127.0.0.1',
  port: 0,
  ipxeDir: fixture.ipxeDir,
  root: fixture.root,
  logger: logs.logger,
  // Every client of these tests is 127.0.0.1: the per-client limit would stand for 10 machines at once.
  maxTransfersPerClient: 32,
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

  await sleep(100)
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

t.test('RFC 7440 with loss: the client ACKs the last block it got in order, the server resumes from there', async (t) => {
  const raw = await RawTftpClient.open()
  t.teardown(() => raw.close())
  raw.send(requestPacket(1, 'undionly.kpxe', 'octet', { blksize: '1024', windowsize: '8' }), server.port)
  const oack = await raw.receive()
  const transferPort = oack!.from.port
  raw.send(ackPacket(0), transferPort)
  const started = Date.now()
  const lost = new Set([5, 20, 33])
  const blocks: Buffer[] = []
  let expected = 1
  let sinceAck = 0
  for (;;) {
    const datagram = await raw.receive()
    if (!datagram) throw new Error(`timed out waiting for block ${expected}`)
    if (datagram.data.readUInt16BE(2) !== expected) continue // the rest of a window the server restarted
    if (lost.delete(expected)) {
      raw.send(ackPacket(expected - 1), transferPort) // "lost": say where the data stopped
      sinceAck = 0
      continue
    }
    const payload = datagram.data.subarray(4)
    blocks.push(payload)
    sinceAck += 1
    const last = payload.length < 1024
    if (last || sinceAck === 8) {
      raw.send(ackPacket(expected), transferPort)
      sinceAck = 0
    }
    expected += 1
    if (last) break
  }
  t.equal(sha256(Buffer.concat(blocks)), fixture.expected.get('undionly.kpxe'), 'intact despite three lost blocks')
  t.ok(Date.now() - started < 900, `resumed at once, without waiting for the retransmission timer (${Date.now() - started} ms)`)
})

t.test('option handling: invalid values ignored, timeout acknowledged (RFC 2349)', async (t) => {
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
  t.same(await ask({ BLKSIZE: '1024', timeout: '5' }), { blksize: '1024', timeout: '5' }, 'names are case-insensitive; timeout acknowledged')
  t.same(await ask({ timeout: '0' }), 'no-oack', 'timeout 0 ignored')
  t.same(await ask({ timeout: '256' }), 'no-oack', 'timeout 256 ignored (RFC 2349: 1-255)')
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
  await sleep(200)
  const record = logs.records.find((entry) => entry.client === `127.0.0.1:${raw.socket.address().port}`)
  t.match(record, { outcome: 'client-aborted', level: 30, reason: /error 8/ })
  t.equal(size, String((await import('node:fs')).statSync(path.join(fixture.ipxeDir, 'snponly.efi')).size))

  // Then EDK2 reads for real, from a new port, with blksize and windowsize 4.
  const reader = await RawTftpClient.open()
  t.teardown(() => reader.close())
  const read = await windowedDownload(reader, server.port, 'snponly.efi', { blksize: 1468, windowsize: 4 })
  t.same(read.oack, { blksize: '1468', windowsize: '4', tsize: size })
  t.equal(sha256(read.data), fixture.expected.get('snponly.efi'), 'the read after the probe is intact')
})

t.test('a client that goes away ends its transfer: a new client on its port never gets the old file', async (t) => {
  // curl's TFTP client takes DATA from any sender once it has its first packet, so a transfer that
  // kept resending to a closed port would hand its bytes to the next program given that port. The
  // transfer socket is connected to its client: the kernel's port-unreachable ends the transfer.
  for (const answered of [false, true]) {
    const client = await RawTftpClient.open()
    const port = client.socket.address().port
    client.send(requestPacket(1, 'snponly.efi', 'octet', { blksize: '1468' }), server.port)
    const oack = await client.receive()
    t.equal(oack?.data.readUInt16BE(0), 6, 'an OACK')
    if (answered) {
      client.send(ackPacket(0), oack!.from.port)
      t.equal((await client.receive())?.data.readUInt16BE(0), 3, 'DATA 1')
    }
    await client.close()
    await sleep(1_500) // the first resend (1 s) meets the closed port
    const successor = await RawTftpClient.open('127.0.0.1', port)
    t.teardown(() => successor.close())
    t.equal(await successor.receive(2_500), undefined, `${answered ? 'answered' : 'unanswered'}: nothing of the old transfer reaches the port's next owner`)
    if (answered) {
      const record = requestLogs('snponly.efi').find((entry) => entry.client === `127.0.0.1:${port}`)
      t.match(record, { outcome: 'client-aborted', reason: /port is closed/ }, 'logged as the client going away')
    }
  }
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
  // The transfer socket is connected to its client (as tftpd-hpa's are): the kernel drops a stranger's
  // packet before the server sees it, so the stranger is not answered either.
  t.equal(await stranger.receive(500), undefined, 'the stranger gets nothing back')
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
    // Each curl on local ports below the kernel's ephemeral range (32768 and up): curl takes DATA from
    // any sender, and a test file running beside this one may have left a transfer resending to a
    // port the kernel would hand out again. No socket of any test had these ports.
    const localPorts = ['--local-port', `${20_000 + index * 100}-${20_099 + index * 100}`]
    const args = index % 2 === 0 ? ['--tftp-blksize', '1468', ...localPorts] : localPorts
    const result = await curlGet(name, args)
    return { name, code: result.code, sha: result.code === 0 ? await sha256OfFile(result.file) : '' }
  })
  const started = Date.now()
  const sentBefore = logs.records.filter((record) => record.outcome === 'sent').length
  const results = await runLimited(tasks, 10)
  const failures = results.filter((result) => result.code !== 0 || result.sha !== fixture.expected.get(result.name))
  t.same(failures, [], `50 transfers intact in ${Date.now() - started} ms`)
  await sleep(50)
  const sentAfter = logs.records.filter((record) => record.outcome === 'sent').length
  t.equal(sentAfter - sentBefore, 50, 'one "sent" log line per transfer')
})

t.test('netascii: tftp-hpa in ascii mode gets a text file back as it was; tsize is the converted size', async (t) => {
  const text = 'line one\nline two\r\nbare\rcr\nend'
  await writeFile(path.join(fixture.root, 'text.txt'), text)
  const file = downloadPath('text.txt')
  const hpa = await runCommand('tftp', ['127.0.0.1', port, '-m', 'ascii', '-c', 'get', 'text.txt', file])
  t.equal(hpa.code, 0, hpa.stderr)
  t.equal((await import('node:fs')).readFileSync(file, 'latin1'), text, 'CR LF -> LF and CR NUL -> CR undo the conversion')

  const raw = await RawTftpClient.open()
  t.teardown(() => raw.close())
  raw.send(requestPacket(1, 'text.txt', 'netascii', { tsize: '0' }), server.port)
  const oack = await raw.receive()
  const converted = Buffer.from('line one\r\nline two\r\0\r\nbare\r\0cr\r\nend', 'latin1')
  t.same(parseOptions(oack!.data), { tsize: String(converted.length) })
  raw.send(ackPacket(0), oack!.from.port)
  const data = await raw.receive()
  t.same(data!.data.subarray(4), converted, 'netascii on the wire')
  raw.send(ackPacket(1), oack!.from.port)
})

t.test('atftp, windowsize 8 at 512-byte blocks over 40 MiB: block numbers roll over inside windows', async (t) => {
  const file = downloadPath('big.bin')
  const result = await runCommand('atftp', ['--get', '-r', 'big.bin', '-l', file, '--option', 'windowsize 8', '--option', 'tsize 0', '127.0.0.1', port])
  t.equal(result.code, 0, result.stderr)
  t.equal(await sha256OfFile(file), fixture.expected.get('big.bin'), '81,920 blocks in windows of 8')
})

t.test('curl without options and with blksize 8 (the smallest block)', async (t) => {
  const plain = await curlGet('exact-1024.bin', ['--tftp-no-options'])
  t.equal(plain.code, 0)
  t.equal(await sha256OfFile(plain.file), fixture.expected.get('exact-1024.bin'))
  const tiny = await curlGet('undionly.kpxe', ['--tftp-blksize', '8'])
  t.equal(tiny.code, 0)
  t.equal(await sha256OfFile(tiny.file), fixture.expected.get('undionly.kpxe'))
})

t.test('a repeated request from the same port is a retransmission, not a second transfer', async (t) => {
  const raw = await RawTftpClient.open()
  t.teardown(() => raw.close())
  const request = requestPacket(1, 'exact-1024.bin', 'octet', { blksize: '512' })
  raw.send(request, server.port)
  raw.send(request, server.port)
  raw.send(request, server.port)
  const oack = await raw.receive()
  t.equal(oack?.data.readUInt16BE(0), 6)
  t.equal(await raw.receive(300), undefined, 'one OACK for three copies of the request')
  raw.send(errorPacket(8, 'done'), oack!.from.port)
})

t.test('retransmission: resent on the timer, never on a duplicate ACK; a client that stops is given up', async (t) => {
  const quickLogs = captureLogs()
  const quick = await startTftpServer({ host: '127.0.0.1', port: 0, ipxeDir: fixture.ipxeDir, logger: quickLogs.logger, retransmitTimeoutMs: 200, retries: 2 })
  const raw = await RawTftpClient.open()
  t.teardown(async () => {
    await raw.close()
    await quick.close()
  })
  raw.send(requestPacket(1, 'one-mib.bin'), quick.port)
  const first = await raw.receive()
  t.equal(first?.data.readUInt16BE(2), 1, 'DATA 1 (no options, no OACK)')
  const sentAt = Date.now()
  const resent = await raw.receive(1000)
  t.equal(resent?.data.readUInt16BE(2), 1, 'DATA 1 again when not acknowledged')
  t.ok(Date.now() - sentAt >= 150, `after the retransmission timeout (${Date.now() - sentAt} ms)`)
  const transferPort = first!.from.port
  raw.send(ackPacket(1), transferPort)
  t.equal((await raw.receive())?.data.readUInt16BE(2), 2, 'DATA 2')
  raw.send(ackPacket(1), transferPort)
  t.equal(await raw.receive(120), undefined, 'a duplicate ACK 1 is not answered')
  raw.send(ackPacket(2), transferPort)
  t.equal((await raw.receive())?.data.readUInt16BE(2), 3, 'DATA 3')

  const after: number[] = []
  for (;;) {
    const datagram = await raw.receive(1500)
    if (!datagram) break
    after.push(datagram.data.readUInt16BE(0) === 3 ? datagram.data.readUInt16BE(2) : -datagram.data.readUInt16BE(0))
    if (datagram.data.readUInt16BE(0) === 5) break
  }
  t.same(after, [3, 3, -5], 'two retransmissions of DATA 3, then an ERROR')
  await sleep(20)
  t.match(quickLogs.records.find((record) => record.outcome === 'failed'), { level: 40, bytes: 1024, reason: /no answer after 2 retransmissions/ })
})

t.test('the timeout option paces retransmissions; a client that never answers ends in the burst log', async (t) => {
  const quickLogs = captureLogs()
  const metrics = new EngineMetrics()
  const quick = await startTftpServer({
    host: '127.0.0.1', port: 0, ipxeDir: fixture.ipxeDir, logger: quickLogs.logger, metrics, retransmitTimeoutMs: 200, retries: 1,
    refusalLogTiming: { quietMs: 100, maxMs: 5000 },
  })
  const raw = await RawTftpClient.open()
  t.teardown(async () => {
    await raw.close()
    await quick.close()
  })
  raw.send(requestPacket(1, 'undionly.kpxe', 'octet', { timeout: '1' }), quick.port)
  const oack = await raw.receive()
  t.same(parseOptions(oack!.data), { timeout: '1' })
  const sentAt = Date.now()
  const again = await raw.receive(2500)
  t.equal(again?.data.readUInt16BE(0), 6, 'the OACK is resent')
  t.ok(Date.now() - sentAt >= 900, `after the negotiated 1 s, not the server's 200 ms (${Date.now() - sentAt} ms)`)
  const end = await raw.receive(2500)
  t.equal(end?.data.readUInt16BE(0), 5, 'then an ERROR')
  await sleep(250)
  t.equal(quickLogs.records.filter((record) => record.outcome !== undefined).length, 0, 'no per-transfer line for an unanswered transfer')
  t.match(quickLogs.records.find((record) => record.turnedAway !== undefined), { level: 40, turnedAway: 1, reasons: { unanswered: 1 }, files: ['undionly.kpxe'] })
  t.match(await metrics.registry.metrics(), /slipway_tftp_transfers_total\{outcome="unanswered"\} 1/)
})

t.test('limits: per-client cap, eviction of unanswered transfers, answered ones kept; counted and logged once', async (t) => {
  const capLogs = captureLogs()
  const metrics = new EngineMetrics()
  const capped = await startTftpServer({
    host: '127.0.0.1', port: 0, ipxeDir: fixture.ipxeDir, logger: capLogs.logger, metrics, maxTransfers: 4, maxTransfersPerClient: 2,
    refusalLogTiming: { quietMs: 150, maxMs: 5000 },
  })
  const clients: RawTftpClient[] = []
  t.teardown(async () => {
    for (const client of clients) await client.close()
    await capped.close()
  })
  const ask = async (address: string, answer: boolean): Promise<{ client: RawTftpClient; reply: Awaited<ReturnType<RawTftpClient['receive']>> }> => {
    const client = await RawTftpClient.open(address)
    clients.push(client)
    client.send(requestPacket(1, 'one-mib.bin', 'octet', { blksize: '512' }), capped.port)
    const reply = await client.receive()
    if (answer && reply?.data.readUInt16BE(0) === 6) client.send(ackPacket(0), reply.from.port)
    return { client, reply }
  }
  const isOack = (reply: { data: Buffer } | undefined): boolean => reply?.data.readUInt16BE(0) === 6
  const isBusy = (reply: { data: Buffer; from: { port: number } } | undefined): boolean =>
    reply?.data.readUInt16BE(0) === 5 && /busy/.test(reply.data.toString('latin1', 4))

  const a1 = await ask('127.0.0.1', true)
  const a2 = await ask('127.0.0.1', true)
  const a3 = await ask('127.0.0.1', true)
  t.ok(isOack(a1.reply) && isOack(a2.reply), 'two transfers for 127.0.0.1')
  t.ok(isBusy(a3.reply), 'a third from the same client is refused with an ERROR')
  t.equal(a3.reply?.from.port, capped.port, '... sent from the listening port')

  const b1 = await ask('127.0.0.21', false)
  const b2 = await ask('127.0.0.22', false)
  t.ok(isOack(b1.reply) && isOack(b2.reply), 'all four slots taken, two of them never answered')
  const c1 = await ask('127.0.0.23', true)
  t.ok(isOack(c1.reply), 'a newcomer gets a transfer...')
  const evicted = await b1.client.receive()
  t.ok(isBusy(evicted), '... and the oldest unanswered transfer is told it was evicted')
  t.equal(evicted?.from.port, b1.reply?.from.port, '... on its transfer port')
  const d1 = await ask('127.0.0.24', true)
  t.ok(isOack(d1.reply), 'the next newcomer evicts the other unanswered one')
  t.ok(isBusy(await b2.client.receive()))
  await sleep(20)
  const e1 = await ask('127.0.0.25', true)
  t.ok(isBusy(e1.reply), 'every slot answered: the newcomer is refused, no transfer in progress is sacrificed')

  const text = await metrics.registry.metrics()
  t.match(text, /slipway_tftp_refusals_total\{reason="client-busy"\} 1/)
  t.match(text, /slipway_tftp_refusals_total\{reason="server-busy"\} 1/)
  t.match(text, /slipway_tftp_transfers_total\{outcome="evicted"\} 2/)
  t.match(text, /slipway_tftp_active_transfers 4/)

  for (const { client, reply } of [a1, a2, c1, d1]) client.send(errorPacket(8, 'done'), reply!.from.port)
  await sleep(300)
  t.match(await metrics.registry.metrics(), /slipway_tftp_active_transfers 0/)
  const bursts = capLogs.records.filter((record) => record.turnedAway !== undefined)
  t.equal(bursts.length, 1, 'one log line for the burst')
  t.match(bursts[0], { level: 40, turnedAway: 4, reasons: { 'client-busy': 1, evicted: 2, 'server-busy': 1 } })
})

t.test('IPv6: a server on ::1 serves curl and tftp-hpa', async (t) => {
  const v6 = await startTftpServer({ host: '::1', port: 0, ipxeDir: fixture.ipxeDir, logger: captureLogs().logger })
  t.teardown(() => v6.close())
  const curlFile = downloadPath('undionly.kpxe')
  const curl = await runCommand('curl', ['-sS', '--tftp-blksize', '1468', '-o', curlFile, `tftp://[::1]:${v6.port}/undionly.kpxe`])
  t.equal(curl.code, 0, curl.stderr)
  t.equal(await sha256OfFile(curlFile), fixture.expected.get('undionly.kpxe'))
  const hpaFile = downloadPath('ipxe.efi')
  const hpa = await runCommand('tftp', ['-6', '::1', String(v6.port), '-m', 'binary', '-c', 'get', 'ipxe.efi', hpaFile])
  t.equal(hpa.code, 0, hpa.stderr)
  t.equal(await sha256OfFile(hpaFile), fixture.expected.get('ipxe.efi'))
})

t.test('every log line of a request carries client, file, outcome, bytes and ms; nothing at error level', async (t) => {
  const transferLogs = logs.records.filter((record) => typeof record.outcome === 'string')
  t.ok(transferLogs.length > 100)
  t.ok(transferLogs.every((record) => ['client', 'file', 'bytes', 'ms'].every((field) => field in record)))
  t.notOk(logs.records.some((record) => Number(record.level) >= 50), 'nothing logged at error level')
})
