import { resolveContainedFile } from '../../lib/contained-file.ts'

/**
 * Which file a TFTP name maps to, and whether it may be served.
 *
 * Rules (what PXE users expect from tftpd-hpa --secure and dnsmasq):
 * - Names are relative to the served folders; a leading `/` is dropped, so `/undionly.kpxe` and
 *   `undionly.kpxe` are the same file and `/etc/passwd` means `<folder>/etc/passwd`.
 * - `\` is a separator too: configurations written for Windows servers use it.
 * - Any segment starting with `..` is refused (access violation) rather than resolved: `..` itself is
 *   traversal, and `..x` names are what a decoded `..%2f` trick looks like.
 * - Only printable ASCII names are served; anything else is refused.
 * - The optional `root` folder is searched before `ipxeDir`: names in root win, so an operator can
 *   override a Debian iPXE binary (e.g. one with an embedded script) by dropping a file in root.
 * - After symlinks are resolved (realpath), the file must still be inside the real path of the folder
 *   it was found in; a link that leaves it is refused, not followed and not skipped. One exception: a
 *   link at the top level of `ipxeDir` may point anywhere, because that folder is the distribution's
 *   (Debian ships `/usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi`) and only root can change it.
 */

/** RFC 1350 error codes used for refused reads. */
export const TFTP_FILE_NOT_FOUND = 1
export const TFTP_ACCESS_VIOLATION = 2

export type RequestedName =
  | { ok: true; relativePath: string }
  | { ok: false; errorCode: typeof TFTP_FILE_NOT_FOUND | typeof TFTP_ACCESS_VIOLATION; reason: string }

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/

/** Turns the name a client asked for into a clean relative path, or says why it is refused. */
export function normalizeRequestedName(requestedName: string): RequestedName {
  if (!PRINTABLE_ASCII.test(requestedName)) {
    return { ok: false, errorCode: TFTP_ACCESS_VIOLATION, reason: 'name has control or non-ASCII characters' }
  }
  const segments = requestedName
    .replaceAll('\\', '/')
    .split('/')
    .filter((segment) => segment !== '' && segment !== '.')
  if (segments.some((segment) => segment.startsWith('..'))) {
    return { ok: false, errorCode: TFTP_ACCESS_VIOLATION, reason: 'name refers to a parent folder (..)' }
  }
  if (segments.length === 0) {
    return { ok: false, errorCode: TFTP_FILE_NOT_FOUND, reason: 'name is empty or names a folder' }
  }
  return { ok: true, relativePath: segments.join('/') }
}

/** Folders searched for a name, in precedence order (root first, then ipxeDir). */
export function servedFolders(folders: { ipxeDir: string; root?: string | undefined }): string[] {
  return folders.root === undefined ? [folders.ipxeDir] : [folders.root, folders.ipxeDir]
}

export type ServedFile =
  | { ok: true; realPath: string; folder: string }
  | { ok: false; errorCode: typeof TFTP_FILE_NOT_FOUND | typeof TFTP_ACCESS_VIOLATION; reason: string }

/**
 * Resolves a requested name to a real, contained, regular file in the first folder that has it.
 * A symlink escaping its folder refuses the request instead of falling through to the next folder:
 * such a link is a configuration hazard the operator should hear about.
 */
export async function resolveServedFile(
  requestedName: string,
  folders: { ipxeDir: string; root?: string | undefined },
): Promise<ServedFile> {
  const name = normalizeRequestedName(requestedName)
  if (!name.ok) return name

  for (const folder of servedFolders(folders)) {
    const file = await resolveContainedFile(folder, name.relativePath, { trustTopLevelLinks: folder === folders.ipxeDir })
    if (file.ok) return { ok: true, realPath: file.realPath, folder }
    switch (file.problem) {
      case 'missing':
        continue
      case 'not-a-file':
        return { ok: false, errorCode: TFTP_FILE_NOT_FOUND, reason: 'not a regular file' }
      case 'outside':
        return { ok: false, errorCode: TFTP_ACCESS_VIOLATION, reason: file.detail }
      case 'unresolvable':
        return { ok: false, errorCode: TFTP_ACCESS_VIOLATION, reason: `cannot resolve in ${folder}: ${file.detail}` }
    }
  }
  return { ok: false, errorCode: TFTP_FILE_NOT_FOUND, reason: 'no such file' }
}
