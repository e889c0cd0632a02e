// Unit tests of the socket-free parts of the TFTP server: packet codec, option negotiation, the transfer
// state machine, the admission of requests into transfer slots, the refusal burst log, the file cache.
import { utimes, writeFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { TransferSlots } from '../../../src/transports/tftp/tftp-admission.ts'
import { FileContentCache } from '../../../src/transports/tftp/tftp-content.ts'
import { negotiateOptions, oackOptions } from '../../../src/transports/tftp/tftp-options.ts'
import { encodeError, encodeOack, parseAck, parseError, parseRequest, toNetascii } from '../../../src/transports/tftp/tftp-packets.ts'
import { RefusalBursts } from '../../../src/transports/tftp/tftp-refusals.ts'
import { ReadTransfer, type BlockContent } from '../../../src/transports/tftp/tftp-transfer.ts'
import { captureLogs, createTftpFixture, requestPacket } from './tftp-test-kit.ts'
import { sleep } from '../../helpers/wait.ts'

const limits = { maxBlockSize: 1468, maxWindowSize: 16 }

t.test('parseRequest: filename, mode, options', async (t) => {
  t.match(parseRequest(requestPacket(1, 'a/b.efi', 'OCTET', { BlkSize: '1024', tsize: '0', blksize: '9' })), {
    ok: true,
    opcode: 1,
    filename: 'a/b.efi',
    mode: 'octet',
  })
  const parsed = parseRequest(requestPacket(1, 'x', 'octet', { BlkSize: '1024', blksize: '9' }))
  t.same(parsed.ok && [...parsed.options], [['blksize', '1024']], 'names lower-cased, first occurrence wins')
  t.match(parseRequest(Buffer.from('\0\x01name\0')), { ok: false, reason: /mode/ })
  t.match(parseRequest(Buffer.from('\0\x01\0octet\0')), { ok: false, reason: /empty/ })
  t.match(parseRequest(Buffer.from('\0\x01name\0octet\0blksize\x00512\0\0\0garbage')), { ok: true }, 'NUL padding ends the options')
  const unterminated = parseRequest(Buffer.from('\0\x01name\0octet\0blksize\x00512'))
  t.same(unterminated.ok && [...unterminated.options], [], 'an unterminated option is ignored')
})

t.test('ACK, ERROR and OACK packets', async (t) => {
  t.equal(parseAck(Buffer.from([0, 4, 1, 2])), 258)
  t.equal(parseAck(Buffer.from([0, 4, 1])), undefined, 'short ACK')
  t.equal(parseAck(Buffer.from([0, 3, 0, 1])), undefined, 'DATA is not an ACK')
  t.same(parseError(encodeError(8, 'User aborted')), { code: 8, message: 'User aborted' })
  t.same(parseError(Buffer.from([0, 5, 0, 1, 0x41, 0x07])), { code: 1, message: 'A?' }, 'unterminated text with control characters')
  t.equal(encodeError(99, 'x').readUInt16BE(2), 0, 'unknown codes become 0')
  t.same(encodeOack([['blksize', '1468'], ['tsize', '10']]), Buffer.from('\0\x06blksize\x001468\0tsize\x0010\0', 'latin1'))
})

t.test('netascii: LF -> CR LF, CR -> CR NUL', async (t) => {
  t.same(toNetascii(Buffer.from('a\nb\r\nc\rd')), Buffer.from('a\r\nb\r\0\r\nc\r\0d', 'latin1'))
  const plain = Buffer.from('no line ends')
  t.equal(toNetascii(plain), plain, 'nothing to convert: same buffer')
})

t.test('negotiateOptions', async (t) => {
  const negotiate = (options: Record<string, string>) => negotiateOptions(new Map(Object.entries(options)), limits)
  t.match(negotiate({}), { blockSize: 512, windowSize: 1, timeoutMs: undefined, wantsSize: false, acknowledged: [] })
  t.match(negotiate({ blksize: '9000', windowsize: '64', timeout: '3', tsize: '0' }), {
    blockSize: 1468,
    windowSize: 16,
    timeoutMs: 3000,
    wantsSize: true,
    acknowledged: [['blksize', '1468'], ['timeout', '3'], ['windowsize', '16']],
  })
  for (const [name, value] of [['blksize', '7'], ['blksize', '1.5'], ['blksize', '-1'], ['blksize', ''], ['windowsize', '0'], ['timeout', '0'], ['timeout', '256'], ['tsize', 'abc']]) {
    t.same(oackOptions(negotiate({ [name!]: value! }), 100), [], `${name} ${JSON.stringify(value)} is left out`)
  }
  t.same(oackOptions(negotiate({ tsize: '0' }), 1234), [['tsize', '1234']])
  t.same(oackOptions(negotiate({ tsize: '0' }), undefined), [], 'tsize is left out when the size is unknown')
  t.match(negotiate({ blksize: '9'.repeat(40) }), { blockSize: 1468 }, 'a huge value is lowered to the limit')
})

/** Content of `size` bytes where byte i is i % 251, loaded synchronously. */
function memoryContent(size: number): BlockContent & { released: number } {
  const bytes = Buffer.alloc(size)
  for (let index = 0; index < size; index++) bytes[index] = index % 251
  return {
    released: 0,
    load: () => undefined,
    slice: (start, end) => bytes.subarray(start, end),
    release(offset) {
      this.released = offset
    },
  }
}

const blockNumbers = (packets: Buffer[][]): number[] => packets.map(([header]) => header!.readUInt16BE(2))

t.test('ReadTransfer: lock-step, duplicates and old ACKs ignored', async (t) => {
  const transfer = new ReadTransfer(memoryContent(1300), 512, 1, false)
  t.same(blockNumbers(transfer.windowPackets()), [1])
  t.equal(transfer.onAck(0), 'ignored', 'ACK 0 without an OACK means nothing')
  t.equal(transfer.onAck(2), 'ignored', 'ACK of a block not sent yet')
  t.equal(transfer.onAck(1), 'next-window')
  t.equal(transfer.onAck(1), 'ignored', 'duplicate ACK: no resend (sorcerer\'s apprentice)')
  t.same(blockNumbers(transfer.windowPackets()), [2])
  t.equal(transfer.onAck(2), 'next-window')
  const last = transfer.windowPackets()
  t.equal(last[0]![1]!.length, 1300 - 1024, 'last block is short')
  t.equal(transfer.onAck(3), 'complete')
  t.equal(transfer.bytesAcknowledged, 1300)
  t.equal(transfer.onAck(3), 'ignored', 'ACKs after the end are ignored')
})

t.test('ReadTransfer: OACK first, then windows; a size multiple of the block ends with an empty block', async (t) => {
  const transfer = new ReadTransfer(memoryContent(4 * 512), 512, 4, true)
  t.equal(transfer.awaitingOackAck, true)
  t.equal(transfer.onAck(1), 'ignored', 'only ACK 0 answers the OACK')
  t.equal(transfer.onAck(0), 'next-window')
  t.same(blockNumbers(transfer.windowPackets()), [1, 2, 3, 4])
  t.equal(transfer.onAck(4), 'next-window')
  const final = transfer.windowPackets()
  t.same(blockNumbers(final), [5])
  t.equal(final[0]![1]!.length, 0, 'empty final block')
  t.equal(transfer.onAck(5), 'complete')
  t.equal(transfer.bytesAcknowledged, 2048)
})

t.test('ReadTransfer: an ACK inside the window restarts it after that block (RFC 7440)', async (t) => {
  const content = memoryContent(100 * 512)
  const transfer = new ReadTransfer(content, 512, 8, false)
  t.same(blockNumbers(transfer.windowPackets()), [1, 2, 3, 4, 5, 6, 7, 8])
  t.equal(transfer.onAck(3), 'next-window', 'the client got up to block 3')
  t.same(blockNumbers(transfer.windowPackets()), [4, 5, 6, 7, 8, 9, 10, 11])
  t.equal(transfer.onAck(3), 'ignored', 'the same partial ACK again changes nothing')
  t.equal(transfer.onAck(12), 'ignored', 'an ACK past what was sent is ignored')
  t.equal(content.released, 3 * 512, 'acknowledged bytes are released')
})

t.test('ReadTransfer: block numbers roll over to 0 after 65535', async (t) => {
  const blocks = 70_000
  const transfer = new ReadTransfer(memoryContent(blocks * 8 + 3), 8, 16, false)
  const seen: number[] = []
  let payloadBytes = 0
  const effects = new Set<string>()
  for (;;) {
    const packets = transfer.windowPackets()
    for (const [header, payload] of packets) {
      seen.push(header!.readUInt16BE(2))
      payloadBytes += payload!.length
    }
    const effect = transfer.onAck(seen.at(-1)!)
    if (effect === 'complete') break
    effects.add(effect)
  }
  t.same([...effects], ['next-window'], 'every window but the last moves on')
  t.equal(payloadBytes, blocks * 8 + 3)
  t.equal(seen.length, blocks + 1)
  t.same(seen.slice(65534, 65538), [65535, 0, 1, 2], 'wraps to 0')
  t.equal(transfer.bytesAcknowledged, blocks * 8 + 3)
})

t.test('ReadTransfer: an old ACK from before a rollover does not move the window', async (t) => {
  const transfer = new ReadTransfer(memoryContent(70_000 * 8), 8, 1, false)
  for (let block = 1; block <= 65_540; block++) {
    transfer.windowPackets()
    transfer.onAck(block & 0xffff)
  }
  transfer.windowPackets()
  t.equal(transfer.onAck(65_530 & 0xffff), 'ignored', 'ACK 65530 (one lap ago) is stale')
  t.equal(transfer.onAck(65_541 & 0xffff), 'next-window')
})

t.test('TransferSlots: per-client cap, eviction of the oldest unanswered (the client\'s own at its cap), answered ones kept', async (t) => {
  const slots = new TransferSlots<{ clientAddress: string; answered: boolean; name: string }>({ maxTransfers: 3, maxTransfersPerClient: 2 })
  const a1 = { clientAddress: 'a', answered: false, name: 'a1' }
  const a2 = { clientAddress: 'a', answered: true, name: 'a2' }
  const b1 = { clientAddress: 'b', answered: false, name: 'b1' }
  for (const holder of [a1, a2]) {
    t.match(slots.decide(holder.clientAddress), { admitted: true, evict: undefined })
    slots.add(holder)
  }
  t.match(slots.decide('a'), { admitted: true, evict: a1 }, "at its cap, a client's own oldest unanswered transfer makes room")
  a1.answered = true
  t.same(slots.decide('a'), { admitted: false, reason: 'client-busy' }, 'and when all of its transfers answered, it is refused')
  a1.answered = false
  t.match(slots.decide('b'), { admitted: true, evict: undefined })
  slots.add(b1)
  t.match(slots.decide('c'), { admitted: true, evict: a1 }, 'full: the oldest unanswered goes')
  slots.remove(a1)
  t.equal(slots.oldestUnanswered(), b1)
  t.equal(slots.oldestUnanswered(b1), undefined, 'the requester itself is never its own victim')
  b1.answered = true
  slots.add({ clientAddress: 'c', answered: true, name: 'c1' })
  t.same(slots.decide('d'), { admitted: false, reason: 'server-busy' }, 'every slot answered: the newcomer is refused')
  slots.remove(a2)
  t.match(slots.decide('a'), { admitted: true }, 'a slot freed by a client counts again for it')
})

t.test('RefusalBursts: one line per burst, a long burst reported as it goes', async (t) => {
  const logs = captureLogs()
  const bursts = new RefusalBursts(logs.logger, { quietMs: 60, maxMs: 300 })
  for (let index = 0; index < 1000; index++) bursts.record(index % 2 === 0 ? 'server-busy' : 'malformed', `10.0.0.${index % 9}:1000`, index % 3 === 0 ? 'x.efi' : undefined)
  t.equal(logs.records.length, 0, 'nothing logged during the burst')
  await sleep(150)
  t.equal(logs.records.length, 1, 'one line once the burst is over')
  t.match(logs.records[0], { level: 40, turnedAway: 1000, reasons: { 'server-busy': 500, malformed: 500 }, files: ['x.efi'] })
  t.equal((logs.records[0]!.clients as string[]).length, 5, 'a sample of clients, not all of them')

  const started = Date.now()
  while (Date.now() - started < 700) {
    bursts.record('evicted', '10.0.0.1:1')
    await sleep(20)
  }
  const during = logs.records.length - 1
  t.ok(during >= 2 && during <= 3, `a 700 ms burst with maxMs 300 is reported as it goes (${during} lines)`)
  bursts.flush()
})

t.test('FileContentCache: one read for many, a replaced file read again, big files streamed', async (t) => {
  const fixture = await createTftpFixture({ bigFileMiB: 1 })
  t.teardown(() => fixture.cleanup())
  const cache = new FileContentCache({ maxFileBytes: 256 * 1024, maxTotalBytes: 512 * 1024 })
  const file = path.join(fixture.root, 'changing.txt')
  await writeFile(file, 'first\n')
  const read = async (name: string, mode: 'octet' | 'netascii' = 'octet'): Promise<Buffer> => {
    const content = await cache.open(name, mode)
    const loading = content.load(0, 64 * 1024 * 1024)
    if (loading) await loading
    const bytes = Buffer.from(content.slice(0, 64 * 1024 * 1024))
    content.close()
    return bytes
  }
  t.equal(String(await read(file)), 'first\n')
  t.equal(String(await read(file, 'netascii')), 'first\r\n')
  await writeFile(file, 'second\n')
  await utimes(file, new Date(), new Date(Date.now() + 5000))
  t.equal(String(await read(file)), 'second\n', 'a replaced file is read again')

  const big = path.join(fixture.ipxeDir, 'one-mib.bin')
  const streamed = await cache.open(big, 'octet')
  t.equal(streamed.size, 1024 * 1024)
  t.ok(streamed.load(0, 512) instanceof Promise, 'a file over maxFileBytes is streamed (first load waits)')
  t.equal(cache.cachedBytes <= 512 * 1024, true)
  streamed.close()
  const all = await read(big)
  t.same(all, await (await import('node:fs/promises')).readFile(big), 'streamed bytes are the file')

  await t.rejects(cache.open(path.join(fixture.root, 'missing'), 'octet'), { code: 'ENOENT' })
  await t.rejects(cache.open(fixture.root, 'octet'), { code: 'ENOTREG' })
})
