import { createReadStream, promises as fs } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { SlipwayError, invalid, notFound } from '../../../../core/errors.ts'
import { resolveContainedFile } from '../../../../lib/contained-file.ts'
import { publicAccess } from '../../../../core/access/route-policy.ts'

/** Registered with fastify's `prefix` option (e.g. `/assets`): routes here are relative to it. */
export interface StaticFilesOptions {
  /** The folder served under it; nothing outside it is ever served. */
  dir: string
  /** What the folder holds, for error messages ("asset", "iPXE binary"). */
  noun: string
  /**
   * Links directly in the folder may point outside it: for the distribution's iPXE folder only
   * (Debian ships `/usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi`), which only root can change.
   */
  trustTopLevelLinks?: boolean
}

const CONTENT_TYPES: Record<string, string> = {
  '.ipxe': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.ign': 'application/json',
  '.sig': 'application/pgp-signature',
  '.asc': 'application/pgp-signature',
}

/**
 * Read-only files under a prefix: `/assets/*` (kernels, initrds, images) and `/pxe/*` (iPXE binaries
 * for UEFI HTTP boot). Contained twice: the decoded path may not climb out, and the real path (after
 * symlinks) must stay inside the real root, so a link cannot serve /etc/passwd. Range requests let
 * iPXE and installers resume and fetch images in parts.
 */
export async function staticFileRoutes(app: FastifyInstance, options: StaticFilesOptions): Promise<void> {
  // Booting machines fetch kernels, initrds and iPXE binaries with no credential.
  app.get('/*', { config: { access: publicAccess() }, schema: { hide: true } }, async (request, reply) => {
    const relative = (request.params as { '*': string })['*']
    const file = await resolveContained(options.dir, relative, options.noun, options.trustTopLevelLinks)
    const stat = await fs.stat(file)
    const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`
    reply
      .header('Accept-Ranges', 'bytes')
      .header('ETag', etag)
      .header('Last-Modified', stat.mtime.toUTCString())
      .type(CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream')
    if (request.headers['if-none-match'] === etag) return reply.status(304).send()

    const rangeHeader = request.headers.range
    const ifRange = request.headers['if-range']
    if (rangeHeader && (!ifRange || ifRange === etag)) {
      const range = parseRange(rangeHeader, stat.size)
      if (range === 'unsatisfiable') {
        return reply.status(416).header('Content-Range', `bytes */${stat.size}`).send()
      }
      if (range) {
        reply.status(206).header('Content-Range', `bytes ${range.start}-${range.end}/${stat.size}`).header('Content-Length', range.end - range.start + 1)
        return reply.send(request.method === 'HEAD' ? '' : createReadStream(file, range))
      }
    }
    reply.header('Content-Length', stat.size)
    return reply.send(request.method === 'HEAD' ? '' : createReadStream(file))
  })
}

/** Maps a request path to a file inside `root`, or throws a 4xx that says why not. */
export async function resolveContained(root: string, relative: string, noun: string, trustTopLevelLinks = false): Promise<string> {
  const segments = relative.split('/')
  if (relative.includes('\0') || segments.some((segment) => segment === '..' || segment === '.') || relative.includes('\\')) {
    throw invalid('PATH_NOT_ALLOWED', `${noun} paths may not contain "..", "." or backslash segments`)
  }
  const file = await resolveContainedFile(root, segments.join('/'), { trustTopLevelLinks })
  if (file.ok) return file.realPath
  if (file.problem === 'outside') throw new SlipwayError('forbidden', 'PATH_NOT_ALLOWED', `${noun} "${relative}" resolves outside its folder`)
  throw notFound('FILE_NOT_FOUND', `${noun} "${relative}" does not exist`)
}

/**
 * One byte range (RFC 9110 14.1.2): `a-b`, `a-` or `-n`. Several ranges are answered with the whole
 * file, which the RFC allows and every client handles.
 */
export function parseRange(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  let start: number
  let end: number
  if (match[1] === '') {
    const suffix = Number(match[2])
    if (suffix === 0) return 'unsatisfiable'
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(match[1])
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
    if (end < start && match[2] !== '') return undefined
  }
  if (start >= size || size === 0) return 'unsatisfiable'
  return { start, end }
}
