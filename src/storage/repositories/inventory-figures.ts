import type { InventoryFigures } from '../../core/inventory-figures.ts'
import { MACHINE_STATES } from '../../core/machines/machine-state.ts'
import { POWER_STATES } from '../../core/power/bmc.ts'
import type { Db } from '../database.ts'

const CLUSTER_HEALTH = ['Healthy', 'Degraded', 'Unreachable', 'Unknown'] as const
const RELEASE_STATES = ['active', 'paused', 'halted', 'deleting'] as const

/** Every value of a label, zero where nothing counts: a series that drops to zero stays a series. */
const zeroed = (values: readonly string[]): Record<string, number> => Object.fromEntries(values.map((value) => [value, 0]))

/**
 * The counts the inventory gauges show (/metrics), in grouped reads: machines by state and by power, clusters
 * of the registry by health, releases by state, and each reboot lock group's slots and holders.
 */
export async function inventoryFigures(store: Db): Promise<InventoryFigures> {
  const [machines, powers, clusters, releases, groups, holders] = await Promise.all([
    store.selectFrom('machines').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute(),
    store.selectFrom('bmcs').select(['power', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('power').execute(),
    store
      .selectFrom('cluster_registry')
      .leftJoin('cluster_health', 'cluster_health.cluster', 'cluster_registry.name')
      .select(['cluster_health.status', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('cluster_health.status')
      .execute(),
    store.selectFrom('releases').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute(),
    store.selectFrom('lock_groups').select(['name', 'slots']).execute(),
    store.selectFrom('lock_holders').select(['lock_group', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('lock_group').execute(),
  ])
  const machinesByState = zeroed(MACHINE_STATES)
  for (const row of machines) machinesByState[row.state] = Number(row.n)
  const machinesByPower = zeroed(POWER_STATES)
  for (const row of powers) machinesByPower[row.power] = Number(row.n)
  const clustersByHealth = zeroed(CLUSTER_HEALTH)
  for (const row of clusters) clustersByHealth[row.status ?? 'Unknown'] = (clustersByHealth[row.status ?? 'Unknown'] ?? 0) + Number(row.n)
  const releasesByState = zeroed(RELEASE_STATES)
  for (const row of releases) releasesByState[row.state] = Number(row.n)
  const held = new Map(holders.map((row) => [row.lock_group, Number(row.n)]))
  const lockGroups = Object.fromEntries(groups.map((group) => [group.name, { slots: group.slots, held: held.get(group.name) ?? 0 }]))
  return { machinesByState, machinesByPower, clustersByHealth, releasesByState, lockGroups }
}
