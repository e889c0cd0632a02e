/**
 * The shape of Ignition config spec 3.0.0 through 3.5.0 as one tree, each key tagged with the minor
 * version that introduced it. The 3.x specs only ever add keys (docs/migrating-configs.md: "any valid
 * 3.N config can be updated to 3.N+1 by changing the version"), so a single annotated tree describes
 * all six without six near-identical copies drifting apart.
 *
 * Also here: the per-version value vocabularies (URL schemes, hash functions, filesystem formats) and
 * the syntax of values several fields share (paths, URLs, hashes). The rules combining them (required
 * sources, duplicates, conflicts, ...) live in ignition-semantics.ts.
 */

/** Minor version of a 3.x.0 spec: 0 for 3.0.0 ... 5 for 3.5.0. */
export type SpecMinor = 0 | 1 | 2 | 3 | 4 | 5

export const LATEST_MINOR: SpecMinor = 5

export type ScalarType = 'string' | 'integer' | 'boolean'

export interface ScalarSpec {
  type: ScalarType
  /** Whether JSON null is accepted; a function when that changed between spec versions. */
  nullable?: boolean | ((minor: SpecMinor) => boolean)
}

export interface ObjectSpec {
  type: 'object'
  props: Record<string, PropSpec>
}

export interface ArraySpec {
  type: 'array'
  items: SpecNode
}

export type SpecNode = ScalarSpec | ObjectSpec | ArraySpec

export interface PropSpec {
  node: SpecNode
  /** Minor version that introduced the key; using it under an older declared version is an error. */
  since: SpecMinor
  required: boolean
}

type PropInput = SpecNode | PropSpec

function isPropSpec(p: PropInput): p is PropSpec {
  return 'node' in p
}

function obj(props: Record<string, PropInput>): ObjectSpec {
  const out: Record<string, PropSpec> = {}
  for (const [key, p] of Object.entries(props)) out[key] = isPropSpec(p) ? p : { node: p, since: 0, required: false }
  return { type: 'object', props: out }
}

function arr(items: SpecNode): ArraySpec {
  return { type: 'array', items }
}

function since(minor: SpecMinor, node: SpecNode): PropSpec {
  return { node, since: minor, required: false }
}

function req(node: SpecNode): PropSpec {
  return { node, since: 0, required: true }
}

const str: ScalarSpec = { type: 'string' }
const nstr: ScalarSpec = { type: 'string', nullable: true }
const int: ScalarSpec = { type: 'integer' }
const nint: ScalarSpec = { type: 'integer', nullable: true }
const nbool: ScalarSpec = { type: 'boolean', nullable: true }
const strList = arr(str)

// 3.3.0 turned these Go fields into pointers (Ignition 2.11.0 release notes), so null became legal.
const nullableFrom33: ScalarSpec['nullable'] = (minor) => minor >= 3

const verification = obj({ hash: nstr })
const httpHeader = obj({ name: req(str), value: nstr })

/**
 * 3.0.0 had three reference types; 3.1.0 unified them into `Resource`, which is how config and CA
 * references gained `compression` and every reference gained `httpHeaders`.
 */
function resource(compressionSince: SpecMinor): ObjectSpec {
  return obj({
    source: nstr,
    compression: since(compressionSince, nstr),
    httpHeaders: since(1, arr(httpHeader)),
    verification,
  })
}

const fileResource = resource(0)
const configResource = resource(1)

const ignition = obj({
  version: req(str),
  config: obj({ merge: arr(configResource), replace: configResource }),
  timeouts: obj({ httpResponseHeaders: nint, httpTotal: nint }),
  security: obj({ tls: obj({ certificateAuthorities: arr(configResource) }) }),
  proxy: since(
    1,
    obj({
      httpProxy: nstr,
      httpsProxy: nstr,
      // 3.4.0 stopped accepting null entries here (Ignition 2.13.0 release notes).
      noProxy: arr({ type: 'string', nullable: (minor) => minor < 4 }),
    }),
  ),
})

const owner = obj({ id: nint, name: nstr })
const node = { path: req(str), overwrite: nbool, user: owner, group: owner } satisfies Record<string, PropInput>

const partition = obj({
  label: nstr,
  number: int,
  sizeMiB: nint,
  startMiB: nint,
  typeGuid: nstr,
  guid: nstr,
  wipePartitionEntry: nbool,
  shouldExist: nbool,
  resize: since(2, nbool),
})

