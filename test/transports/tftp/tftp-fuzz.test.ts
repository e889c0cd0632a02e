// Throws >= 50,000 random and mutated datagrams at the TFTP server (listening port and live transfer
// ports), then checks that a real client still downloads correctly. The server runs in this process:
// any uncaught exception it raised would fail this file.
import { randomBytes, randomInt } from 'node:crypto'
import path from 'node:path'
import t from 'tap'
import { startTftpServer } from '../../../src/transports/tftp/tftp-server.ts'
import {
  RawTftpClient,
  ackPacket,
  captureLogs,
  createTftpFixture,
  errorPacket,
  requestPacket,
  runCommand,
  sha256OfFile,
} from './tftp-test-kit.ts'
import { sleep } from '../../helpers/wait.ts'

const DATAGRAMS = Number(process.env.TFTP_FUZZ_DATAGRAMS ?? 50_000)
const SOCKETS = 4
const TIME_BUDGET_MS = 45_000

const fixture = await createTftpFixture({ bigFileMiB: 1 })
const logs = captureLogs('warn')
const server = await startTftpServer({ host: '127.0.0.1', port: 0, ipxeDir: fixture.ipxeDir, root: fixture.root, logger: logs.logger })
t.teardown(async () => {
  await server.close()
  await fixture.cleanup()
})

const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)]!
const names = ['undionly.kpxe', 'exact-1024.bin', 'missing', '../x', '/etc/passwd', 'escape-link.txt', 'a'.repeat(600), '']
const optionNames = ['blksize', 'tsize', 'windowsize', 'timeout', 'rollover', 'BLKSIZE', 'x'.repeat(300), '']
const optionValues = ['0', '1', '7', '8', '512', '1468', '65464', '65465', '70000', '-1', '1.5', 'abc', '9'.repeat(400), '']

function validPacket(): Buffer {
  switch (randomInt(6)) {
    case 0:
    case 1: {
      const options: Record<string, string> = {}
      for (let index = randomInt(4); index > 0; index--) options[pick(optionNames)] = pick(optionValues)
      return requestPacket(randomInt(4) === 0 ? 2 : 1, pick(names), pick(['octet', 'netascii', 'mail', 'OCTET', 'bogus', '']), options)
    }
    case 2:
      return ackPacket(randomInt(65536))
    case 3:
      return errorPacket(randomInt(65536), pick(['', 'User aborted', 'x'.repeat(randomInt(700))]))
    case 4:
      return Buffer.concat([Buffer.from([0, 6]), Buffer.from(`blksize\0${pick(optionValues)}\0tsize\0${pick(optionValues)}\0`)])
    default:
      return Buffer.concat([Buffer.from([0, 3, randomInt(256), randomInt(256)]), randomBytes(randomInt(1500))])
  }
}

function mutate(packet: Buffer): Buffer {
  const copy = Buffer.from(packet)
  switch (randomInt(7)) {
    case 0:
      return copy.subarray(0, randomInt(copy.length + 1)) // truncated (down to 0 bytes)
    case 1:
      if (copy.length >= 2) copy.writeUInt16BE(randomInt(65536), 0) // any opcode, huge ones included
      return copy
    case 2:
      for (let index = 0; index < copy.length; index++) if (copy[index] === 0) copy[index] = 0x41 // missing NULs
      return copy
    case 3:
      for (let flips = randomInt(1, 8); flips > 0 && copy.length > 0; flips--) copy[randomInt(copy.length)] = randomInt(256)
      return copy
    case 4:
      return Buffer.concat([copy, randomBytes(randomInt(1200))])
    case 5:
      return randomBytes(randomInt(0, 700)) // pure noise
    default:
      return copy
  }
}

t.test(`${DATAGRAMS} random and mutated datagrams do not crash the server`, async (t) => {
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => RawTftpClient.open()))
  const transferPorts = new Set<number>()
  // Answers open transfers; fuzz them too, then abort them politely so they do not hold transfer slots until their retransmissions run out.
  for (const raw of sockets) {
    raw.socket.on('message', (data, from) => {
      if (from.port === server.port) return
      transferPorts.add(from.port)
      if (transferPorts.size > 64) transferPorts.delete(transferPorts.values().next().value!)
      if (data.length >= 2 && (data.readUInt16BE(0) === 3 || data.readUInt16BE(0) === 6) && randomInt(4) === 0) {
        raw.socket.send(errorPacket(8, 'fuzzer done'), from.port, '127.0.0.1')
      }
    })
  }
  const started = Date.now()
  let sent = 0
  for (; sent < DATAGRAMS && Date.now() - started < TIME_BUDGET_MS; sent++) {
    const raw = sockets[sent % SOCKETS]!
    const packet = randomInt(5) === 0 ? validPacket() : mutate(validPacket())
    const targets = [...transferPorts]
    const port = targets.length > 0 && randomInt(3) === 0 ? pick(targets) : server.port
    raw.socket.send(packet, port, '127.0.0.1')
    // Pace the sender so the server reads (rather than the kernel drops) most datagrams.
    if (sent % 50 === 49) await sleep(1)
  }
  for (const raw of sockets) await raw.close()
  t.ok(sent >= Math.min(DATAGRAMS, 50_000) || Date.now() - started >= TIME_BUDGET_MS, `sent ${sent} datagrams in ${Date.now() - started} ms`)
  t.ok(sent >= 50_000 || DATAGRAMS < 50_000, 'at least 50,000 datagrams')
  t.ok(transferPorts.size > 0, 'some datagrams reached live transfer ports')
  t.notOk(logs.records.some((record) => Number(record.level) >= 50), 'nothing logged at error level')
})

t.test('a real client still downloads correctly afterwards', async (t) => {
  for (const [name, args] of [['undionly.kpxe', []], ['one-mib.bin', ['--tftp-blksize', '1468']]] as const) {
    const file = path.join(fixture.downloads, `after-fuzz-${name}`)
    const result = await runCommand('curl', ['-s', ...args, '-o', file, `tftp://127.0.0.1:${server.port}/${name}`])
    t.equal(result.code, 0, `curl ${name} exits 0`)
    t.equal(await sha256OfFile(file), fixture.expected.get(name), `curl ${name} sha256`)
  }
  t.ok(process.uptime() > 0, 'process alive')
})
