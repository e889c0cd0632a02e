import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { administer } from '../../../../../core/access/route-policy.ts'
import type { Snapshot } from '../../../../../storage/backup.ts'
import { ErrorResponse } from '../../../schemas/common.ts'
import { EnjoliverBackupResponse, toEnjoliverBackupResponse } from '../../../schemas/backup.ts'
import { BACKUP_NOT_SUPPORTED, snapshotFailed } from '../../admin/backup.ts'

export interface EnjoliverBackupRouteOptions {
  /** Writes a snapshot into the engine's backup folder; undefined as above. */
  snapshotToFolder?: () => Promise<Snapshot>
  databaseFile: string
}

/**
 * Enjoliver's POST /backup/db, for its tooling: a snapshot written into the engine's backup folder,
 * answered in Enjoliver's shape. There is no S3 upload (`upload: false`, `dest_s3: null`).
 */
export const enjoliverBackupRoutes: FastifyPluginAsyncTypebox<EnjoliverBackupRouteOptions> = async (app, options) => {
  app.post(
    '/backup/db',
    {
      config: { access: administer() },
      schema: {
        tags: ['backup'],
        summary: "Enjoliver's backup: writes a snapshot into <dataDir>/backups and says where (admin token)",
        response: { 200: EnjoliverBackupResponse, 401: ErrorResponse, 403: ErrorResponse, 501: ErrorResponse, 503: ErrorResponse },
      },
    },
    async (_request, reply) => {
      if (!options.snapshotToFolder) return reply.status(501).send(BACKUP_NOT_SUPPORTED)
      let snapshot: Snapshot
      try {
        snapshot = await options.snapshotToFolder()
      } catch (error) {
        throw snapshotFailed(error)
      }
      return toEnjoliverBackupResponse(options.databaseFile, snapshot)
    },
  )
}
