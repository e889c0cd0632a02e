import type { CommandSpec } from '../command.ts'
import { assetCommands } from './assets.ts'
import { backupCommands } from './backup.ts'
import { chartCommands } from './charts.ts'
import { clusterCommands } from './clusters.ts'
import { engineCommands } from './engine.ts'
import { lockCommands } from './locks.ts'
import { machineCommands } from './machines.ts'
import { powerCommands } from './power.ts'
import { releaseCommands } from './releases.ts'
import { rolloutCommands } from './rollouts.ts'

/** Every command, in the order --help lists them. */
export const COMMANDS: CommandSpec[] = [
  ...engineCommands,
  ...machineCommands,
  ...powerCommands,
  ...clusterCommands,
  ...chartCommands,
  ...releaseCommands,
  ...rolloutCommands,
  ...lockCommands,
  ...backupCommands,
  ...assetCommands,
]
