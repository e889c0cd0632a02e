import { AuditTrail } from '../core/access/audit-trail.ts'
import { TokenService } from '../core/access/token-service.ts'
import { SerialJob } from '../jobs/serial-job.ts'
import { auditStore } from '../storage/repositories/audit-log.ts'
import { apiTokenRepository } from '../storage/repositories/api-tokens.ts'
import { tenantDirectory } from '../storage/repositories/tenants.ts'
import { UiSessions } from '../transports/http/ui-session.ts'
import type { Capability, WiringBasics } from './capability.ts'

/**
 * Who may do what: API tokens (the first admin token generated or the configured one registered),
 * tenants, web UI sessions, and the audit trail with its maintenance job (refusals without a token
 * summarised, retention applied; the last summaries written when the engine stops).
 */
export async function wireAccess({ config, store, secrets, logger }: WiringBasics) {
  const tokens = new TokenService(apiTokenRepository(store))
  const generatedAdminToken = await tokens.ensureAdminToken(config.auth.adminToken)
  const audit = new AuditTrail(auditStore(store), { retentionDays: config.audit.retentionDays, maxRows: config.audit.maxRows })
  const maintenance = new SerialJob(
    async () => {
      await audit.flush()
      const removed = await audit.prune()
      if (removed > 0) logger.info({ component: 'audit', removed }, `audit retention removed ${removed} entries`)
    },
    { name: 'audit maintenance', intervalMs: config.audit.summaryIntervalSeconds * 1000, debounceMs: 0, logger },
  )
  const capability: Capability = {
    jobs: [
      {
        start: () => maintenance.start(),
        stop: async () => {
          await maintenance.stop()
          await audit.flush().catch((error: unknown) => logger.error({ err: error }, 'audit summaries could not be written at shutdown'))
        },
      },
    ],
    listeners: [],
  }
  return { tokens, generatedAdminToken, tenants: tenantDirectory(store), audit, uiSessions: new UiSessions(secrets), ...capability }
}
