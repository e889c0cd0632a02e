/**
 * Who rolls a machine: the engine (a rollout run, over SSH) or the machine itself (its rolling agent
 * takes the slot, drains, applies and restarts). Chosen per machine with a label, so that it can be
 * changed without re-provisioning; engine-driven runs leave machine-driven machines alone.
 */
export const ROLLING_MODE_LABEL = 'slipway.io/rolling'
export type RollingMode = 'engine' | 'machine'

export const rollingModeOf = (labels: Record<string, string>): RollingMode => (labels[ROLLING_MODE_LABEL] === 'machine' ? 'machine' : 'engine')
