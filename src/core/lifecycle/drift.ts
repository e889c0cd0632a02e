import { createHash } from 'node:crypto'
import type { BootService } from '../boot/boot-service.ts'
import { invalid, notFound, SlipwayError } from '../errors.ts'
import type { Machine } from '../machines/machine-service.ts'

export const DRIFT_STATES = ['up_to_date', 'outdated', 'unknown'] as const
export type DriftState = (typeof DRIFT_STATES)[number]

/** What the engine knows of one installed machine's config. */
export interface DriftRecord {
  uuid: string
  state: DriftState
  /** SHA-256 of the canonical form of what the machine last said it runs. */
  reportedSha256: string
  /** SHA-256 of the canonical form of what the engine would serve it now; null when that fails to render. */
  expectedSha256: string | null
  /** Why the state is `unknown` (the render error), else null. */
  reason: string | null
  /** The engine URL the machine reached us at: configs embed it, so it is rendered with the same one. */
  engineUrl: string
  reportedAt: string
  /** When `state` last changed. */
  stateChangedAt: string
  checkedAt: string
}

export interface DriftRepository {
  findMachine(uuid: string): Promise<Machine | undefined>
  findDrift(uuid: string): Promise<DriftRecord | undefined>
  listDrift(): Promise<DriftRecord[]>
  saveDrift(record: DriftRecord): Promise<void>
}

/**
 * Canonical JSON: object keys sorted at every level, no insignificant whitespace. Two configs that
 * differ only in key order or formatting are the same config.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, child]) => child !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, child]) => `${JSON.stringify(key)}:${canonicalJson(child)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

export const canonicalSha256 = (config: unknown) => createHash('sha256').update(canonicalJson(config)).digest('hex')

/**
 * Ignition drift, after Enjoliver's lifecycle: installed machines report the config they run; the
 * engine compares it, canonically, with what it would serve them now. A content change (template,
 * profile, group metadata) re-checks every machine at once, without waiting for their next report.
 */
export class DriftService {
  constructor(
    private readonly repository: DriftRepository,
    private readonly boot: BootService,
    private readonly clock: () => Date = () => new Date(),
    /** Told after every stored report (a rolling update may be waiting for it). */
    private readonly reported: (record: DriftRecord) => void = () => {},
  ) {}

  async report(uuid: string, config: unknown, engineUrl: string, now: Date = this.clock()): Promise<DriftRecord> {
    if (config === null || typeof config !== 'object' || Array.isArray(config) || typeof (config as { ignition?: { version?: unknown } }).ignition?.version !== 'string') {
      throw invalid('INVALID_IGNITION_REPORT', 'the body must be the Ignition config the machine runs: a JSON object with ignition.version')
    }
    const machine = await this.repository.findMachine(uuid)
    if (!machine) throw notFound('MACHINE_NOT_FOUND', `machine ${uuid} is not in the inventory`)
    const previous = await this.repository.findDrift(uuid)
    const record = this.evaluate(machine, canonicalSha256(config), engineUrl, previous, now, now.toISOString())
    await this.repository.saveDrift(record)
    this.reported(record)
    return record
  }

  /** Re-renders every reported machine's config and updates its state; returns the records that changed state. */
  async recheckAll(now: Date = this.clock()): Promise<DriftRecord[]> {
    const changed: DriftRecord[] = []
    for (const previous of await this.repository.listDrift()) {
      const machine = await this.repository.findMachine(previous.uuid)
      if (!machine) continue
      const record = this.evaluate(machine, previous.reportedSha256, previous.engineUrl, previous, now, previous.reportedAt)
      if (record.state !== previous.state || record.expectedSha256 !== previous.expectedSha256 || record.reason !== previous.reason) {
        await this.repository.saveDrift(record)
        if (record.state !== previous.state) changed.push(record)
      }
    }
    return changed
  }

  list(): Promise<DriftRecord[]> {
    return this.repository.listDrift()
  }

  async get(uuid: string): Promise<DriftRecord> {
    const record = await this.repository.findDrift(uuid)
    if (!record) throw notFound('NO_IGNITION_REPORT', `machine ${uuid} has not reported the config it runs (POST /lifecycle/ignition)`)
    return record
  }

  /** What the engine would serve this installed machine now, as a hash; or why it cannot say. */
  private expected(machine: Machine, engineUrl: string): { sha256: string | null; reason: string | null } {
    const mac = machine.bootMac.replaceAll(':', '-')
    try {
      const rendered = this.boot.ignition({
        labels: { uuid: machine.uuid, mac: machine.bootMac, os: 'installed' },
        rawQuery: `uuid=${machine.uuid}&mac=${mac}&os=installed`,
        engineUrl,
      })
      return { sha256: canonicalSha256(JSON.parse(rendered.body)), reason: null }
    } catch (error) {
      const reason = error instanceof SlipwayError ? `${error.code}: ${error.message}` : String(error)
      return { sha256: null, reason }
    }
  }

  private evaluate(machine: Machine, reportedSha256: string, engineUrl: string, previous: DriftRecord | undefined, now: Date, reportedAt: string): DriftRecord {
    const expected = this.expected(machine, engineUrl)
    const state: DriftState = expected.sha256 === null ? 'unknown' : expected.sha256 === reportedSha256 ? 'up_to_date' : 'outdated'
    const at = now.toISOString()
    return {
      uuid: machine.uuid,
      state,
      reportedSha256,
      expectedSha256: expected.sha256,
      reason: expected.reason,
      engineUrl,
      reportedAt,
      stateChangedAt: previous && previous.state === state ? previous.stateChangedAt : at,
      checkedAt: at,
    }
  }
}