const clevis = obj({
  custom: obj({
    pin: { type: 'string', nullable: nullableFrom33 },
    config: { type: 'string', nullable: nullableFrom33 },
    needsNetwork: nbool,
  }),
  tpm2: nbool,
  tang: arr(obj({ url: req(str), thumbprint: nstr, advertisement: since(4, nstr) })),
  threshold: nint,
})

const storage = obj({
  disks: arr(obj({ device: req(str), wipeTable: nbool, partitions: arr(partition) })),
  raid: arr(
    obj({
      name: req(str),
      level: req({ type: 'string', nullable: nullableFrom33 }),
      devices: req(strList),
      spares: nint,
      options: strList,
    }),
  ),
  filesystems: arr(
    obj({
      device: req(str),
      format: nstr,
      path: nstr,
      wipeFilesystem: nbool,
      label: nstr,
      uuid: nstr,
      options: strList,
      mountOptions: since(1, strList),
    }),
  ),
  files: arr(obj({ ...node, mode: nint, contents: fileResource, append: arr(fileResource) })),
  directories: arr(obj({ ...node, mode: nint })),
  links: arr(obj({ ...node, target: req({ type: 'string', nullable: nullableFrom33 }), hard: nbool })),
  luks: since(
    2,
    arr(
      obj({
        name: req(str),
        device: nstr,
        keyFile: fileResource,
        label: nstr,
        uuid: nstr,
        options: strList,
        wipeVolume: nbool,
        clevis,
        discard: since(4, nbool),
        openOptions: since(4, strList),
        cex: since(5, obj({ enabled: nbool })),
      }),
    ),
  ),
})

const systemd = obj({
  units: arr(
    obj({
      name: req(str),
      enabled: nbool,
      mask: nbool,
      contents: nstr,
      dropins: arr(obj({ name: req(str), contents: nstr })),
    }),
  ),
})

const passwd = obj({
  users: arr(
    obj({
      name: req(str),
      passwordHash: nstr,
      sshAuthorizedKeys: strList,
      uid: nint,
      gecos: nstr,
      homeDir: nstr,
      noCreateHome: nbool,
      primaryGroup: nstr,
      groups: strList,
      noUserGroup: nbool,
      noLogInit: nbool,
      shell: nstr,
      system: nbool,
      shouldExist: since(2, nbool),
    }),
  ),
  groups: arr(
    obj({ name: req(str), gid: nint, passwordHash: nstr, system: nbool, shouldExist: since(2, nbool) }),
  ),
})

export const IGNITION_SPEC: ObjectSpec = obj({
  ignition: req(ignition),
  storage,
  systemd,
  passwd,
  kernelArguments: since(3, obj({ shouldExist: strList, shouldNotExist: strList })),
})

/** URL schemes a `source` may use, by spec (3.2.0 added gs, 3.4.0 added S3 ARNs). */
function urlSchemes(minor: SpecMinor): readonly string[] {
  const schemes = ['http', 'https', 'tftp', 's3', 'data']
  if (minor >= 2) schemes.push('gs')
  if (minor >= 4) schemes.push('arn')
  return schemes
}

/** `verification.hash` functions and their hex digest lengths (3.1.0 added sha256). */
function hashFunctions(minor: SpecMinor): ReadonlyMap<string, number> {
  const fns = new Map([['sha512', 128]])
  if (minor >= 1) fns.set('sha256', 64)
  return fns
}

/** `storage.filesystems[].format` values (3.3.0 added none). */
export function filesystemFormats(minor: SpecMinor): readonly string[] {
  return minor >= 3 ? ['ext4', 'btrfs', 'xfs', 'vfat', 'swap', 'none'] : ['ext4', 'btrfs', 'xfs', 'vfat', 'swap']
}

/** Longest label each mkfs accepts (or silently truncates to); Ignition rejects longer ones up front. */
export const FILESYSTEM_LABEL_MAX: Readonly<Record<string, number>> = { ext4: 16, btrfs: 256, xfs: 12, swap: 15, vfat: 11 }

export const SYSTEMD_UNIT_SUFFIXES: readonly string[] = [
  '.service', '.socket', '.device', '.mount', '.automount', '.swap', '.target', '.path', '.timer', '.snapshot', '.slice', '.scope',
]

/** mdadm level spellings Ignition accepts; the first group cannot have spares. */
export const RAID_LEVELS_NO_SPARES: readonly string[] = ['linear', 'raid0', '0', 'stripe']
export const RAID_LEVELS: readonly string[] = [
  ...RAID_LEVELS_NO_SPARES, 'raid1', '1', 'mirror', 'raid4', '4', 'raid5', '5', 'raid6', '6', 'raid10', '10',
]

