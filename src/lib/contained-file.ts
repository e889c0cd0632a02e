import { realpath, stat } from 'node:fs/promises'
import path from 'node:path'

export type ContainedFile =
  | { ok: true; realPath: string }
  | { ok: false; problem: 'missing' | 'not-a-file' }
  | { ok: false; problem: 'outside' | 'unresolvable'; detail: string }

const MISSING_PATH_CODES = new Set(['ENOENT', 'ENOTDIR'])

/** True when `realCandidate` is strictly inside `realFolder` (both already resolved by realpath). */
export function isInsideFolder(realFolder: string, realCandidate: string): boolean {
  const folderWithSeparator = realFolder.endsWith(path.sep) ? realFolder : realFolder + path.sep
  return realCandidate.startsWith(folderWithSeparator)
}

/**
 * The one containment rule of every file server in the engine (HTTP /assets and /pxe, TFTP): a clean
 * relative path (callers refuse `..` first) is resolved with realpath, and the real file must lie
 * inside the real folder, so a symlink cannot lead out. With `trustTopLevelLinks`, a link directly in
 * the folder may point anywhere: for the distribution's iPXE folder only (Debian ships
 * `/usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi`), which only root can change.
 */
export async function resolveContainedFile(folder: string, relativePath: string, options: { trustTopLevelLinks?: boolean } = {}): Promise<ContainedFile> {
  let realFolder: string
  let realCandidate: string
  try {
    realFolder = await realpath(folder)
    realCandidate = await realpath(path.join(realFolder, relativePath))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? ''
    if (MISSING_PATH_CODES.has(code)) return { ok: false, problem: 'missing' }
    // ELOOP, EACCES...: something is there but cannot be resolved safely
    return { ok: false, problem: 'unresolvable', detail: code }
  }
  const trusted = options.trustTopLevelLinks === true && !relativePath.includes('/')
  if (!trusted && !isInsideFolder(realFolder, realCandidate)) return { ok: false, problem: 'outside', detail: `resolves outside ${folder} (symlink)` }
  const stats = await stat(realCandidate).catch(() => undefined)
  if (stats === undefined) return { ok: false, problem: 'missing' }
  if (!stats.isFile()) return { ok: false, problem: 'not-a-file' }
  return { ok: true, realPath: realCandidate }
}
