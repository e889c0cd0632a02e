import { createHash } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs'
import path from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fetch } from 'undici'
import { KUBERNETES_BINARIES } from '../../core/clusters/member-os.ts'

/**
 * Fills the engine's /assets once, so that machines install without the internet: a Flatcar release
 * (the PXE kernel and initramfs for discovery, the disk image and its signature for flatcar-install)
 * in the release server's layout, Kubernetes system extensions, and on request the Kubernetes
 * binaries Fedora CoreOS members fetch (dl.k8s.io's layout, each checked against its `.sha256`). Every file is checked against the
 * checksums its publisher lists (Flatcar's `<file>.DIGESTS`, SHA-512; a `SHA256SUMS` beside the
 * extensions or a digest given by hand) while it streams to a temporary file, and only a file that
 * matches is renamed into place: a failed or tampered download never lands. Files already in place
 * and matching are kept.
 */

export interface MirrorRequest {
  /** The assets folder (content.assetsDir). */
  dir: string
  channel: string
  /** A release (`4152.2.3`) or `current`, resolved through the release server's `current/version.txt`. */
  flatcarVersion: string
  /** Where `<version>/flatcar_production_*` are, e.g. https://stable.release.flatcar-linux.net/amd64-usr. */
  flatcarBaseUrl: string
  /** Kubernetes versions whose sysext to mirror (`v1.31.8`). */
  kubernetesVersions: string[]
  /** Where `kubernetes-<version>-x86-64.raw` is, e.g. https://extensions.flatcar.org/extensions. */
  sysextBaseUrl: string
  /** A `SHA256SUMS` listing the sysexts; default `<sysextBaseUrl>/SHA256SUMS`. */
  sysextSumsUrl?: string
  /** Digests given by hand, by file name, for extensions that no SHA256SUMS lists. */
  sysextSha256?: Record<string, string>
  /**
   * Also kubeadm, kubelet and kubectl of `kubernetesVersions` for Fedora CoreOS members, from a server
   * in dl.k8s.io's layout (`<baseUrl>/<version>/bin/linux/amd64/<binary>` and `<binary>.sha256`).
   */
  kubernetesBinariesBaseUrl?: string
  /** Told about each file. */
  progress?: (event: { file: string; state: 'downloaded' | 'present'; bytes: number }) => void
}

export interface MirrorResult {
  flatcarVersion: string
  files: { path: string; state: 'downloaded' | 'present'; bytes: number }[]
}

export class MirrorError extends Error {
  constructor(
    readonly code: 'DOWNLOAD_FAILED' | 'CHECKSUM_MISMATCH' | 'CHECKSUM_UNKNOWN',
    message: string,
  ) {
    super(message)
    this.name = 'MirrorError'
  }
}

/** The Flatcar files discovery and flatcar-install fetch from a release folder. */
export const FLATCAR_FILES = ['flatcar_production_pxe.vmlinuz', 'flatcar_production_pxe_image.cpio.gz', 'flatcar_production_image.bin.bz2'] as const

const trimmed = (url: string) => url.replace(/\/+$/, '')

async function fetchText(url: string): Promise<string> {
  const response = await fetch(url).catch((error: Error) => {
    throw new MirrorError('DOWNLOAD_FAILED', `${url}: ${error.message}`)
  })
  if (!response.ok) throw new MirrorError('DOWNLOAD_FAILED', `${url} answered ${response.status}`)
  return response.text()
}

/** The SHA-512 of `file` in a Flatcar `.DIGESTS` file (sections `# MD5 HASH`, `# SHA1 HASH`, `# SHA512 HASH`). */
export function sha512FromDigests(digests: string, file: string): string | undefined {
  let inSha512 = false
  for (const line of digests.split('\n')) {
    if (line.startsWith('#')) {
      inSha512 = /SHA512/i.test(line)
      continue
    }
    const [hash, name] = line.trim().split(/\s+/)
    if (inSha512 && name === file && /^[0-9a-f]{128}$/.test(hash ?? '')) return hash
  }
  return undefined
}

/** The SHA-256 of `file` in a `sha256sum` listing. */
export function sha256FromSums(sums: string, file: string): string | undefined {
  for (const line of sums.split('\n')) {
    const match = /^([0-9a-f]{64})\s+\*?(\S+)$/.exec(line.trim())
    if (match && path.basename(match[2]!) === file) return match[1]
  }
  return undefined
}

function hashOf(file: string, algorithm: 'sha256' | 'sha512'): string {
  return createHash(algorithm).update(readFileSync(file)).digest('hex')
}

