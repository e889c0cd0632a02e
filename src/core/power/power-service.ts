import { ConcurrencyLimiter } from '../../lib/concurrency-limiter.ts'
import { invalid, misconfigured, notFound, rateLimited, upstreamFailed } from '../errors.ts'
import type { DiscoveredBmc } from '../machines/discovery-document.ts'
import { bmcAddress, parseBmcSettings, type BmcInput, type BmcProtocol, type BmcSettings, type BmcTarget, type BmcView, type BootDevice, type PowerAction, type PowerState } from './bmc.ts'
import { BmcError, type BmcClient, type BmcFailureCode } from './bmc-client.ts'

const MACHINE_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Where BMC records live; storage implements it and seals the password. */
export interface PowerStore {
  find(uuid: string): Promise<BmcView | undefined>
  list(): Promise<BmcView[]>
  /** The settings with the password opened, for a client call only. */
  targetOf(uuid: string): Promise<BmcTarget | undefined>
  /** Inserts or replaces the settings; an undefined password keeps the stored one. */
  save(uuid: string, settings: BmcSettings, password: string | undefined, at: string): Promise<void>
  remove(uuid: string): Promise<boolean>
  recordObservation(uuid: string, observation: PowerObservation): Promise<void>
}

export interface PowerObservation {
  /** Unchanged when the call failed: the last state read stays what the BMC last said. */
  power: PowerState | undefined
  checkedAt: string
  error: { code: string; message: string } | null
}

/** One BMC operation as the audit log keeps it: who asked, what, and how it ended. */
export interface BmcCall {
  machineUuid: string
  protocol: BmcProtocol
  bmc: string
  operation: string
  /** `api:<token name>` or `engine:<flow>`. */
  requestedBy: string
  outcome: 'ok' | BmcFailureCode
  message: string | null
  attempts: number
  ms: number
  at: string
}

export interface PowerAudit {
  record(call: BmcCall): Promise<void>
}

/** What machines' discovery agents read of their BMCs (their facts); the machines' store implements it. */
export interface DiscoveredBmcs {
  /** The BMC named by the machine's last discovery report, if it named one. */
  discoveredBmc(uuid: string): Promise<DiscoveredBmc | undefined>
}

/** Counts of calls and the power states seen, for /metrics. */
export interface PowerObserver {
  callFinished(protocol: BmcProtocol, operation: string, outcome: string, seconds: number): void
}

export interface PowerServiceOptions {
  /** One attempt's limit; a BMC that has not answered by then is timed out. */
  attemptTimeoutMs: number
  /** Attempts of an operation that fails transiently (unreachable, timeout). */
  attempts: number
  /** Wait before the second attempt; doubled before each one after. */
  backoffMs: number
  /** BMC calls in flight at once, all BMCs together. */
  maxConcurrent: number
  /**
   * Operations one BMC may have waiting (besides the one it runs): past it, a new one is refused with
   * 429 BMC_BUSY, so that a flood of requests cannot queue hours of calls in front of an operator's.
   */
  maxQueuedPerBmc: number
}

export const DEFAULT_POWER_OPTIONS: PowerServiceOptions = { attemptTimeoutMs: 10_000, attempts: 3, backoffMs: 1_000, maxConcurrent: 16, maxQueuedPerBmc: 8 }

/** What a caller refused with BMC_BUSY is told to wait before asking again. */
const BUSY_RETRY_SECONDS = 5

export interface PowerResult {
  power: PowerState
  attempts: number
  ms: number
}

/**
 * Power and boot-device control through each machine's BMC. Every operation runs one at a time per
 * BMC (BMCs mishandle concurrent sessions), under a global cap, with a time limit per attempt and
 * retries with backoff for failures that may pass; each ends in the audit log and on the machine's
 * BMC record (power state, last error). After a change of power the state is read back in the same turn.
 */
export class PowerService {
  private readonly limiter: ConcurrencyLimiter
  private readonly queues = new Map<string, { tail: Promise<unknown>; pending: number }>()

