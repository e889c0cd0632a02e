import type { Discovery } from '../../src/core/machines/discovery-document.ts'
import type { MachineConflict } from '../../src/core/machines/machine-identity.ts'
import type { Machine, MachineFilter, MachineRepository } from '../../src/core/machines/machine-service.ts'
import type { MachineEvent } from '../../src/core/machines/machine-state.ts'

type StoredConflict = MachineConflict & { report: Discovery }

interface State {
  machines: Map<string, Machine>
  events: MachineEvent[]
  conflicts: StoredConflict[]
}

/**
 * The machine store port in memory: transactions run one at a time on a copy and commit only on
 * success, as SQLite's single writer does; the awaits inside let concurrent callers interleave up
 * to the lock. The core's services are tested against it; storage/repositories/machines.ts is the
 * real one, tested against SQLite and PostgreSQL.
 */
export function memoryMachineRepository() {
  const state: State = { machines: new Map(), events: [], conflicts: [] }
  let lock: Promise<unknown> = Promise.resolve()
  const view = (store: State): MachineRepository => ({
    findMachine: async (uuid) => store.machines.get(uuid),
    listMachines: async (filter: MachineFilter) =>
      [...store.machines.values()].filter(
        (machine) =>
          (!filter.state || machine.state === filter.state) &&
          (!filter.mac || machine.interfaces.some((nic) => nic.mac === filter.mac)) &&
          (!filter.uuids || filter.uuids.includes(machine.uuid)) &&
          Object.entries(filter.labels ?? {}).every(([key, value]) => machine.labels[key] === value),
      ),
    saveMachine: async (machine) => {
      const stored = store.machines.get(machine.uuid)
      // Labels, the credential and the re-provision window have writers of their own.
      store.machines.set(machine.uuid, stored ? { ...machine, labels: stored.labels, credential: stored.credential, reprovisionUntil: stored.reprovisionUntil } : machine)
    },
    replaceLabels: async (uuid, labels) => void store.machines.set(uuid, { ...store.machines.get(uuid)!, labels }),
    appendEvent: async (event) => void store.events.push(event),
    recordTransition: async (machine, event) => {
      store.machines.set(machine.uuid, { ...store.machines.get(machine.uuid)!, state: machine.state, stateChangedAt: machine.stateChangedAt })
      store.events.push(event)
    },
    listEvents: async (uuid) => store.events.filter((event) => event.uuid === uuid),
    setCredential: async (uuid, credential) => void store.machines.set(uuid, { ...store.machines.get(uuid)!, credential }),
    setReprovisionUntil: async (uuid, until) => void store.machines.set(uuid, { ...store.machines.get(uuid)!, reprovisionUntil: until }),
    recordConflict: async (claim, maxOpen) => {
      const same = store.conflicts.find(
        (conflict) => conflict.state === 'open' && conflict.kind === claim.kind && conflict.machineUuid === claim.machineUuid,
      )
      if (same) {
        Object.assign(same, { reports: same.reports + 1, lastSeenAt: claim.at, sourceIp: claim.sourceIp, claimedUuid: claim.report.uuid, claimedMac: claim.report.bootMac, claimedIpv4: claim.claimedIpv4, report: claim.report })
        return { conflict: { ...same }, first: false }
      }
      if (store.conflicts.filter((conflict) => conflict.state === 'open').length >= maxOpen) return undefined
      const conflict: StoredConflict = {
        id: store.conflicts.length + 1,
        kind: claim.kind,
        machineUuid: claim.machineUuid,
        claimedUuid: claim.report.uuid,
        claimedMac: claim.report.bootMac,
        claimedIpv4: claim.claimedIpv4,
        sourceIp: claim.sourceIp,
        reports: 1,
        firstSeenAt: claim.at,
        lastSeenAt: claim.at,
        state: 'open',
        resolvedAt: null,
        resolvedBy: null,
        report: claim.report,
      }
      store.conflicts.push(conflict)
      return { conflict: { ...conflict }, first: true }
    },
    listConflicts: async (filter) => store.conflicts.filter((conflict) => !filter.state || conflict.state === filter.state).reverse(),
    findConflict: async (id) => store.conflicts.find((conflict) => conflict.id === id),
    resolveConflict: async (id, resolved, at, by) => {
      const conflict = store.conflicts.find((candidate) => candidate.id === id)!
      Object.assign(conflict, { state: resolved, resolvedAt: at, resolvedBy: by })
    },
    transaction: async <T>(work: (inner: MachineRepository) => Promise<T>): Promise<T> => {
      const run = lock.then(async () => {
        const draft: State = { machines: new Map(store.machines), events: [...store.events], conflicts: store.conflicts.map((conflict) => ({ ...conflict })) }
        const result = await work(view(draft))
        // In place: callers hold the maps and arrays they were given.
        store.machines.clear()
        for (const [key, value] of draft.machines) store.machines.set(key, value)
        store.events.splice(0, store.events.length, ...draft.events)
        store.conflicts.splice(0, store.conflicts.length, ...draft.conflicts)
        return result
      })
      lock = run.catch(() => {})
      return run
    },
  })
  return { machines: state.machines, events: state.events, conflicts: state.conflicts, repository: view(state) }
}
