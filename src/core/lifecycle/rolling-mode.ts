/**
 * Who rolls a machine: the engine (a rollout run, over SSH) or the machine itself (its rolling agent
 * takes the slot, drains, applies and restarts). Chosen per machine with a label, so that it can be
 * changed without re-provisioning; engine-driven runs leave machine-driven machines alone.
 */
export const ROLLING_MODE_LABEL = 'slipway.io/rolling'
export type RollingMode = 'engine' | 'machine'

export const rollingModeOf = (labels: Record<string, string>): RollingMode => (labels[ROLLING_MODE_LABEL] === 'machine' ? 'machine' : 'engine')

/**
 * Whether a machine-driven restart drains its node first. Required unless an operator labels the
 * machine `slipway.io/rolling-drain=skip` (a machine that runs no workload, a lab without Kubernetes):
 * an agent that cannot drain a machine that requires it does not restart.
 */
export const ROLLING_DRAIN_LABEL = 'slipway.io/rolling-drain'
export type RollingDrain = 'required' | 'skip'

export const rollingDrainOf = (labels: Record<string, string>): RollingDrain => (labels[ROLLING_DRAIN_LABEL] === 'skip' ? 'skip' : 'required')