  constructor(
    private readonly store: PowerStore,
    private readonly clients: Record<BmcProtocol, BmcClient>,
    private readonly audit: PowerAudit,
    private readonly options: PowerServiceOptions = DEFAULT_POWER_OPTIONS,
    private readonly observer: PowerObserver | undefined = undefined,
    private readonly clock: () => Date = () => new Date(),
    private readonly wait: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    private readonly discoveredBmcs: DiscoveredBmcs = { discoveredBmc: async () => undefined },
  ) {
    this.limiter = new ConcurrencyLimiter(options.maxConcurrent)
  }

  /**
   * Sets a machine's BMC. The machine need not be known yet: a rack is enrolled by its BMCs (and the
   * SMBIOS UUIDs on its delivery list) before its machines first boot, and powered on from here.
   */
  async configure(uuid: string, input: BmcInput): Promise<BmcView> {
    if (!MACHINE_UUID.test(uuid)) throw invalid('INVALID_UUID', `"${uuid}" is not a machine UUID (the SMBIOS UUID, 8-4-4-4-12 hexadecimal digits)`)
    const existing = await this.store.find(uuid)
    // Left out, the host is what the machine's own agent read from its BMC: IPv4 first, what ipmitool -I lanplus reaches most often.
    const discovered = input.host === undefined ? await this.discoveredBmcs.discoveredBmc(uuid) : undefined
    const { settings, password } = parseBmcSettings(input, {
      passwordKept: existing !== undefined && existing.protocol === input.protocol,
      discoveredHost: discovered?.ipv4 ?? discovered?.ipv6,
    })
    await this.store.save(uuid, settings, password, this.clock().toISOString())
    return (await this.store.find(uuid))!
  }

  async view(uuid: string): Promise<BmcView> {
    const view = await this.store.find(uuid)
    if (!view) throw notFound('BMC_NOT_CONFIGURED', `machine ${uuid} has no BMC: set one with PUT /api/v1/machines/${uuid}/bmc`)
    return view
  }

  list(): Promise<BmcView[]> {
    return this.store.list()
  }

  /** Whether the machine has a BMC the engine can drive. */
  async configured(uuid: string): Promise<boolean> {
    return (await this.store.find(uuid)) !== undefined
  }

  async remove(uuid: string): Promise<void> {
    if (!(await this.store.remove(uuid))) throw notFound('BMC_NOT_CONFIGURED', `machine ${uuid} has no BMC`)
  }

  /** Asks the BMC now. */
  status(uuid: string, requestedBy: string): Promise<PowerResult> {
    return this.operate(uuid, 'power status', requestedBy, async () => undefined)
  }

  power(uuid: string, action: PowerAction, requestedBy: string): Promise<PowerResult> {
    return this.operate(uuid, `power ${action}`, requestedBy, (client, target, signal) => client.power(target, action, signal))
  }

  setBootDevice(uuid: string, device: BootDevice, persistent: boolean, requestedBy: string): Promise<PowerResult> {
    return this.operate(uuid, `boot device ${device}${persistent ? ' (persistent)' : ' (next boot)'}`, requestedBy, (client, target, signal) =>
      client.setBootDevice(target, device, persistent, signal),
    )
  }

  /**
   * Reads every BMC's power state (the poll): failures are kept on the record, never thrown. A poll
   * is audited only when its outcome differs from the last call's (a BMC going away, coming back), so
   * a BMC that stays down does not write an entry every interval.
   */
  async pollAll(): Promise<{ checked: number; failed: number }> {
    const views = await this.store.list()
    let failed = 0
    await Promise.all(
      views.map(async (view) => {
        try {
          // One try: the next poll is the retry, and a BMC that is down must not hold up the others' polls.
          await this.operate(view.machineUuid, 'power status', 'engine:poll', async () => undefined, { auditUnless: view.lastError?.code ?? 'ok', attempts: 1 })
        } catch {
          failed += 1
        }
      }),
    )
    return { checked: views.length, failed }
  }

