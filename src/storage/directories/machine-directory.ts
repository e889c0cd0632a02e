import type { KnownMachine, MachineFactsSource } from '../../core/boot/boot-service.ts'
import type { Machine, MachineRepository } from '../../core/machines/machine-service.ts'
import type { Labels } from '../../core/selection/labels.ts'

/**
 * The discovered machines in memory, for rendering: boot requests look machines up by uuid or boot
 * MAC without touching the database. Loaded at start-up and refreshed after every committed change.
 */
export class MachineDirectory implements MachineFactsSource {
  private readonly byUuid = new Map<string, KnownMachine>()
  private readonly uuidByBootMac = new Map<string, string>()
  private revision = 0

  constructor(private readonly repository: MachineRepository) {}

  async load(): Promise<void> {
    for (const machine of await this.repository.listMachines({})) this.remember(machine)
  }

  async refresh(uuid: string): Promise<void> {
    const machine = await this.repository.findMachine(uuid)
    const previous = this.byUuid.get(uuid)
    if (previous) this.uuidByBootMac.delete(String(previous.view.bootMac))
    if (machine) this.remember(machine)
    else this.byUuid.delete(uuid)
  }

  /** Many machines at once (a scheduling pass moves thousands): one chunked read instead of one each. */
  async refreshMany(uuids: readonly string[]): Promise<void> {
    const found = new Set<string>()
    for (const machine of await this.repository.listMachines({ uuids })) {
      found.add(machine.uuid)
      this.put(machine)
    }
    for (const uuid of uuids) if (!found.has(uuid)) await this.refresh(uuid)
  }

  /** A machine the caller just stored, as stored: no read back. */
  put(machine: Machine): void {
    const previous = this.byUuid.get(machine.uuid)
    if (previous) this.uuidByBootMac.delete(String(previous.view.bootMac))
    this.remember(machine)
  }

  lookup(labels: Labels): KnownMachine | undefined {
    // iPXE sends `uuid=` empty when the firmware has none: then the boot MAC decides.
    const byUuid = labels.uuid ? this.byUuid.get(labels.uuid.toLowerCase()) : undefined
    if (byUuid) return byUuid
    const uuid = labels.mac ? this.uuidByBootMac.get(labels.mac) : undefined
    return uuid ? this.byUuid.get(uuid) : undefined
  }

  private remember(machine: Machine): void {
    this.byUuid.set(machine.uuid, { uuid: machine.uuid, state: machine.state, revision: ++this.revision, view: { ...machine } })
    this.uuidByBootMac.set(machine.bootMac, machine.uuid)
  }
}
