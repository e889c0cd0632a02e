import Type from 'typebox'
import type { Snapshot } from '../../../storage/backup.ts'

const ImportCounts = Type.Object({ created: Type.Integer(), updated: Type.Integer() })
export const ImportReportResponse = Type.Object({
  machines: ImportCounts,
  flavors: ImportCounts,
  clusters: ImportCounts,
  // A document from before BMC records travelled has none: 0 and 0.
  bmcs: ImportCounts,
})

/** Enjoliver's POST /backup/db answer. There is no S3 upload (`upload: false`, `dest_s3: null`). */
export const EnjoliverBackupResponse = Type.Object({
  copy: Type.Boolean(),
  upload: Type.Boolean(),
  source_fs: Type.String(),
  dest_fs: Type.String(),
  dest_s3: Type.Null(),
  ts: Type.Integer({ description: 'Unix time of the snapshot, in seconds.' }),
  b_size: Type.Integer({ description: 'Bytes written.' }),
})
export const toEnjoliverBackupResponse = (databaseFile: string, snapshot: Snapshot) => ({
  copy: true,
  upload: false,
  source_fs: databaseFile,
  dest_fs: snapshot.file,
  dest_s3: null,
  ts: Math.floor(Date.parse(snapshot.takenAt) / 1000),
  b_size: snapshot.bytes,
})
