import {
  FILESYSTEM_LABEL_MAX,
  RAID_LEVELS,
  RAID_LEVELS_NO_SPARES,
  SYSTEMD_UNIT_SUFFIXES,
  cleanPath,
  filesystemFormats,
  hasInstallSection,
  hashError,
  pathError,
  urlError,
  type SpecMinor,
} from './ignition-spec.ts'
import { child, int, isTrue, items, missing, nonEmpty, str, strings, type Findings, type Obj } from './findings.ts'
import { INVALID, join } from './ignition-structure.ts'

/**
 * The second validation pass: the semantic rules Ignition applies in its `Validate()` methods
 * (required sources, duplicates, conflicting paths, value syntax, ...). It runs over the structural
 * pass's pruned copy, so every value it reads is either well-typed, absent, or INVALID.
 */

const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const GUID = /^(|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$/
const SYSTEMD_DIR = '/etc/systemd/system/'
const NODE_NOUN = { files: 'file', directories: 'directory', links: 'link' } as const
const encoder = new TextEncoder()

export class Semantics {
  constructor(
    private readonly minor: SpecMinor,
    private readonly f: Findings,
  ) {}

  run(root: Obj): void {
    this.ignition(child(root, 'ignition'))
    this.storage(child(root, 'storage'), child(root, 'systemd'))
    this.systemd(child(root, 'systemd'))
    this.passwd(child(root, 'passwd'))
    const kargs = child(root, 'kernelArguments')
    // Ignition keeps both lists in one duplicate set: an argument may appear once across the two.
    const seen = new Map<string, string>()
    for (const list of ['shouldExist', 'shouldNotExist']) {
      strings(kargs, list).forEach((arg, i) => this.unique(seen, arg, `kernelArguments.${list}[${i}]`, 'kernel argument'))
    }
  }

  private ignition(ign: Obj | undefined): void {
    const config = child(ign, 'config')
    const merges = new Map<string, string>()
    items(config, 'merge').forEach((r, i) => {
      const p = `ignition.config.merge[${i}]`
      this.resource(r, p, true)
      this.unique(merges, str(r, 'source'), p, 'config source')
    })
    // replace is a struct in Ignition, not a pointer: an empty one means "no replacement".
    const replace = child(config, 'replace')
    const replacing =
      str(replace, 'source') !== undefined ||
      nonEmpty(str(replace, 'compression')) ||
      str(child(replace, 'verification'), 'hash') !== undefined ||
      items(replace, 'httpHeaders').length > 0
    this.resource(replace, 'ignition.config.replace', replacing)

    const timeouts = child(ign, 'timeouts')
    for (const k of ['httpResponseHeaders', 'httpTotal']) {
      if ((int(timeouts, k) ?? 0) < 0) this.f.error(`ignition.timeouts.${k}`, `${k} must not be negative`)
    }

    const cas = new Map<string, string>()
    items(child(child(ign, 'security'), 'tls'), 'certificateAuthorities').forEach((r, i) => {
      const p = `ignition.security.tls.certificateAuthorities[${i}]`
      this.resource(r, p, true)
      this.unique(cas, str(r, 'source'), p, 'certificate authority source')
    })

    const proxy = child(ign, 'proxy')
    this.proxyUrl(str(proxy, 'httpProxy'), 'ignition.proxy.httpProxy', true)
    this.proxyUrl(str(proxy, 'httpsProxy'), 'ignition.proxy.httpsProxy', false)
    const noProxy = new Map<string, string>()
    strings(proxy, 'noProxy').forEach((h, i) => this.unique(noProxy, h, `ignition.proxy.noProxy[${i}]`, 'noProxy entry'))
  }

  private proxyUrl(url: string | undefined, path: string, httpOk: boolean): void {
    if (!nonEmpty(url)) return
    let scheme: string
    try {
      scheme = new URL(url).protocol
    } catch {
      this.f.error(path, `unable to parse proxy url ${JSON.stringify(url)}`)
      return
    }
    if (scheme !== 'http:' && scheme !== 'https:') this.f.error(path, 'proxies must be http(s)')
    else if (scheme === 'http:' && !httpOk) this.f.warn(path, 'insecure plaintext HTTP proxy specified for HTTPS resources')
  }

  /** The checks of Ignition's Resource.Validate, shared by every remote reference. */
  private resource(r: Obj | undefined, path: string, sourceRequired: boolean): void {
    if (!r) return
    const source = str(r, 'source')
    if (sourceRequired && missing(r, 'source')) this.f.error(join(path, 'source'), 'source is required')
    if (nonEmpty(source)) {
      const err = urlError(source, this.minor)
      if (err) this.f.error(join(path, 'source'), err)
    }
    const compression = str(r, 'compression')
    if (compression !== undefined && compression !== '' && compression !== 'gzip') {
      this.f.error(join(path, 'compression'), `invalid compression method ${JSON.stringify(compression)}; only "gzip" is supported`)
    }
    const hash = str(child(r, 'verification'), 'hash')
    if (hash !== undefined) {
      const err = hashError(hash, this.minor)
      if (err) this.f.error(join(path, 'verification.hash'), err)
      // Ignition only treats an absent source as "no source"; an empty string is an empty file.
      else if (r['source'] === undefined || r['source'] === null) {
        this.f.error(join(path, 'verification.hash'), 'source must be specified if verification is specified')
      }
    }
    const headers = items(r, 'httpHeaders')
    const seen = new Map<string, string>()
    headers.forEach((h, i) => {
      const name = str(h, 'name')
      const hp = `${path}.httpHeaders[${i}]`
      if (name === '') this.f.error(`${hp}.name`, "HTTP header name can't be empty")
      else if (name !== undefined && !HTTP_TOKEN.test(name)) this.f.error(`${hp}.name`, `invalid HTTP header name ${JSON.stringify(name)}`)
      if (/[\r\n\0]/.test(str(h, 'value') ?? '')) this.f.error(`${hp}.value`, 'HTTP header value must not contain CR, LF or NUL')
      this.unique(seen, name, hp, 'HTTP header')
    })
    if (headers.length > 0 && r['source'] !== INVALID) {
      const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(source ?? '')?.[1]?.toLowerCase()
      if (scheme !== 'http' && scheme !== 'https') {
        this.f.error(join(path, 'httpHeaders'), 'cannot use HTTP headers with this source scheme (only http and https)')
      }
    }
  }

  /** Reports `key` at `path` when an earlier entry (recorded in `seen`) used the same key. */
  private unique(seen: Map<string, string>, key: string | undefined, path: string, what: string): void {
    if (key === undefined) return
    const first = seen.get(key)
    if (first !== undefined) this.f.error(path, `duplicate entry defined: ${what} ${JSON.stringify(key)} is already defined at ${first}`)
    else seen.set(key, path)
  }

  private storage(storage: Obj | undefined, systemd: Obj | undefined): void {
    this.disks(storage)
    this.raids(storage)
    this.filesystems(storage)
    this.luks(storage)

    const nodePaths = new Map<string, string>()
    const links = items(storage, 'links')
    const linkPaths = links.map((l) => str(l, 'path')).filter(nonEmpty)
    const dirPaths = new Set(items(storage, 'directories').map((d) => str(d, 'path')).filter(nonEmpty))
    const unitPaths = new Set<string>()
    for (const u of items(systemd, 'units')) {
      const name = str(u, 'name')
      if (name === undefined) continue
      if (nonEmpty(str(u, 'contents'))) unitPaths.add(SYSTEMD_DIR + name)
      for (const d of items(u, 'dropins')) {
        if (nonEmpty(str(d, 'contents')) && str(d, 'name') !== undefined) unitPaths.add(`${SYSTEMD_DIR}${name}.d/${str(d, 'name')}`)
      }
    }

    for (const kind of ['files', 'directories', 'links'] as const) {
      items(storage, kind).forEach((n, i) => {
        if (!n) return
        const p = `storage.${kind}[${i}]`
        // A missing or mistyped path was already reported by the structural pass.
        const path = str(n, 'path')
        if (path !== undefined) {
          const err = pathError(path)
          if (err) this.f.error(`${p}.path`, err)
          this.unique(nodePaths, path, p, 'path')
          if (linkPaths.some((l) => path.startsWith(l + '/'))) this.f.error(`${p}.path`, `${NODE_NOUN[kind]} path includes link in config`)
          if (unitPaths.has(path)) this.f.error(`${p}.path`, 'path conflicts with systemd unit or dropin')
        }
        for (const who of ['user', 'group']) {
          const owner = child(n, who)
          if (int(owner, 'id') !== undefined && nonEmpty(str(owner, 'name'))) this.f.error(`${p}.${who}`, 'cannot set both id and name')
        }
        if (kind !== 'links') this.mode(n, p)
        if (kind === 'files') {
          const contents = child(n, 'contents')
          this.resource(contents, `${p}.contents`, false)
          items(n, 'append').forEach((r, j) => this.resource(r, `${p}.append[${j}]`, false))
          const source = contents?.['source']
          if (isTrue(n, 'overwrite') && n['contents'] !== INVALID && (source === undefined || source === null)) {
            this.f.error(`${p}.overwrite`, 'overwrite must be false if contents.source is unspecified')
          }
        }
        if (kind === 'links') this.link(n, p, dirPaths)
      })
    }
  }

  private mode(n: Obj, p: string): void {
    const mode = int(n, 'mode')
    if (mode === undefined) return
    if (mode < 0 || mode > 0o7777) {
      this.f.error(`${p}.mode`, `illegal file mode ${mode}: must be between 0 and 4095 (07777), written in decimal`)
    } else if ((mode & 0o7000) !== 0) {
      // The usual cause is an octal mode written as a decimal number (644 instead of 420).
      const typo = /^[0-7]{3}$/.test(String(mode)) ? `; did you mean 0${mode}, which is ${parseInt(String(mode), 8)} in decimal?` : ''
      // Ignition before 2.22 dropped these bits silently; 2.22+ warns for every spec before 3.6.0-experimental.
      this.f.warn(`${p}.mode`, `setuid/setgid/sticky bits are not supported in spec 3.${this.minor}.0 and may be ignored${typo}`)
    }
  }

  private link(l: Obj, p: string, dirPaths: Set<string>): void {
    const target = str(l, 'target')
    if (l['target'] !== undefined && missing(l, 'target')) this.f.error(`${p}.target`, 'link target is required')
    if (!nonEmpty(target) || !isTrue(l, 'hard')) return
    if (target.startsWith('/') && dirPaths.has(cleanPath(target))) this.f.error(p, 'hard link target is a directory')
    for (const who of ['user', 'group']) {
      for (const k of ['id', 'name']) {
        const v = child(l, who)?.[k]
        if (v !== undefined && v !== null) this.f.warn(`${p}.${who}.${k}`, 'user/group ignored for hard link')
      }
    }
  }

  private disks(storage: Obj | undefined): void {
    const devices = new Map<string, string>()
    items(storage, 'disks').forEach((d, i) => {
      if (!d) return
      const p = `storage.disks[${i}]`
      const device = str(d, 'device')
      if (device !== undefined) {
        const err = device === '' ? 'disk device is required' : pathError(device)
        if (err) this.f.error(`${p}.device`, err)
      }
      this.unique(devices, device, p, 'disk device')
      this.partitions(items(d, 'partitions'), `${p}.partitions`)
    })
  }

  private partitions(parts: Array<Obj | undefined>, p: string): void {
    const keys = new Map<string, string>()
    const labels = new Map<string, string>()
    let hasZero = false
    let hasAbsent = false
    parts.forEach((part, i) => {
      if (!part) return
      const pp = `${p}[${i}]`
      if (part['number'] === INVALID || part['label'] === INVALID) return
      const number = int(part, 'number') ?? 0
      const label = str(part, 'label')
      const absent = part['shouldExist'] === false
      hasZero ||= number === 0
      hasAbsent ||= absent
      const others = ['label', 'typeGuid', 'guid', 'startMiB', 'sizeMiB'].filter((k) => part[k] !== undefined && part[k] !== null && part[k] !== '')
      if (absent && others.length > 0) this.f.error(pp, `shouldExist specified false with other options also specified (${others.join(', ')})`)
      if (number === 0 && label === undefined) this.f.error(pp, 'a partition number >= 1 or a label must be specified')
      if (label !== undefined) {
        if (encoder.encode(label).length > 36) this.f.error(`${pp}.label`, 'partition labels may not exceed 36 characters')
        if (label.includes(':')) this.f.error(`${pp}.label`, 'partition label will be truncated to text before the colon')
        this.unique(labels, label, `${pp}.label`, 'partition label')
      }
      for (const k of ['guid', 'typeGuid']) {
        const g = str(part, k)
        if (g !== undefined && !GUID.test(g)) this.f.error(`${pp}.${k}`, `doesn't match the form "01234567-89AB-CDEF-EDCB-A98765432101"`)
      }
      this.unique(keys, number !== 0 ? `number ${number}` : label !== undefined ? `label ${label}` : undefined, pp, 'partition')
    })
    if (hasZero && hasAbsent) this.f.error(p, 'shouldExist is false for a partition and other partition(s) have number 0')
    // Same rule as Ignition: only partitions with an explicit, non-zero start can be compared without disk geometry.
    const placed = parts
      .map((part) => ({ start: int(part, 'startMiB'), size: int(part, 'sizeMiB') }))
      .filter((x): x is { start: number; size: number } => x.start !== undefined && x.size !== undefined && x.start !== 0)
      .map(({ start, size }) => ({ start, end: size === 0 ? start : start + size - 1 }))
    const overlap = placed.some((a, i) => placed.some((b, j) => i !== j && a.start <= b.end && b.start <= a.end))
    if (overlap) this.f.error(p, 'partitions overlap')
  }

  private raids(storage: Obj | undefined): void {
    const names = new Map<string, string>()
    items(storage, 'raid').forEach((r, i) => {
      if (!r) return
      const p = `storage.raid[${i}]`
      this.unique(names, str(r, 'name'), p, 'raid name')
      const level = str(r, 'level')
      if (r['level'] !== undefined && missing(r, 'level')) this.f.error(`${p}.level`, 'raid level is required')
      else if (level !== undefined && !RAID_LEVELS.includes(level)) this.f.error(`${p}.level`, `unrecognized raid level ${JSON.stringify(level)}`)
      else if (level !== undefined && RAID_LEVELS_NO_SPARES.includes(level) && (int(r, 'spares') ?? 0) !== 0) {
        this.f.error(`${p}.level`, 'spares unsupported for linear and raid0 arrays')
      }
      const devices = strings(r, 'devices')
      if (Array.isArray(r['devices']) && devices.length === 0) this.f.error(`${p}.devices`, 'raid devices required')
      const seen = new Map<string, string>()
      devices.forEach((d, j) => {
        const err = d === undefined ? undefined : pathError(d)
        if (err) this.f.error(`${p}.devices[${j}]`, err)
        this.unique(seen, d, `${p}.devices[${j}]`, 'raid device')
      })
    })
  }

  private filesystems(storage: Obj | undefined): void {
    const devices = new Map<string, string>()
    const formats = filesystemFormats(this.minor)
    items(storage, 'filesystems').forEach((fs, i) => {
      if (!fs) return
      const p = `storage.filesystems[${i}]`
      const device = str(fs, 'device')
      const deviceErr = device === undefined ? undefined : pathError(device)
      if (deviceErr) this.f.error(`${p}.device`, deviceErr)
      this.unique(devices, device, p, 'filesystem device')
      const path = str(fs, 'path')
      const pathErr = nonEmpty(path) ? pathError(path) : undefined
      if (pathErr) this.f.error(`${p}.path`, pathErr)
      if (fs['format'] !== INVALID) this.filesystemFormat(fs, p, formats)
    })
  }

  private filesystemFormat(fs: Obj, p: string, formats: readonly string[]): void {
    const format = str(fs, 'format')
    const label = str(fs, 'label')
    if (!nonEmpty(format)) {
      const set = ['path', 'label', 'uuid'].filter((k) => nonEmpty(str(fs, k)))
      if (isTrue(fs, 'wipeFilesystem')) set.push('wipeFilesystem')
      for (const k of ['options', 'mountOptions']) if (strings(fs, k).length > 0) set.push(k)
      if (set.length > 0) this.f.error(`${p}.format`, `format cannot be empty when ${set.join(', ')} is specified`)
      if (nonEmpty(label)) this.f.error(`${p}.label`, 'filesystem must specify format if label is specified')
    } else if (!formats.includes(format)) {
      this.f.error(`${p}.format`, `invalid filesystem format ${JSON.stringify(format)}; spec 3.${this.minor}.0 supports ${formats.join(', ')}`)
    } else if (nonEmpty(label) && encoder.encode(label).length > (FILESYSTEM_LABEL_MAX[format] ?? Infinity)) {
      this.f.error(`${p}.label`, `filesystem labels cannot be longer than ${FILESYSTEM_LABEL_MAX[format]} characters when using ${format}`)
    }
  }

  private luks(storage: Obj | undefined): void {
    const names = new Map<string, string>()
    items(storage, 'luks').forEach((l, i) => {
      if (!l) return
      const p = `storage.luks[${i}]`
      const name = str(l, 'name')
      if (name?.includes('/')) this.f.error(`${p}.name`, 'device names cannot contain slashes')
      this.unique(names, name, p, 'luks name')
      const device = str(l, 'device')
      const deviceErr = nonEmpty(device) ? pathError(device) : missing(l, 'device') ? 'luks device is required' : undefined
      if (deviceErr) this.f.error(`${p}.device`, deviceErr)
      if (encoder.encode(str(l, 'label') ?? '').length > 47) this.f.error(`${p}.label`, 'luks device labels cannot be longer than 47 characters')
      this.resource(child(l, 'keyFile'), `${p}.keyFile`, false)

      const clevis = child(l, 'clevis')
      const custom = child(clevis, 'custom')
      if (!missing(custom, 'pin') || !missing(custom, 'config') || isTrue(custom, 'needsNetwork')) {
        if (missing(custom, 'pin')) this.f.error(`${p}.clevis.custom.pin`, 'missing required custom clevis pin')
        if (missing(custom, 'config')) this.f.error(`${p}.clevis.custom.config`, 'missing required custom clevis config')
        if (isTrue(clevis, 'tpm2') || items(clevis, 'tang').length > 0 || (int(clevis, 'threshold') ?? 0) !== 0) {
          this.f.error(`${p}.clevis`, 'cannot use custom clevis config with tpm2, tang, or threshold')
        }
      }
      const urls = new Map<string, string>()
      items(clevis, 'tang').forEach((t, j) => {
        if (!t) return
        const tp = `${p}.clevis.tang[${j}]`
        const url = str(t, 'url')
        let scheme: string | undefined
        try {
          scheme = new URL(url ?? '').protocol
        } catch {
          scheme = undefined
        }
        if (url !== undefined && scheme !== 'http:' && scheme !== 'https:') this.f.error(`${tp}.url`, 'tang url must be a valid http(s) URL')
        this.unique(urls, url, tp, 'tang server')
        if (missing(t, 'thumbprint')) this.f.error(`${tp}.thumbprint`, 'thumbprint is required')
        const ad = str(t, 'advertisement')
        if (nonEmpty(ad)) {
          try {
            JSON.parse(ad)
          } catch {
            this.f.error(`${tp}.advertisement`, 'advertisement is not valid JSON')
          }
        }
      })
    })
  }

  private systemd(systemd: Obj | undefined): void {
    const units = items(systemd, 'units')
    const names = new Map<string, string>()
    const templates = new Map<string, Obj>()
    for (const u of units) {
      const name = str(u, 'name')
      if (u && name?.includes('@.')) templates.set(name, u)
    }
    units.forEach((u, i) => {
      if (!u) return
      const p = `systemd.units[${i}]`
      const name = str(u, 'name')
      if (name === undefined) return
      if (!SYSTEMD_UNIT_SUFFIXES.some((s) => name.endsWith(s))) {
        this.f.error(`${p}.name`, `invalid systemd unit extension in ${JSON.stringify(name)}; expected one of ${SYSTEMD_UNIT_SUFFIXES.join(' ')}`)
      }
      this.unique(names, name, p, 'unit')
      const contents = str(u, 'contents')
      if (isTrue(u, 'enabled') && nonEmpty(contents) && !hasInstallSection(contents)) {
        this.f.warn(`${p}.contents`, `unit ${JSON.stringify(name)} is enabled, but has no install section so enable does nothing`)
      }
      const at = name.indexOf('@')
      const template = at > 0 && !name.includes('@.') ? templates.get(name.slice(0, at + 1) + name.slice(name.lastIndexOf('.'))) : undefined
      const templateContents = str(template, 'contents')
      if (isTrue(u, 'enabled') && !nonEmpty(contents) && nonEmpty(templateContents) && !hasInstallSection(templateContents)) {
        this.f.warn(`${p}.contents`, `template unit ${JSON.stringify(str(template, 'name'))} for ${JSON.stringify(name)} doesn't have Install section`)
      }
      const dropins = new Map<string, string>()
      items(u, 'dropins').forEach((d, j) => {
        const dn = str(d, 'name')
        if (dn !== undefined && !dn.endsWith('.conf')) this.f.error(`${p}.dropins[${j}].name`, 'invalid systemd drop-in extension; must end with .conf')
        this.unique(dropins, dn, `${p}.dropins[${j}]`, 'drop-in')
      })
    })
  }

  private passwd(passwd: Obj | undefined): void {
    const users = new Map<string, string>()
    items(passwd, 'users').forEach((u, i) => {
      const p = `passwd.users[${i}]`
      this.unique(users, str(u, 'name'), p, 'user')
      const keys = new Map<string, string>()
      strings(u, 'sshAuthorizedKeys').forEach((k, j) => this.unique(keys, k, `${p}.sshAuthorizedKeys[${j}]`, 'SSH key'))
      const groups = new Map<string, string>()
      strings(u, 'groups').forEach((g, j) => this.unique(groups, g, `${p}.groups[${j}]`, 'supplementary group'))
    })
    const groups = new Map<string, string>()
    items(passwd, 'groups').forEach((g, i) => this.unique(groups, str(g, 'name'), `passwd.groups[${i}]`, 'group'))
  }
}