// ---------------------------------------------------------------------------------------------------
// Value syntax shared by several fields

/** Go's path.Clean for the absolute paths Ignition accepts. */
export function cleanPath(p: string): string {
  const out: string[] = []
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue
    if (seg === '..') out.pop()
    else out.push(seg)
  }
  return '/' + out.join('/')
}

export function pathError(p: string): string | undefined {
  if (p === '') return 'path not specified'
  if (!p.startsWith('/')) return `path ${JSON.stringify(p)} is not absolute`
  if (cleanPath(p) !== p) return `path ${JSON.stringify(p)} is not fully simplified (expected ${JSON.stringify(cleanPath(p))})`
  return undefined
}

export function urlError(src: string, minor: SpecMinor): string | undefined {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(src)?.[1]?.toLowerCase()
  const allowed = urlSchemes(minor)
  if (scheme === undefined || !allowed.includes(scheme)) {
    return (
      `invalid url scheme ${scheme === undefined ? '(none)' : JSON.stringify(scheme)}; spec 3.${minor}.0 supports ` +
      allowed.join(', ')
    )
  }
  if (scheme === 'data') return dataUrlError(src)
  if (scheme === 'arn') return arnError(src)
  let url: URL
  try {
    url = new URL(src)
  } catch {
    return `unable to parse url ${JSON.stringify(src)}`
  }
  if (scheme === 's3' && url.searchParams.has('versionId') && url.searchParams.get('versionId') === '') {
    return 'invalid S3 object VersionId'
  }
  return undefined
}

export function hashError(hash: string, minor: SpecMinor): string | undefined {
  const dash = hash.indexOf('-')
  if (dash < 0) return `malformed hash specifier ${JSON.stringify(hash)}; expected <function>-<hex digest>`
  const fn = hash.slice(0, dash)
  const sum = hash.slice(dash + 1)
  const fns = hashFunctions(minor)
  const size = fns.get(fn)
  if (size === undefined) {
    return `unrecognized hash function ${JSON.stringify(fn)}; spec 3.${minor}.0 supports ${[...fns.keys()].join(', ')}`
  }
  if (sum.length !== size) return `incorrect size for ${fn} hash sum: expected ${size} hex digits, got ${sum.length}`
  if (!/^[0-9A-Fa-f]+$/.test(sum)) return `${fn} hash sum is not hexadecimal`
  return undefined
}

export function hasInstallSection(contents: string): boolean {
  return /^[ \t]*\[Install\][ \t]*$/m.test(contents)
}

/** RFC 2397: data:[<mediatype>][;base64],<data>, with valid %-escapes and, if flagged, valid base64. */
function dataUrlError(src: string): string | undefined {
  const comma = src.indexOf(',')
  if (comma < 0) return 'invalid data url: missing "," before the data'
  const params = src.slice(5, comma).split(';')
  const base64 = params.length > 1 && params[params.length - 1]!.toLowerCase() === 'base64'
  if (base64) params.pop()
  const [mediaType, ...attrs] = params
  if (mediaType !== '' && !/^[!#$&^_.+\w-]+\/[!#$&^_.+\w-]+$/.test(mediaType!)) return `invalid data url media type ${JSON.stringify(mediaType)}`
  if (attrs.some((a) => !/^[^=]+=.*$/.test(a))) return 'invalid data url media type parameter'
  const data = src.slice(comma + 1)
  if (/%(?![0-9A-Fa-f]{2})/.test(data)) return 'invalid data url: malformed %-escape'
  if (base64) {
    const raw = data.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\s+/g, '')
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(raw) || raw.length % 4 !== 0) return 'invalid data url: illegal base64 data'
  }
  return undefined
}

/** S3 ARN of an object (arn:aws:s3:::bucket/key) or access point object (arn:...:accesspoint/name/object/key). */
function arnError(src: string): string | undefined {
  const [arn = '', query = ''] = src.split('?', 2)
  const parts = arn.split(':')
  if (parts.length < 6 || parts[0] !== 'arn' || parts[2] !== 's3') return 'invalid S3 ARN format'
  const resource = parts.slice(5).join(':')
  const slashes = arn.split('/').length
  if ((resource.startsWith('accesspoint/') && slashes < 3) || slashes < 2) return 'invalid S3 ARN format'
  if (new URLSearchParams(query).get('versionId') === '') return 'invalid S3 object VersionId'
  return undefined
}