  private async operate(
    uuid: string,
    operation: string,
    requestedBy: string,
    change: (client: BmcClient, target: BmcTarget, signal: AbortSignal) => Promise<void>,
    /** Audited unless the outcome is this one (polls: the outcome of the call before); `attempts` overrides the setting. */
    { auditUnless, attempts: maxAttempts = this.options.attempts }: { auditUnless?: string; attempts?: number } = {},
  ): Promise<PowerResult> {
    const target = await this.store.targetOf(uuid)
    if (!target) throw notFound('BMC_NOT_CONFIGURED', `machine ${uuid} has no BMC: set one with PUT /api/v1/machines/${uuid}/bmc`)
    const address = bmcAddress(target)
    return this.oneAtATime(address, async () => {
      const started = performance.now()
      const client = this.clients[target.protocol]
      let attempts = 0
      let outcome: BmcCall['outcome'] = 'ok'
      let message: string | null = null
      let power: PowerState | undefined
      try {
        power = await this.withRetries(
          maxAttempts,
          () => attempts++,
          async (signal) => {
            await change(client, target, signal)
            return client.powerState(target, signal)
          },
        )
        return { power, attempts, ms: Math.round(performance.now() - started) }
      } catch (error) {
        const failure = error instanceof BmcError ? error : new BmcError('BMC_PROTOCOL', error instanceof Error ? error.message : String(error))
        outcome = failure.code
        message = failure.message
        const details = { machine: uuid, bmc: address, attempts }
        if (failure.code === 'BMC_CLIENT_MISSING') throw misconfigured(failure.code, failure.message, details)
        throw upstreamFailed(failure.code, `BMC ${address} of machine ${uuid}: ${failure.message}`, failure.code === 'BMC_TIMEOUT', details)
      } finally {
        const ms = Math.round(performance.now() - started)
        const at = this.clock().toISOString()
        this.observer?.callFinished(target.protocol, operation.split(' ').slice(0, 2).join(' '), outcome, ms / 1000)
        await this.store.recordObservation(uuid, { power, checkedAt: at, error: outcome === 'ok' ? null : { code: outcome, message: message ?? '' } })
        if (outcome !== auditUnless) {
          await this.audit.record({ machineUuid: uuid, protocol: target.protocol, bmc: address, operation, requestedBy, outcome, message, attempts, ms, at })
        }
      }
    })
  }

  /** Each attempt holds a global slot and has its own time limit; only transient failures are tried again. */
  private async withRetries<T>(maxAttempts: number, onAttempt: () => void, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
    for (let number = 1; ; number++) {
      onAttempt()
      try {
        return await this.limiter.run(() => withTimeout(this.options.attemptTimeoutMs, attempt))
      } catch (error) {
        if (!(error instanceof BmcError) || !error.transient || number >= maxAttempts) throw error
        await this.wait(this.options.backoffMs * 2 ** (number - 1))
      }
    }
  }

  private oneAtATime<T>(key: string, work: () => Promise<T>): Promise<T> {
    const queue = this.queues.get(key) ?? { tail: Promise.resolve(), pending: 0 }
    // `pending` counts the running operation too: at most maxQueuedPerBmc wait behind it.
    if (queue.pending > this.options.maxQueuedPerBmc) {
      throw rateLimited('BMC_BUSY', `BMC ${key} has ${queue.pending - 1} operations waiting behind the one it runs; ask again in a moment`, BUSY_RETRY_SECONDS, { bmc: key })
    }
    const result = queue.tail.then(work, work)
    queue.pending += 1
    queue.tail = result.then(
      () => undefined,
      () => undefined,
    )
    this.queues.set(key, queue)
    void queue.tail.then(() => {
      queue.pending -= 1
      if (queue.pending === 0 && this.queues.get(key) === queue) this.queues.delete(key)
    })
    return result
  }
}

async function withTimeout<T>(ms: number, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort()
      reject(new BmcError('BMC_TIMEOUT', `no answer within ${ms / 1000} s`))
    }, ms)
  })
  try {
    return await Promise.race([attempt(controller.signal), timedOut])
  } finally {
    clearTimeout(timer)
  }
}
