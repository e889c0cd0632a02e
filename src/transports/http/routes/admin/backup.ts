import { createReadStream } from 'node:fs'
import path from 'node:path'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { unavailable } from '../../../../core/errors.ts'
import { BackupError, type Snapshot } from '../../../../storage/backup.ts'
import type { InventoryDocument } from '../../../../storage/inventory-document.ts'
import type { ImportReport } from '../../../../storage/inventory-transfer.ts'
import type { ErrorBody } from '../../errors.ts'
import { adminErrors, ErrorResponse } from '../../schemas/common.ts'
import { ImportReportResponse } from '../../schemas/backup.ts'
// A backup holds everything (sealed secrets included): fleet admins only (`administer()` is fleet-scoped).
import { administer } from '../../../../core/access/route-policy.ts'

export interface BackupRouteOptions {
  /** A consistent snapshot of the database; undefined when the store has no file (PostgreSQL). */
  snapshot?: () => Promise<Snapshot>
  exportInventory: () => Promise<InventoryDocument>
  importInventory: (input: unknown) => Promise<ImportReport>
}

/** An inventory of tens of thousands of machines is tens of MiB of JSON. */
export const INVENTORY_IMPORT_BODY_LIMIT = 256 * 1024 * 1024

export const BACKUP_NOT_SUPPORTED: ErrorBody = {
  statusCode: 501,
  code: 'BACKUP_NOT_SUPPORTED',
  message: 'this engine keeps its state in PostgreSQL: back it up with `pg_dump -Fc` and restore with `pg_restore` (README, "Backups and restore")',
}

/** A snapshot that failed (disk full, a check that did not pass) is worth another try later. */
export const snapshotFailed = (error: unknown) => (error instanceof BackupError ? unavailable(error.code, error.message, 5) : error)

/** GET /api/v1/backup, GET /api/v1/inventory/export, POST /api/v1/inventory/import (the admin scope). */
export const backupRoutes: FastifyPluginAsyncTypebox<BackupRouteOptions> = async (app, options) => {
  const tags = ['backup']

  app.get(
    '/backup',
    {
      config: { access: administer() },
      schema: {
        tags,
        summary: 'An online, consistent snapshot of the SQLite database (a complete database file, slipway-<timestamp>.sqlite3)',
        description: 'Taken with VACUUM INTO in one read transaction while the engine keeps writing. Sealed secrets stay sealed: the secrets key file is not in it.',
        response: { 200: Type.Unknown({ description: 'application/octet-stream' }), 403: ErrorResponse, 501: ErrorResponse, 503: ErrorResponse, ...adminErrors },
      },
    },
    async (_request, reply) => {
      if (!options.snapshot) return reply.status(501).send(BACKUP_NOT_SUPPORTED)
      let snapshot: Snapshot
      try {
        snapshot = await options.snapshot()
      } catch (error) {
        throw snapshotFailed(error)
      }
      const stream = createReadStream(snapshot.file)
      // The temporary copy goes once the download ends, however it ends (done, aborted, failed).
      stream.once('close', () => snapshot.dispose())
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(snapshot.bytes))
        .header('content-disposition', `attachment; filename="${path.basename(snapshot.file)}"`)
        .header('x-slipway-snapshot-taken-at', snapshot.takenAt)
        .header('x-slipway-schema', snapshot.latestMigration ?? '')
        .header('cache-control', 'no-store')
        .send(stream)
    },
  )

  app.get(
    '/inventory/export',
    {
      config: { access: administer() },
      schema: {
        tags,
        summary: 'The inventory as JSON ({"slipway_inventory": 1}): machines with facts, state and role; flavors; clusters; BMC records. Secrets only sealed.',
        response: { 200: Type.Unknown({ description: 'The inventory document.' }), 403: ErrorResponse, ...adminErrors },
      },
    },
    async (_request, reply) => {
      const document = await options.exportInventory()
      const stamp = document.exported_at.replace(/[:.]/g, '-')
      return reply.header('content-disposition', `attachment; filename="slipway-inventory-${stamp}.json"`).header('cache-control', 'no-store').send(document)
    },
  )

  app.post(
    '/inventory/import',
    {
      config: { access: administer() },
      bodyLimit: INVENTORY_IMPORT_BODY_LIMIT,
      schema: {
        tags,
        summary: 'Imports an inventory export: checked whole first, then upserted by uuid / name in one transaction (all or nothing; again is a no-op)',
        body: Type.Unknown({ description: 'A document from GET /api/v1/inventory/export.' }),
        response: { 200: ImportReportResponse, 403: ErrorResponse, ...adminErrors },
      },
    },
    async (request) => options.importInventory(request.body),
  )
}
