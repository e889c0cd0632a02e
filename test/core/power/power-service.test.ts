/**
 * The power service's own rules, with in-memory BMCs: transient failures are tried again with a
 * doubling backoff and the others are not; an attempt that overruns its limit is aborted; calls to
 * one BMC wait for each other while different BMCs run side by side under the global cap; a poll
 * tries once and is audited only when its outcome changes.
 */
import t from 'tap'
import type { DiscoveredBmc } from '../../../src/core/machines/discovery-document.ts'
import type { BmcSettings, BmcTarget, BmcView, PowerState } from '../../../src/core/power/bmc.ts'
import { BmcError, type BmcClient } from '../../../src/core/power/bmc-client.ts'
import { PowerService, type BmcCall, type PowerObservation, type PowerServiceOptions, type PowerStore } from '../../../src/core/power/power-service.ts'

class MemoryPowerStore implements PowerStore {
  readonly records = new Map<string, { settings: BmcSettings; password: string; power: PowerState; error: BmcView['lastError'] }>()
  async find(uuid: string): Promise<BmcView | undefined> {
    const record = this.records.get(uuid)
    return record && { machineUuid: uuid, ...record.settings, power: record.power, powerCheckedAt: null, lastError: record.error, updatedAt: '' }
  }
  async list(): Promise<BmcView[]> {
    return Promise.all([...this.records.keys()].map(async (uuid) => (await this.find(uuid))!))
  }
  async targetOf(uuid: string): Promise<BmcTarget | undefined> {
    const record = this.records.get(uuid)
    return record && { ...record.settings, password: record.password }
  }
  async save(uuid: string, settings: BmcSettings, password: string | undefined): Promise<void> {
    const before = this.records.get(uuid)
    this.records.set(uuid, { settings, password: password ?? before!.password, power: before?.power ?? 'unknown', error: null })
  }
  async remove(uuid: string): Promise<boolean> {
    return this.records.delete(uuid)
  }
  async recordObservation(uuid: string, observation: PowerObservation): Promise<void> {
    const record = this.records.get(uuid)!
    if (observation.power) record.power = observation.power
    record.error = observation.error && { ...observation.error, at: observation.checkedAt }
  }
}

/** A BMC whose answers a test scripts: each call takes `ms` and then does what `next` says. */
class ScriptedBmc implements BmcClient {
  readonly log: { host: string; what: string; start: number; end: number }[] = []
  failures: BmcError[] = []
  ms = 20
  state: 'on' | 'off' = 'off'
  constructor(private readonly clock: () => number) {}
  private async act(target: BmcTarget, what: string, signal: AbortSignal): Promise<void> {
    const start = this.clock()
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, this.ms)
      signal.addEventListener('abort', () => {
        clearTimeout(timer)
        reject(new BmcError('BMC_TIMEOUT', 'aborted'))
      })
    })
    this.log.push({ host: target.host, what, start, end: this.clock() })
    const failure = this.failures.shift()
    if (failure) throw failure
  }
  async powerState(target: BmcTarget, signal: AbortSignal): Promise<'on' | 'off'> {
    await this.act(target, 'status', signal)
    return this.state
  }
  async power(target: BmcTarget, action: string, signal: AbortSignal): Promise<void> {
    await this.act(target, action, signal)
    this.state = action === 'off' || action === 'soft-off' ? 'off' : 'on'
  }
  async setBootDevice(target: BmcTarget, device: string, _persistent: boolean, signal: AbortSignal): Promise<void> {
    await this.act(target, `boot ${device}`, signal)
  }
}

/** A machine UUID from a short name, for readable tests. */
const u = (name: string): string => `00000000-0000-4000-8000-${Buffer.from(name).toString('hex').padStart(12, '0')}`

function setUp(options: Partial<PowerServiceOptions> = {}) {
  const store = new MemoryPowerStore()
  const bmc = new ScriptedBmc(() => performance.now())
  const audit: BmcCall[] = []
  const waits: number[] = []
  // What machines' discovery agents read of their BMCs, by machine; and which machines were asked about.
  const discovered = new Map<string, DiscoveredBmc>()
  const discoveryAsked: string[] = []
  const service = new PowerService(
    store,
    { ipmi: bmc, redfish: bmc },
    { record: async (call) => void audit.push(call) },
    { attempts: 3, backoffMs: 100, attemptTimeoutMs: 1_000, maxConcurrent: 4, maxQueuedPerBmc: 8, ...options },
    undefined,
    () => new Date(),
    async (ms) => void waits.push(ms),
    {
      discoveredBmc: async (uuid) => {
        discoveryAsked.push(uuid)
        return discovered.get(uuid)
      },
    },
  )
  const add = (name: string, host: string) => service.configure(u(name), { protocol: 'ipmi', host, username: 'admin', password: 'pw' })
  return { store, bmc, audit, waits, service, add, discovered, discoveryAsked }
}