/** Downloads `url` to `target` if `target` is not already there with `expected`; checks while streaming. */
async function fetchVerified(url: string, target: string, algorithm: 'sha256' | 'sha512', expected: string | undefined): Promise<{ state: 'downloaded' | 'present'; bytes: number }> {
  if (expected && existsSync(target) && hashOf(target, algorithm) === expected) return { state: 'present', bytes: readFileSync(target).length }
  const response = await fetch(url).catch((error: Error) => {
    throw new MirrorError('DOWNLOAD_FAILED', `${url}: ${error.message}`)
  })
  if (!response.ok || !response.body) throw new MirrorError('DOWNLOAD_FAILED', `${url} answered ${response.status}`)
  mkdirSync(path.dirname(target), { recursive: true })
  const partial = `${target}.partial`
  const hash = createHash(algorithm)
  let bytes = 0
  const counting = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      bytes += chunk.length
      done(null, chunk)
    },
  })
  try {
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), counting, createWriteStream(partial, { mode: 0o644 }))
  } catch (error) {
    rmSync(partial, { force: true })
    throw new MirrorError('DOWNLOAD_FAILED', `${url}: ${(error as Error).message}`)
  }
  const actual = hash.digest('hex')
  if (expected && actual !== expected) {
    rmSync(partial, { force: true })
    throw new MirrorError('CHECKSUM_MISMATCH', `${url}: ${algorithm} ${actual} is not the published ${expected}; nothing was written`)
  }
  renameSync(partial, target)
  return { state: 'downloaded', bytes }
}

function linkTarget(file: string): string | undefined {
  try {
    return readlinkSync(file)
  } catch {
    return undefined
  }
}

export async function mirrorImages(request: MirrorRequest): Promise<MirrorResult> {
  const files: MirrorResult['files'] = []
  const record = (file: string, outcome: { state: 'downloaded' | 'present'; bytes: number }) => {
    files.push({ path: file, ...outcome })
    request.progress?.({ file, ...outcome })
  }
  const flatcarBase = trimmed(request.flatcarBaseUrl)
  let version = request.flatcarVersion
  if (version === 'current') {
    const text = await fetchText(`${flatcarBase}/current/version.txt`)
    const found = /^FLATCAR_VERSION=(\S+)$/m.exec(text)?.[1]
    if (!found) throw new MirrorError('DOWNLOAD_FAILED', `${flatcarBase}/current/version.txt names no FLATCAR_VERSION`)
    version = found
  }
  const channelDir = path.join(request.dir, 'flatcar', request.channel)
  const releaseDir = path.join(channelDir, version)
  for (const name of FLATCAR_FILES) {
    const url = `${flatcarBase}/${version}/${name}`
    const expected = sha512FromDigests(await fetchText(`${url}.DIGESTS`), name)
    if (!expected) throw new MirrorError('CHECKSUM_UNKNOWN', `${url}.DIGESTS lists no SHA-512 for ${name}`)
    record(path.relative(request.dir, path.join(releaseDir, name)), await fetchVerified(url, path.join(releaseDir, name), 'sha512', expected))
  }
  // flatcar-install checks the image's signature with Flatcar's key, and reads version.txt.
  for (const name of ['flatcar_production_image.bin.bz2.sig', 'version.txt']) {
    record(path.relative(request.dir, path.join(releaseDir, name)), await fetchVerified(`${flatcarBase}/${version}/${name}`, path.join(releaseDir, name), 'sha512', undefined))
  }
  // `current` names the release mirrored last, as on the release server.
  const current = path.join(channelDir, 'current')
  if (linkTarget(current) !== version) {
    rmSync(current, { force: true, recursive: true })
    symlinkSync(version, current)
  }

  if (request.kubernetesVersions.length) {
    const sysextBase = trimmed(request.sysextBaseUrl)
    const sumsUrl = request.sysextSumsUrl ?? `${sysextBase}/SHA256SUMS`
    let sums: string | undefined
    for (const kubernetes of request.kubernetesVersions) {
      const name = `kubernetes-${kubernetes}-x86-64.raw`
      let expected = request.sysextSha256?.[name]
      if (!expected) {
        sums ??= await fetchText(sumsUrl).catch(() => '')
        expected = sha256FromSums(sums, name)
      }
      if (!expected) throw new MirrorError('CHECKSUM_UNKNOWN', `no SHA-256 for ${name}: ${sumsUrl} does not list it; give one with --sysext-sha256 ${name}=<hex>`)
      record(path.join('extensions', name), await fetchVerified(`${sysextBase}/${name}`, path.join(request.dir, 'extensions', name), 'sha256', expected))
    }
  }
  if (request.kubernetesBinariesBaseUrl !== undefined) {
    const binariesBase = trimmed(request.kubernetesBinariesBaseUrl)
    for (const kubernetes of request.kubernetesVersions) {
      for (const binary of KUBERNETES_BINARIES) {
        const relative = path.join('kubernetes', kubernetes, 'bin', 'linux', 'amd64', binary)
        const url = `${binariesBase}/${kubernetes}/bin/linux/amd64/${binary}`
        const expected = (await fetchText(`${url}.sha256`)).trim().split(/\s+/)[0]
        if (!expected || !/^[0-9a-f]{64}$/.test(expected)) throw new MirrorError('CHECKSUM_UNKNOWN', `${url}.sha256 holds no SHA-256`)
        record(relative, await fetchVerified(url, path.join(request.dir, relative), 'sha256', expected))
      }
    }
  }
  return { flatcarVersion: version, files }
}
