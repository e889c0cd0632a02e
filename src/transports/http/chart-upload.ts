import type {} from '@fastify/multipart'
import type { FastifyRequest } from 'fastify'
import { invalid, tooLarge } from '../../core/errors.ts'

/** A chart as a request brings it: the archive itself, or where to pull it from. */
export type ChartUpload = { kind: 'archive'; archive: Buffer; fields: Record<string, string> } | { kind: 'repository'; repository: string; chart: string; version?: string }

/** Multipart field names that carry the archive: ours, and optikon's. */
const ARCHIVE_FIELDS = ['chart', 'chartTar']

export const GZIP_TYPES = ['application/gzip', 'application/x-gzip', 'application/x-compressed-tar', 'application/x-tgz']

/**
 * Reads a chart from a request: multipart/form-data (the archive in `chart` or optikon's
 * `chartTar`, other fields returned as text), a bare gzip body, or JSON
 * `{repository, chart, version}`. The multipart plugin enforces the size limit; exceeding it is 413.
 */
export async function readChartUpload(request: FastifyRequest): Promise<ChartUpload> {
  if (request.isMultipart()) {
    const fields: Record<string, string> = {}
    let archive: Buffer | undefined
    try {
      for await (const part of request.parts()) {
        if (part.type === 'file') {
          if (!ARCHIVE_FIELDS.includes(part.fieldname)) throw invalid('INVALID_CHART_UPLOAD', `unexpected file field "${part.fieldname}"; send the chart archive as "chart" (or "chartTar")`)
          if (archive) throw invalid('INVALID_CHART_UPLOAD', 'one chart archive per request')
          archive = await part.toBuffer()
        } else {
          fields[part.fieldname] = String(part.value)
        }
      }
    } catch (error) {
      const code = (error as { code?: string }).code
      if (code === 'FST_REQ_FILE_TOO_LARGE') throw tooLarge('CHART_TOO_LARGE', 'the chart archive is larger than releases.maxChartBytes allows')
      if (code === 'FST_PARTS_LIMIT' || code === 'FST_FILES_LIMIT' || code === 'FST_FIELDS_LIMIT') throw invalid('INVALID_CHART_UPLOAD', (error as Error).message)
      if (code === 'FST_INVALID_MULTIPART_CONTENT_TYPE') throw invalid('INVALID_CHART_UPLOAD', 'the multipart body could not be read')
      throw error
    }
    if (!archive) throw invalid('INVALID_CHART_UPLOAD', 'no chart archive in the form; send it as the file field "chart" (or optikon\'s "chartTar")')
    return { kind: 'archive', archive, fields }
  }
  if (Buffer.isBuffer(request.body)) return { kind: 'archive', archive: request.body, fields: {} }
  const body = request.body as { repository?: unknown; chart?: unknown; version?: unknown } | undefined
  if (body && typeof body === 'object' && typeof body.repository === 'string' && typeof body.chart === 'string' && (body.version === undefined || typeof body.version === 'string')) {
    return { kind: 'repository', repository: body.repository, chart: body.chart, ...(typeof body.version === 'string' ? { version: body.version } : {}) }
  }
  throw invalid('INVALID_CHART_UPLOAD', 'send a chart archive (multipart field "chart", or an application/gzip body) or JSON {"repository": "https://...", "chart": "name", "version": "1.2.3"}')
}