t.test('a BMC set without a host is reached at the address its machine reported in discovery, or refused', async (t) => {
  const { store, service, discovered, discoveryAsked } = setUp()
  discovered.set(u('v4'), { mac: '00:17:a4:49:ab:70', ipv4: '192.168.1.41', ipv6: '2001:db8::41', channel: 2, source: 'ipmitool lan print' })
  discovered.set(u('v6'), { mac: '00:17:a4:49:ab:71', ipv6: '2001:db8::42', source: 'ipmitool lan print' })
  discovered.set(u('mac'), { mac: '00:17:a4:49:ab:72', source: 'ipmitool lan print' })
  const credentials = { protocol: 'ipmi', username: 'admin', password: 'pw' }
  t.match(await service.configure(u('v4'), credentials), { host: '192.168.1.41', port: 623 }, 'the IPv4 address first: the one ipmitool -I lanplus reaches most often')
  t.match(await service.configure(u('v6'), { ...credentials, protocol: 'redfish' }), { host: '2001:db8::42', port: 443 }, 'the IPv6 address where there is no IPv4 one')
  for (const name of ['mac', 'none']) {
    await t.rejects(service.configure(u(name), credentials), { kind: 'invalid', code: 'BMC_HOST_NOT_DISCOVERED', message: /^host: is needed: no discovery report of this machine gave its BMC's address/, details: { field: 'host' } }, `${name}: the host is needed`)
    t.notOk(store.records.has(u(name)), `${name}: nothing stored`)
  }
  discoveryAsked.length = 0
  t.match(await service.configure(u('v4'), { ...credentials, host: 'bmc-7.rack-2.example' }), { host: 'bmc-7.rack-2.example' }, 'a host given wins')
  t.same(discoveryAsked, [], 'and discovery is not asked')
  await t.rejects(service.configure(u('v4'), { ...credentials, host: 'http://10.0.0.1' }), { code: 'BMC_INVALID' }, 'a bad host given is refused, not replaced')
})

t.test('transient failures are tried again with a doubling backoff; the others are not', async (t) => {
  const { bmc, audit, waits, service, add } = setUp()
  await add('m1', '10.0.0.1')
  bmc.failures = [new BmcError('BMC_UNREACHABLE', 'no answer'), new BmcError('BMC_TIMEOUT', 'slow')]
  t.match(await service.power(u('m1'), 'on', 'api:test'), { power: 'on', attempts: 3 })
  t.same(waits, [100, 200], 'waited 100 ms, then 200 ms')
  bmc.failures = [new BmcError('BMC_UNREACHABLE', 'no answer'), new BmcError('BMC_UNREACHABLE', 'no answer'), new BmcError('BMC_UNREACHABLE', 'no answer')]
  await t.rejects(service.power(u('m1'), 'off', 'api:test'), { kind: 'upstream', code: 'BMC_UNREACHABLE', details: { attempts: 3 } })
  bmc.failures = [new BmcError('BMC_AUTH_FAILED', 'wrong password')]
  await t.rejects(service.power(u('m1'), 'off', 'api:test'), { kind: 'upstream', code: 'BMC_AUTH_FAILED', details: { attempts: 1 } })
  bmc.failures = [new BmcError('BMC_CLIENT_MISSING', 'no ipmitool')]
  await t.rejects(service.status(u('m1'), 'api:test'), { kind: 'configuration', code: 'BMC_CLIENT_MISSING' }, "the engine's host lacks the client: a 500, not the BMC's fault")
  t.same(audit.map((call) => [call.operation, call.outcome, call.attempts]), [
    ['power on', 'ok', 3],
    ['power off', 'BMC_UNREACHABLE', 3],
    ['power off', 'BMC_AUTH_FAILED', 1],
    ['power status', 'BMC_CLIENT_MISSING', 1],
  ])
})

t.test('an attempt that overruns its limit is aborted and counts as a timeout', async (t) => {
  const { bmc, service, add } = setUp({ attemptTimeoutMs: 50, attempts: 2 })
  await add('m1', '10.0.0.1')
  bmc.ms = 500
  const started = performance.now()
  await t.rejects(service.status(u('m1'), 'api:test'), { kind: 'upstream_timeout', code: 'BMC_TIMEOUT', details: { attempts: 2 } })
  t.ok(performance.now() - started < 400, 'both attempts ended at their limit, not at the BMC\'s pace')
})

t.test('one BMC takes one call at a time; different BMCs run side by side, under the global cap', async (t) => {
  const { bmc, service, add } = setUp({ maxConcurrent: 2 })
  for (const [uuid, host] of [['a1', '10.0.0.1'], ['a2', '10.0.0.1'], ['b', '10.0.0.2'], ['c', '10.0.0.3'], ['d', '10.0.0.4']] as const) await add(uuid, host)
  bmc.ms = 30
  await Promise.all(['a1', 'a2', 'a1', 'b', 'c', 'd'].map((name) => service.power(u(name), 'on', 'api:test')))
  const overlap = (x: { start: number; end: number }, y: { start: number; end: number }) => x.start < y.end && y.start < x.end
  const sameBmc = bmc.log.filter((entry) => entry.host === '10.0.0.1')
  t.notOk(sameBmc.some((x, i) => sameBmc.some((y, j) => i !== j && overlap(x, y))), 'the calls to 10.0.0.1 never overlapped')
  // The most calls in flight at one instant: at each call's start, those begun and not yet ended.
  const atMost = Math.max(...bmc.log.map((x) => bmc.log.filter((y) => y.start <= x.start && x.start < y.end).length))
  t.equal(atMost, 2, 'never more than the global cap at once, and the cap was used')
})

t.test('a BMC with its queue full refuses more with 429 BMC_BUSY, changing nothing; other BMCs and the queue itself go on', async (t) => {
  const { bmc, audit, service, add } = setUp({ maxQueuedPerBmc: 3 })
  for (const [name, host] of [['a', '10.0.0.1'], ['b', '10.0.0.2']] as const) await add(name, host)
  bmc.ms = 40
  // One runs and three wait: the fifth and sixth are refused at once, before any call to the BMC.
  const flood = Array.from({ length: 6 }, () => service.status(u('a'), 'api:flood').then(() => 'ok', (error: { code: string; kind: string; details?: { retryAfterSeconds?: number } }) => `${error.kind} ${error.code} ${error.details?.retryAfterSeconds}`))
  t.match(await service.status(u('b'), 'api:operator'), { power: 'off' }, 'another BMC is not held up')
  t.same(await Promise.all(flood), ['ok', 'ok', 'ok', 'ok', 'rate_limited BMC_BUSY 5', 'rate_limited BMC_BUSY 5'])
  t.equal(bmc.log.filter((entry) => entry.host === '10.0.0.1').length, 4, 'the refused ones never reached the BMC')
  t.same(audit.map((call) => `${call.machineUuid === u('a') ? 'a' : 'b'} ${call.outcome}`).sort(), ['a ok', 'a ok', 'a ok', 'a ok', 'b ok'], 'the audit log holds the calls made, not the refusals')
  t.match(await service.power(u('a'), 'on', 'api:operator'), { power: 'on' }, 'once drained, the BMC takes calls again')
})

t.test('a poll tries once per BMC and is audited only when its outcome changes', async (t) => {
  const { bmc, audit, service, add } = setUp()
  await add('m1', '10.0.0.1')
  await service.pollAll()
  await service.pollAll()
  t.same(audit, [], 'a BMC that answers is not audited at each poll')
  bmc.failures = [new BmcError('BMC_UNREACHABLE', 'gone')]
  t.same(await service.pollAll(), { checked: 1, failed: 1 }, 'one try: the next poll is the retry')
  bmc.failures = [new BmcError('BMC_UNREACHABLE', 'gone')]
  await service.pollAll()
  await service.pollAll()
  t.same(audit.map((call) => [call.requestedBy, call.outcome]), [['engine:poll', 'BMC_UNREACHABLE'], ['engine:poll', 'ok']], 'going away and coming back, once each')
})
