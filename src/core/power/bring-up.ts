import { randomUUID } from 'node:crypto'
import { invalid, SlipwayError } from '../errors.ts'
import type { BootDevice } from './bmc.ts'
import type { PowerService } from './power-service.ts'

/**
 * Bring-up: powering a set of machines (listed, or by label) on in batches of K with a pause between batches, so that a rack
 * does not ask DHCP and TFTP for its boot all at once. Each machine first gets its next boot device
 * (the network, by default: a new machine boots into discovery), then power on. A machine whose BMC
 * fails is marked failed and the run goes on. Runs are kept in memory (the last 50) by the replica
 * that runs them; their calls are in the audit log like any other.
 */

export type BringUpMachineState = 'waiting' | 'powering-on' | 'on' | 'failed'

export interface BringUpMachine {
  uuid: string
  batch: number
  state: BringUpMachineState
  error: { code: string; message: string } | null
  poweredOnAt: string | null
}

export interface BringUp {
  id: string
  requestedBy: string
  createdAt: string
  finishedAt: string | null
  batchSize: number
  pauseMs: number
  bootDevice: BootDevice | null
  state: 'running' | 'done'
  machines: BringUpMachine[]
}

export interface BringUpRequest {
  /** The machines, by UUID; or (with none given) every known machine carrying all of `labels`. */
  machines?: string[]
  labels?: Record<string, string>
  batchSize: number
  pauseMs: number
  bootDevice: BootDevice | null
}

const KEPT_RUNS = 50
export const MAX_BRING_UP_MACHINES = 1000

export class BringUpService {
  private readonly runs = new Map<string, BringUp>()
  private readonly running = new Set<Promise<void>>()

  constructor(
    private readonly power: PowerService,
    /** The known machines carrying every one of `labels` (a bring-up by label). */
    private readonly labelled: (labels: Record<string, string>) => Promise<string[]> = async () => [],
    private readonly clock: () => Date = () => new Date(),
    private readonly wait: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {}

  /** Checks the request (every machine must have a BMC), starts the run and returns it at once. */
  async start(request: BringUpRequest, requestedBy: string): Promise<BringUp> {
    const byLabel = request.labels !== undefined && Object.keys(request.labels).length > 0
    if (byLabel === (request.machines !== undefined)) throw invalid('BRING_UP_INVALID', 'name the machines either by UUID (machines) or by label (labels), one of the two')
    const listed = byLabel ? await this.labelled(request.labels!) : request.machines!
    const machines = [...new Set(listed.map((uuid) => uuid.toLowerCase()))]
    if (machines.length === 0) {
      throw invalid('BRING_UP_EMPTY', byLabel ? `no known machine carries ${Object.entries(request.labels!).map(([key, value]) => `${key}=${value}`).join(', ')}` : 'name at least one machine to power on')
    }
    if (machines.length > MAX_BRING_UP_MACHINES) throw invalid('BRING_UP_TOO_LARGE', `at most ${MAX_BRING_UP_MACHINES} machines in one bring-up`)
    if (!Number.isInteger(request.batchSize) || request.batchSize < 1) throw invalid('BRING_UP_INVALID', 'batch size is a whole number of at least 1')
    const withBmc = new Set((await this.power.list()).map((view) => view.machineUuid))
    const missing = machines.filter((uuid) => !withBmc.has(uuid))
    if (missing.length > 0) throw invalid('BMC_NOT_CONFIGURED', `${missing.length} machine(s) have no BMC: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}`, { missing })
    const run: BringUp = {
      id: randomUUID(),
      requestedBy,
      createdAt: this.clock().toISOString(),
      finishedAt: null,
      batchSize: request.batchSize,
      pauseMs: request.pauseMs,
      bootDevice: request.bootDevice,
      state: 'running',
      machines: machines.map((uuid, index) => ({ uuid, batch: Math.floor(index / request.batchSize) + 1, state: 'waiting', error: null, poweredOnAt: null })),
    }
    this.runs.set(run.id, run)
    for (const id of [...this.runs.keys()].slice(0, Math.max(0, this.runs.size - KEPT_RUNS))) this.runs.delete(id)
    const execution = this.execute(run).finally(() => this.running.delete(execution))
    this.running.add(execution)
    return snapshot(run)
  }

  get(id: string): BringUp | undefined {
    const run = this.runs.get(id)
    return run && snapshot(run)
  }

  list(): BringUp[] {
    return [...this.runs.values()].reverse().map(snapshot)
  }

  /** Waits for the runs in flight (the engine's shutdown). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.running])
  }

  private async execute(run: BringUp): Promise<void> {
    const batches = Math.ceil(run.machines.length / run.batchSize)
    for (let batch = 1; batch <= batches; batch++) {
      if (batch > 1 && run.pauseMs > 0) await this.wait(run.pauseMs)
      await Promise.all(run.machines.filter((machine) => machine.batch === batch).map((machine) => this.bringUp(run, machine)))
    }
    run.state = 'done'
    run.finishedAt = this.clock().toISOString()
  }

  private async bringUp(run: BringUp, machine: BringUpMachine): Promise<void> {
    machine.state = 'powering-on'
    const by = `${run.requestedBy} (bring-up ${run.id.slice(0, 8)})`
    try {
      if (run.bootDevice) await this.power.setBootDevice(machine.uuid, run.bootDevice, false, by)
      await this.power.power(machine.uuid, 'on', by)
      machine.state = 'on'
      machine.poweredOnAt = this.clock().toISOString()
    } catch (error) {
      machine.state = 'failed'
      machine.error = error instanceof SlipwayError ? { code: error.code, message: error.message } : { code: 'INTERNAL', message: String(error) }
    }
  }
}

const snapshot = (run: BringUp): BringUp => ({ ...run, machines: run.machines.map((machine) => ({ ...machine })) })
