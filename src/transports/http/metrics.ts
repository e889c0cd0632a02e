import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import { SlipwayError } from '../../core/errors.ts'

/** Counts every render by kind and outcome: a template broken for some machines shows up at once. */
export class BootMetrics {
  readonly registry = new Registry()
  private readonly renders: Counter<'kind' | 'outcome'>

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'slipway_' })
    this.renders = new Counter({
      name: 'slipway_boot_renders_total',
      help: 'Machine-facing renders by kind (ipxe, ignition, metadata, generic) and outcome (ok or an error code).',
      labelNames: ['kind', 'outcome'],
      registers: [this.registry],
    })
  }

  observe<T>(kind: string, render: () => T): T {
    try {
      const result = render()
      this.renders.inc({ kind, outcome: 'ok' })
      return result
    } catch (error) {
      this.renders.inc({ kind, outcome: error instanceof SlipwayError ? error.code : 'INTERNAL' })
      throw error
    }
  }
}
