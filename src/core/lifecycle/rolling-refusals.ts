import Type, { type Static } from 'typebox'
import { checkDocument } from '../selection/documents.ts'

/**
 * A machine-driven rolling update fails closed: a rolling agent that cannot drain its node (no
 * kubectl or kubeconfig, or the drain failed) or cannot fetch its new config does not restart, and
 * tells the engine why. The engine keeps the last refusal of each machine for its operators until the
 * machine takes a reboot slot again or reports itself up to date.
 */
export const REFUSAL_REASONS = ['no_kubeconfig', 'drain_failed', 'config_unavailable'] as const
export type RefusalReason = (typeof REFUSAL_REASONS)[number]

export const RollingRefusalReport = Type.Object(
  {
    reason: Type.Enum([...REFUSAL_REASONS], {
      description: 'no_kubeconfig: the agent has no kubectl or kubeconfig to drain with; drain_failed: kubectl drain failed; config_unavailable: the new config could not be fetched.',
    }),
    message: Type.String({ maxLength: 2000, description: "What the agent saw (kubectl's last lines)." }),
  },
  { additionalProperties: false },
)

export interface RollingRefusal {
  uuid: string
  reason: RefusalReason
  message: string
  at: string
}

export interface RollingRefusalStore {
  save(refusal: RollingRefusal): Promise<void>
  /** True when there was one to remove. */
  remove(uuid: string): Promise<boolean>
  list(): Promise<RollingRefusal[]>
}

export class RollingRefusals {
  constructor(
    private readonly store: RollingRefusalStore,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Records the agent's report (the body it sent); 400 INVALID_ROLLING_REFUSAL for anything else. */
  async report(uuid: string, body: unknown): Promise<RollingRefusal> {
    const report: Static<typeof RollingRefusalReport> = checkDocument(RollingRefusalReport, body, 'rolling refusal', 'INVALID_ROLLING_REFUSAL')
    const refusal: RollingRefusal = { uuid, reason: report.reason, message: report.message, at: this.clock().toISOString() }
    await this.store.save(refusal)
    return refusal
  }

  /** The machine moved on (took a slot, or runs its config): its refusal no longer stands. */
  resolved(uuid: string): Promise<boolean> {
    return this.store.remove(uuid)
  }

  list(): Promise<RollingRefusal[]> {
    return this.store.list()
  }
}
