/**
 * What the engine holds, counted, for its metrics: machines by state and by power, registry clusters by health
 * (Unknown until checked once), releases by state, each reboot lock group's slots and holders. Every
 * known value of a label is present, zero where nothing counts, so that a series never vanishes.
 */
export interface InventoryFigures {
  machinesByState: Record<string, number>
  /** Machines with a BMC, by the power state it last reported. */
  machinesByPower: Record<string, number>
  clustersByHealth: Record<string, number>
  releasesByState: Record<string, number>
  lockGroups: Record<string, { slots: number; held: number }>
}
