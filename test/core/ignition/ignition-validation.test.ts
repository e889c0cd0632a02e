import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { OFFICIAL_SCHEMA_VERSIONS, officialSchemaFor } from '../../helpers/ignition-schema.ts'
import { SUPPORTED_IGNITION_VERSIONS, validateIgnition, type ValidationReport } from '../../../src/core/ignition/ignition-validation.ts'

// The official schemas are an oracle only: they check nothing but JSON types, so every semantic case
// below must also be caught by the engine's own rules.
const oracle = officialSchemaFor

function schemaAccepts(config: unknown): boolean {
  return oracle(config)(config) === true
}

const sha512 = 'sha512-' + 'ab'.repeat(64)
const sha256 = 'sha256-' + 'e3'.repeat(32)
const b64 = (s: string): string => 'data:;base64,' + Buffer.from(s).toString('base64')
const serviceWithInstall = '[Unit]\nDescription=demo\n[Service]\nExecStart=/usr/bin/true\n[Install]\nWantedBy=multi-user.target\n'

const minimal = (version: string): Record<string, unknown> => ({ ignition: { version } })

const flatcarLike = {
  ignition: { version: '3.4.0' },
  kernelArguments: { shouldExist: ['console=ttyS0,115200n8', 'flatcar.autologin'], shouldNotExist: ['quiet'] },
  passwd: {
    users: [
      { name: 'core', sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKey core@example'], groups: ['sudo', 'docker'] },
      { name: 'deploy', uid: 1500, homeDir: '/home/deploy', shell: '/bin/bash', noCreateHome: false },
    ],
    groups: [{ name: 'ops', gid: 2000, system: false }],
  },
  storage: {
    filesystems: [{ device: '/dev/disk/by-label/ROOT', format: 'ext4', wipeFilesystem: true, label: 'ROOT' }],
    directories: [
      { path: '/opt/bin', mode: 493 },
      { path: '/etc/flatcar', mode: 493, user: { id: 0 }, group: { name: 'root' } },
    ],
    files: [
      { path: '/etc/hostname', mode: 420, overwrite: true, contents: { source: 'data:,node-01%0A' } },
      { path: '/etc/flatcar/update.conf', mode: 420, contents: { source: 'data:,GROUP%3Dstable%0AREBOOT_STRATEGY%3Doff%0A' } },
      { path: '/opt/bin/kubelet', mode: 493, contents: { source: 'https://dl.example.com/v1.30/kubelet', verification: { hash: sha512 } } },
      { path: '/etc/motd', append: [{ source: 'data:,welcome%0A' }, { source: b64('more\n') }] },
      { path: '/etc/sysctl.d/10-k8s.conf', contents: { compression: 'gzip', source: b64('net.ipv4.ip_forward=1\n') } },
      { path: '/etc/empty-marker' },
    ],
    links: [
      { path: '/etc/localtime', target: '/usr/share/zoneinfo/UTC', overwrite: true },
      { path: '/opt/bin/kubelet-hard', target: '/opt/bin/kubelet', hard: true },
      { path: '/etc/extensions/docker.raw', target: '/dev/null' },
    ],
  },
  systemd: {
    units: [
      { name: 'docker.service', enabled: true },
      { name: 'locksmithd.service', mask: true },
      { name: 'kubelet.service', enabled: true, contents: serviceWithInstall },
      { name: 'containerd.service', dropins: [{ name: '10-custom.conf', contents: '[Service]\nLimitNOFILE=1048576\n' }] },
      {
        name: 'var-lib-data.mount',
        enabled: true,
        contents: '[Mount]\nWhat=/dev/disk/by-label/DATA\nWhere=/var/lib/data\nType=ext4\n\n[Install]\nWantedBy=local-fs.target\n',
      },
    ],
  },
}

const fcosLike = {
  ignition: {
    version: '3.3.0',
    config: {
      merge: [
        {
          source: 'https://config.example.com/base.ign',
          httpHeaders: [{ name: 'Authorization', value: 'Bearer abc' }, { name: 'X-Node' }],
          verification: { hash: sha256 },
        },
      ],
    },
    timeouts: { httpResponseHeaders: 20, httpTotal: 600 },
    security: { tls: { certificateAuthorities: [{ source: 'data:,-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A' }] } },
    proxy: { httpProxy: 'http://proxy.example.com:3128', httpsProxy: 'https://proxy.example.com:3129', noProxy: ['localhost', '.example.com'] },
  },
  storage: {
    disks: [
      {
        device: '/dev/disk/by-id/coreos-boot-disk',
        wipeTable: false,
        partitions: [
          { number: 4, label: 'root', sizeMiB: 8192, resize: true },
          { label: 'var', sizeMiB: 0, typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' },
        ],
      },
    ],
    luks: [
      {
        name: 'var',
        device: '/dev/disk/by-partlabel/var',
        label: 'luks-var',
        wipeVolume: true,
        clevis: { tpm2: true, tang: [{ url: 'https://tang.example.com', thumbprint: 'r4Deadbeef' }], threshold: 1 },
      },
    ],
    raid: [{ name: 'md-data', level: 'raid1', devices: ['/dev/disk/by-id/ata-a', '/dev/disk/by-id/ata-b'], spares: 0 }],
    filesystems: [
      { device: '/dev/mapper/var', format: 'xfs', path: '/var', wipeFilesystem: true, label: 'var' },
      { device: '/dev/md/md-data', format: 'ext4', path: '/var/data', mountOptions: ['noatime'], options: ['-E', 'lazy_itable_init=0'] },
      { device: '/dev/disk/by-partlabel/scratch', format: 'none', wipeFilesystem: true },
    ],
    files: [
      {
        path: '/etc/zincati/config.d/55-updates-strategy.toml',
        mode: 420,
        contents: { source: 'data:,%5Bupdates%5D%0Astrategy%3D%22periodic%22%0A' },
        user: { name: 'root' },
        group: { id: 0 },
      },
    ],
  },
  systemd: {
    units: [
      {
        name: 'serial-getty@ttyS0.service',
        dropins: [{ name: 'autologin-core.conf', contents: '[Service]\nExecStart=\nExecStart=-/usr/sbin/agetty --autologin core %I $TERM\n' }],
      },
      { name: 'hello@.service', contents: serviceWithInstall },
      { name: 'hello@world.service', enabled: true },
    ],
  },
  passwd: {
    users: [
      { name: 'core', passwordHash: '$y$j9T$abc$def', sshAuthorizedKeys: ['ssh-rsa AAAAB3Nza core'] },
      { name: 'olduser', shouldExist: false },
    ],
  },
  kernelArguments: { shouldExist: ['mitigations=auto,nosmt'] },
}

const luks35 = {
  ignition: { version: '3.5.0' },
  storage: {
    luks: [
      { name: 'root', device: '/dev/disk/by-partlabel/root', cex: { enabled: true }, discard: true, openOptions: ['--perf-no_read_workqueue'] },
      {
        name: 'data',
        device: '/dev/disk/by-partlabel/data',
        keyFile: { source: 'data:,secret-key-material' },
        clevis: { tang: [{ url: 'http://tang.lan:7500', thumbprint: 'tp', advertisement: '{"payload":"x","signatures":[]}' }] },
      },
      { name: 'custom', device: '/dev/vdc', clevis: { custom: { pin: 'sss', config: '{"t":1,"pins":{"tpm2":{}}}', needsNetwork: false } } },
    ],
  },
}

const spec30 = {
  ignition: {
    version: '3.0.0',
    config: { replace: { source: 'https://example.com/replace.ign', verification: { hash: sha512 } } },
    security: { tls: { certificateAuthorities: [{ source: 'https://example.com/ca.pem' }] } },
  },
  storage: {
    files: [{ path: '/var/example-file', mode: 420, contents: { source: '', compression: '' } }],
    filesystems: [{ path: '/var', device: '/dev/disk/by-label/VAR', format: 'xfs', wipeFilesystem: true, label: 'var' }],
    raid: [{ name: 'data', level: 'raid0', devices: ['/dev/vdb', '/dev/vdc'] }],
  },
  systemd: { units: [{ name: 'example.timer', enabled: false }] },
}

const spec31 = {
  ignition: { version: '3.1.0', proxy: { httpsProxy: 'https://secure.proxy.example.net/' } },
  storage: {
    files: [
      {
        path: '/etc/hosts',
        mode: 420,
        contents: { source: 'tftp://boot.example.com/hosts', verification: { hash: sha256 } },
      },
      { path: '/etc/s3-object', contents: { source: 's3://bucket/key?versionId=abc' } },
    ],
  },
}

const spec32 = {
  ignition: { version: '3.2.0' },
  storage: {
    files: [{ path: '/etc/example', mode: 420, contents: { source: 'gs://bucket/object' } }],
    luks: [{ name: 'static-key-example', device: '/dev/sdb', keyFile: { source: 'data:,REPLACE-THIS' } }],
  },
  passwd: { users: [{ name: 'core', shouldExist: false }], groups: [{ name: 'core', shouldExist: false }] },
}

const spec34arn = {
  ignition: { version: '3.4.0', config: { merge: [{ source: 'arn:aws:s3:us-east-1:123456789012:accesspoint/test/object/some/path/base.ign' }] } },
  storage: { files: [{ path: '/etc/from-s3', contents: { source: 'arn:aws:s3:::bucket/some/key?versionId=abc' } }] },
}

const validCorpus: Record<string, unknown> = {
  ...Object.fromEntries(SUPPORTED_IGNITION_VERSIONS.map((v) => [`minimal ${v}`, minimal(v)])),
  'flatcar-like 3.4.0': flatcarLike,
  'flatcar-like 3.5.0': { ...flatcarLike, ignition: { version: '3.5.0' } },
  'fcos-like 3.3.0': fcosLike,
  'fcos-like 3.4.0': { ...fcosLike, ignition: { ...fcosLike.ignition, version: '3.4.0' } },
  'luks 3.5.0': luks35,
  'spec 3.0.0 references': spec30,
  'spec 3.1.0 proxy/sha256/tftp/s3': spec31,
  'spec 3.2.0 gs/luks/shouldExist': spec32,
  'spec 3.4.0 arn sources': spec34arn,
}

t.test('SUPPORTED_IGNITION_VERSIONS lists every 3.x.0 spec up to 3.5.0', async (t) => {
  t.same(SUPPORTED_IGNITION_VERSIONS, ['3.0.0', '3.1.0', '3.2.0', '3.3.0', '3.4.0', '3.5.0'])
})

t.test('the oracle schemas are loaded and do reject things', async (t) => {
  t.equal(OFFICIAL_SCHEMA_VERSIONS.length, 3)
  t.notOk(schemaAccepts({ ignition: { version: '3.4.0' }, storage: { files: [{ mode: 420 }] } }), 'v3_4 requires files[].path')
  t.notOk(schemaAccepts({ storage: {} }), 'ignition is required')
})

t.test('valid corpus: accepted by the official schema and by validateIgnition, without findings', async (t) => {
  for (const [name, config] of Object.entries(validCorpus)) {
    t.ok(schemaAccepts(config), `${name}: official schema accepts it`)
    const report = validateIgnition(config)
    t.same({ errors: report.errors, warnings: report.warnings }, { errors: [], warnings: [] }, `${name}: no findings`)
    t.equal(report.ok, true, `${name}: ok`)
    t.equal(report.version, (config as { ignition: { version: string } }).ignition.version, `${name}: reports the version`)
  }
})

const matchboxIgnition = new URL('../../fixtures/matchbox/examples/ignition/', import.meta.url)
t.test('real-world configs: the matchbox example .ign fixtures', async (t) => {
  const dir = matchboxIgnition
  const names = readdirSync(dir).filter((n) => n.endsWith('.ign'))
  t.ok(names.length > 0, 'found .ign fixtures')
  for (const name of names) {
    const config = JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as unknown
    t.ok(schemaAccepts(config), `${name}: official schema accepts it`)
    t.same(validateIgnition(config).errors, [], `${name}: no errors`)
  }
})

interface InvalidCase {
  config: unknown
  /** Paths that must each carry an error. */
  errors: string[]
  /** Whether the official schema rejects it too: true for structural cases, false for the semantic ones it cannot see. */
  schemaRejects: boolean
}

const v = (version: string, rest: Record<string, unknown>): Record<string, unknown> => ({ ignition: { version }, ...rest })
const files = (...f: unknown[]) => ({ storage: { files: f } })
const units = (...u: unknown[]) => ({ systemd: { units: u } })

const invalidCorpus: Record<string, InvalidCase> = {
  // Structural: the official schema rejects these as well.
  'root is not an object': { config: [], errors: [''], schemaRejects: true },
  'version missing': { config: { ignition: {} }, errors: ['ignition.version'], schemaRejects: true },
  'ignition missing': { config: { storage: {} }, errors: ['ignition.version'], schemaRejects: true },
  'version not a string': { config: { ignition: { version: 3.4 } }, errors: ['ignition.version'], schemaRejects: true },
  'file without path': { config: v('3.4.0', files({ mode: 420 })), errors: ['storage.files[0].path'], schemaRejects: true },
  'user without name': { config: v('3.4.0', { passwd: { users: [{ uid: 1000 }] } }), errors: ['passwd.users[0].name'], schemaRejects: true },
  'group without name': { config: v('3.5.0', { passwd: { groups: [{ gid: 1 }] } }), errors: ['passwd.groups[0].name'], schemaRejects: true },
  'unit name not a string': { config: v('3.4.0', units({ name: 7 })), errors: ['systemd.units[0].name'], schemaRejects: true },
  'dropin without name': {
    config: v('3.4.0', units({ name: 'a.service', dropins: [{ contents: '' }] })),
    errors: ['systemd.units[0].dropins[0].name'],
    schemaRejects: true,
  },
  'disk without device': { config: v('3.4.0', { storage: { disks: [{ wipeTable: true }] } }), errors: ['storage.disks[0].device'], schemaRejects: true },
  'filesystem without device': {
    config: v('3.4.0', { storage: { filesystems: [{ format: 'ext4' }] } }),
    errors: ['storage.filesystems[0].device'],
    schemaRejects: true,
  },
  'raid without name': {
    config: v('3.4.0', { storage: { raid: [{ level: 'raid1', devices: ['/dev/a'] }] } }),
    errors: ['storage.raid[0].name'],
    schemaRejects: true,
  },
  'http header without name': {
    config: v('3.4.0', { storage: { files: [{ path: '/a', contents: { source: 'https://x/a', httpHeaders: [{ value: 'v' }] } }] } }),
    errors: ['storage.files[0].contents.httpHeaders[0].name'],
    schemaRejects: true,
  },
  'mode as an octal string': { config: v('3.4.0', files({ path: '/a', mode: '0644' })), errors: ['storage.files[0].mode'], schemaRejects: true },
  'enabled as a string': { config: v('3.5.0', units({ name: 'a.service', enabled: 'yes' })), errors: ['systemd.units[0].enabled'], schemaRejects: true },
  'fractional timeout': { config: { ignition: { version: '3.4.0', timeouts: { httpTotal: 1.5 } } }, errors: ['ignition.timeouts.httpTotal'], schemaRejects: true },
  'storage as an array': { config: v('3.4.0', { storage: [] }), errors: ['storage'], schemaRejects: true },
  'kernel arguments as a string': {
    config: v('3.4.0', { kernelArguments: { shouldExist: 'quiet' } }),
    errors: ['kernelArguments.shouldExist'],
    schemaRejects: true,
  },
  'ssh key not a string': {
    config: v('3.4.0', { passwd: { users: [{ name: 'core', sshAuthorizedKeys: ['ssh-rsa A', 5] }] } }),
    errors: ['passwd.users[0].sshAuthorizedKeys[1]'],
    schemaRejects: true,
  },
  'partition number null': {
    config: v('3.4.0', { storage: { disks: [{ device: '/dev/vda', partitions: [{ number: null, label: 'x' }] }] } }),
    errors: ['storage.disks[0].partitions[0].number'],
    schemaRejects: true,
  },
  'noProxy null entry (3.4 forbids)': {
    config: { ignition: { version: '3.4.0', proxy: { noProxy: [null] } } },
    errors: ['ignition.proxy.noProxy[0]'],
    schemaRejects: true,
  },
  // Version handling.
  'spec 2.3.0': { config: { ignition: { version: '2.3.0' } }, errors: ['ignition.version'], schemaRejects: false },
  'spec 2.2.0 with its own keys': {
    config: { ignition: { version: '2.2.0' }, networkd: { units: [] } },
    errors: ['ignition.version'],
    schemaRejects: false,
  },
  'spec 1': { config: { ignitionVersion: 1 }, errors: ['ignitionVersion'], schemaRejects: true },
  'unsupported 3.6.0': { config: minimal('3.6.0'), errors: ['ignition.version'], schemaRejects: false },
  'unsupported 4.0.0': { config: minimal('4.0.0'), errors: ['ignition.version'], schemaRejects: false },
  'unsupported patch 3.4.1': { config: minimal('3.4.1'), errors: ['ignition.version'], schemaRejects: false },
  'experimental 3.5.0-experimental': { config: minimal('3.5.0-experimental'), errors: ['ignition.version'], schemaRejects: false },
  'unparseable version': { config: minimal('latest'), errors: ['ignition.version'], schemaRejects: false },
  // Keys from a later spec than declared.
  'kernelArguments before 3.3.0': {
    config: v('3.2.0', { kernelArguments: { shouldExist: ['quiet'] } }),
    errors: ['kernelArguments'],
    schemaRejects: false,
  },
  'luks before 3.2.0': { config: v('3.1.0', { storage: { luks: [] } }), errors: ['storage.luks'], schemaRejects: false },
  'luks discard before 3.4.0': {
    config: v('3.3.0', { storage: { luks: [{ name: 'a', device: '/dev/a', discard: true }] } }),
    errors: ['storage.luks[0].discard'],
    schemaRejects: false,
  },
  'tang advertisement before 3.4.0': {
    config: v('3.3.0', { storage: { luks: [{ name: 'a', device: '/dev/a', clevis: { tang: [{ url: 'http://t', thumbprint: 'x', advertisement: '{}' }] } }] } }),
    errors: ['storage.luks[0].clevis.tang[0].advertisement'],
    schemaRejects: false,
  },
  'cex before 3.5.0': {
    config: v('3.4.0', { storage: { luks: [{ name: 'a', device: '/dev/a', cex: { enabled: true } }] } }),
    errors: ['storage.luks[0].cex'],
    schemaRejects: false,
  },
  'proxy before 3.1.0': { config: { ignition: { version: '3.0.0', proxy: {} } }, errors: ['ignition.proxy'], schemaRejects: false },
  'http headers before 3.1.0': {
    config: v('3.0.0', files({ path: '/a', contents: { source: 'https://x/a', httpHeaders: [{ name: 'A', value: 'b' }] } })),
    errors: ['storage.files[0].contents.httpHeaders'],
    schemaRejects: false,
  },
  'config compression before 3.1.0': {
    config: { ignition: { version: '3.0.0', config: { merge: [{ source: 'https://x/a.ign.gz', compression: 'gzip' }] } } },
    errors: ['ignition.config.merge[0].compression'],
    schemaRejects: false,
  },
  'mountOptions before 3.1.0': {
    config: v('3.0.0', { storage: { filesystems: [{ device: '/dev/a', format: 'ext4', mountOptions: ['ro'] }] } }),
    errors: ['storage.filesystems[0].mountOptions'],
    schemaRejects: false,
  },
  'partition resize before 3.2.0': {
    config: v('3.1.0', { storage: { disks: [{ device: '/dev/a', partitions: [{ number: 1, resize: true }] }] } }),
    errors: ['storage.disks[0].partitions[0].resize'],
    schemaRejects: false,
  },
  'user shouldExist before 3.2.0': {
    config: v('3.1.0', { passwd: { users: [{ name: 'core', shouldExist: false }] } }),
    errors: ['passwd.users[0].shouldExist'],
    schemaRejects: false,
  },
  'format none before 3.3.0': {
    config: v('3.2.0', { storage: { filesystems: [{ device: '/dev/a', format: 'none' }] } }),
    errors: ['storage.filesystems[0].format'],
    schemaRejects: false,
  },
  'sha256 before 3.1.0': {
    config: v('3.0.0', files({ path: '/a', contents: { source: 'https://x/a', verification: { hash: sha256 } } })),
    errors: ['storage.files[0].contents.verification.hash'],
    schemaRejects: false,
  },
  'gs:// before 3.2.0': { config: v('3.1.0', files({ path: '/a', contents: { source: 'gs://b/o' } })), errors: ['storage.files[0].contents.source'], schemaRejects: false },
  'arn: before 3.4.0': {
    config: v('3.3.0', files({ path: '/a', contents: { source: 'arn:aws:s3:::bucket/key' } })),
    errors: ['storage.files[0].contents.source'],
    schemaRejects: false,
  },
  // Semantic rules the schema cannot express.
  'relative file path': { config: v('3.4.0', files({ path: 'etc/hosts' })), errors: ['storage.files[0].path'], schemaRejects: false },
  'empty file path': { config: v('3.4.0', files({ path: '' })), errors: ['storage.files[0].path'], schemaRejects: false },
  'unclean directory path': {
    config: v('3.4.0', { storage: { directories: [{ path: '/etc//foo/' }] } }),
    errors: ['storage.directories[0].path'],
    schemaRejects: false,
  },
  'dot-dot link path': {
    config: v('3.4.0', { storage: { links: [{ path: '/etc/../x', target: '/y' }] } }),
    errors: ['storage.links[0].path'],
    schemaRejects: false,
  },
  'relative filesystem path': {
    config: v('3.4.0', { storage: { filesystems: [{ device: '/dev/a', format: 'ext4', path: 'var' }] } }),
    errors: ['storage.filesystems[0].path'],
    schemaRejects: false,
  },
  'relative disk device': { config: v('3.4.0', { storage: { disks: [{ device: 'sda' }] } }), errors: ['storage.disks[0].device'], schemaRejects: false },
  'duplicate file path': { config: v('3.4.0', files({ path: '/a' }, { path: '/a' })), errors: ['storage.files[1]'], schemaRejects: false },
  'duplicate path across file and link': {
    config: v('3.4.0', { storage: { files: [{ path: '/etc/a' }], links: [{ path: '/etc/a', target: '/b' }] } }),
    errors: ['storage.links[0]'],
    schemaRejects: false,
  },
  'duplicate path across directory and file': {
    config: v('3.4.0', { storage: { files: [{ path: '/etc/a' }], directories: [{ path: '/etc/a' }] } }),
    errors: ['storage.directories[0]'],
    schemaRejects: false,
  },
  'file below a link': {
    config: v('3.4.0', { storage: { files: [{ path: '/opt/app/conf' }], links: [{ path: '/opt/app', target: '/srv/app' }] } }),
    errors: ['storage.files[0].path'],
    schemaRejects: false,
  },
  'file shadowing a systemd unit': {
    config: v('3.4.0', { ...files({ path: '/etc/systemd/system/a.service' }), ...units({ name: 'a.service', contents: serviceWithInstall }) }),
    errors: ['storage.files[0].path'],
    schemaRejects: false,
  },
  'mode above 07777': { config: v('3.4.0', files({ path: '/a', mode: 0o10000 })), errors: ['storage.files[0].mode'], schemaRejects: false },
  'negative directory mode': {
    config: v('3.4.0', { storage: { directories: [{ path: '/a', mode: -1 }] } }),
    errors: ['storage.directories[0].mode'],
    schemaRejects: false,
  },
  'overwrite without contents source': {
    config: v('3.4.0', files({ path: '/a', overwrite: true })),
    errors: ['storage.files[0].overwrite'],
    schemaRejects: false,
  },
  'ftp source': { config: v('3.4.0', files({ path: '/a', contents: { source: 'ftp://x/a' } })), errors: ['storage.files[0].contents.source'], schemaRejects: false },
  'source without scheme': {
    config: v('3.4.0', files({ path: '/a', append: [{ source: '/local/file' }] })),
    errors: ['storage.files[0].append[0].source'],
    schemaRejects: false,
  },
  'broken base64 data url': {
    config: v('3.4.0', files({ path: '/a', contents: { source: 'data:text/plain;base64,not*base64' } })),
    errors: ['storage.files[0].contents.source'],
    schemaRejects: false,
  },
  'data url without comma': { config: v('3.4.0', files({ path: '/a', contents: { source: 'data:hello' } })), errors: ['storage.files[0].contents.source'], schemaRejects: false },
  'empty s3 versionId': {
    config: v('3.4.0', files({ path: '/a', contents: { source: 's3://b/k?versionId=' } })),
    errors: ['storage.files[0].contents.source'],
    schemaRejects: false,
  },
  'non-s3 arn': {
    config: v('3.5.0', files({ path: '/a', contents: { source: 'arn:aws:iam::123456789012:user/x' } })),
    errors: ['storage.files[0].contents.source'],
    schemaRejects: false,
  },
  'CA with bad scheme': {
    config: { ignition: { version: '3.4.0', security: { tls: { certificateAuthorities: [{ source: 'file:///ca.pem' }] } } } },
    errors: ['ignition.security.tls.certificateAuthorities[0].source'],
    schemaRejects: false,
  },
  'merge without source': {
    config: { ignition: { version: '3.4.0', config: { merge: [{ verification: { hash: sha512 } }] } } },
    errors: ['ignition.config.merge[0].source'],
    schemaRejects: false,
  },
  'replace with bad scheme': {
    config: { ignition: { version: '3.4.0', config: { replace: { source: 'git://x/y' } } } },
    errors: ['ignition.config.replace.source'],
    schemaRejects: false,
  },
  'duplicate CA source': {
    config: { ignition: { version: '3.4.0', security: { tls: { certificateAuthorities: [{ source: 'https://x/ca' }, { source: 'https://x/ca' }] } } } },
    errors: ['ignition.security.tls.certificateAuthorities[1]'],
    schemaRejects: false,
  },
  'unknown hash function': {
    config: v('3.4.0', files({ path: '/a', contents: { source: 'https://x/a', verification: { hash: 'md5-' + '0'.repeat(32) } } })),
    errors: ['storage.files[0].contents.verification.hash'],
    schemaRejects: false,
  },
  'short sha512': {
    config: v('3.4.0', files({ path: '/a', contents: { source: 'https://x/a', verification: { hash: 'sha512-abc' } } })),
    errors: ['storage.files[0].contents.verification.hash'],
    schemaRejects: false,
  },
  'hash without function': {
    config: v('3.4.0', files({ path: '/a', contents: { source: 'https://x/a', verification: { hash: 'ab'.repeat(64) } } })),
    errors: ['storage.files[0].contents.verification.hash'],
    schemaRejects: false,
  },
  'non-hex sha256': {
    config: v('3.4.0', files({ path: '/a', contents: { source: 'https://x/a', verification: { hash: 'sha256-' + 'zz'.repeat(32) } } })),
    errors: ['storage.files[0].contents.verification.hash'],
    schemaRejects: false,
  },
  'bzip2 compression': {
    config: v('3.4.0', files({ path: '/a', contents: { source: 'https://x/a.bz2', compression: 'bzip2' } })),
    errors: ['storage.files[0].contents.compression'],
    schemaRejects: false,
  },
  'headers on a data url': {
    config: v('3.4.0', files({ path: '/a', contents: { source: 'data:,x', httpHeaders: [{ name: 'A', value: 'b' }] } })),
    errors: ['storage.files[0].contents.httpHeaders'],
    schemaRejects: false,
  },
  'duplicate and empty http headers': {
    config: {
      ignition: {
        version: '3.4.0',
        config: { merge: [{ source: 'https://x/a.ign', httpHeaders: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }, { name: '' }] }] },
      },
    },
    errors: ['ignition.config.merge[0].httpHeaders[1]', 'ignition.config.merge[0].httpHeaders[2].name'],
    schemaRejects: false,
  },
  'negative timeout': { config: { ignition: { version: '3.4.0', timeouts: { httpResponseHeaders: -1 } } }, errors: ['ignition.timeouts.httpResponseHeaders'], schemaRejects: false },
  'ftp proxy': { config: { ignition: { version: '3.4.0', proxy: { httpProxy: 'ftp://p' } } }, errors: ['ignition.proxy.httpProxy'], schemaRejects: false },
  'unit without a type suffix': { config: v('3.4.0', units({ name: 'docker' })), errors: ['systemd.units[0].name'], schemaRejects: false },
  'unit with a bogus suffix': { config: v('3.4.0', units({ name: 'docker.conf' })), errors: ['systemd.units[0].name'], schemaRejects: false },
  'dropin without .conf': {
    config: v('3.4.0', units({ name: 'docker.service', dropins: [{ name: '10-x.service' }] })),
    errors: ['systemd.units[0].dropins[0].name'],
    schemaRejects: false,
  },
  'duplicate dropins': {
    config: v('3.4.0', units({ name: 'docker.service', dropins: [{ name: 'a.conf' }, { name: 'a.conf' }] })),
    errors: ['systemd.units[0].dropins[1]'],
    schemaRejects: false,
  },
  'duplicate units': { config: v('3.4.0', units({ name: 'a.service' }, { name: 'a.service', enabled: true })), errors: ['systemd.units[1]'], schemaRejects: false },
  'duplicate users': { config: v('3.4.0', { passwd: { users: [{ name: 'core' }, { name: 'core' }] } }), errors: ['passwd.users[1]'], schemaRejects: false },
  'duplicate groups': { config: v('3.4.0', { passwd: { groups: [{ name: 'ops' }, { name: 'ops' }] } }), errors: ['passwd.groups[1]'], schemaRejects: false },
  'duplicate ssh keys': {
    config: v('3.4.0', { passwd: { users: [{ name: 'core', sshAuthorizedKeys: ['ssh-rsa A', 'ssh-rsa A'] }] } }),
    errors: ['passwd.users[0].sshAuthorizedKeys[1]'],
    schemaRejects: false,
  },
  'duplicate disks': { config: v('3.4.0', { storage: { disks: [{ device: '/dev/vda' }, { device: '/dev/vda' }] } }), errors: ['storage.disks[1]'], schemaRejects: false },
  'duplicate filesystems': {
    config: v('3.4.0', { storage: { filesystems: [{ device: '/dev/vda1', format: 'ext4' }, { device: '/dev/vda1', format: 'xfs' }] } }),
    errors: ['storage.filesystems[1]'],
    schemaRejects: false,
  },
  'unknown filesystem format': {
    config: v('3.4.0', { storage: { filesystems: [{ device: '/dev/a', format: 'ntfs' }] } }),
    errors: ['storage.filesystems[0].format'],
    schemaRejects: false,
  },
  'filesystem path without format': {
    config: v('3.4.0', { storage: { filesystems: [{ device: '/dev/a', path: '/var', label: 'VAR' }] } }),
    errors: ['storage.filesystems[0].format', 'storage.filesystems[0].label'],
    schemaRejects: false,
  },
  'xfs label too long': {
    config: v('3.4.0', { storage: { filesystems: [{ device: '/dev/a', format: 'xfs', label: 'much-too-long-label' }] } }),
    errors: ['storage.filesystems[0].label'],
    schemaRejects: false,
  },
  'link without target (3.4)': { config: v('3.4.0', { storage: { links: [{ path: '/a' }] } }), errors: ['storage.links[0].target'], schemaRejects: false },
  'link with empty target': { config: v('3.4.0', { storage: { links: [{ path: '/a', target: '' }] } }), errors: ['storage.links[0].target'], schemaRejects: false },
  'hard link to a directory': {
    config: v('3.4.0', { storage: { directories: [{ path: '/srv' }], links: [{ path: '/a', target: '/srv', hard: true }] } }),
    errors: ['storage.links[0]'],
    schemaRejects: false,
  },
  'owner by id and name': {
    config: v('3.4.0', files({ path: '/a', user: { id: 0, name: 'root' } })),
    errors: ['storage.files[0].user'],
    schemaRejects: false,
  },
  'raid without level (3.4)': { config: v('3.4.0', { storage: { raid: [{ name: 'md', devices: ['/dev/a'] }] } }), errors: ['storage.raid[0].level'], schemaRejects: false },
  'raid without devices (3.4)': { config: v('3.4.0', { storage: { raid: [{ name: 'md', level: 'raid1' }] } }), errors: ['storage.raid[0].devices'], schemaRejects: false },
  'raid with empty devices': {
    config: v('3.4.0', { storage: { raid: [{ name: 'md', level: 'raid1', devices: [] }] } }),
    errors: ['storage.raid[0].devices'],
    schemaRejects: false,
  },
  'unknown raid level': {
    config: v('3.4.0', { storage: { raid: [{ name: 'md', level: 'raid7', devices: ['/dev/a'] }] } }),
    errors: ['storage.raid[0].level'],
    schemaRejects: false,
  },
  'spares on raid0': {
    config: v('3.4.0', { storage: { raid: [{ name: 'md', level: 'raid0', devices: ['/dev/a', '/dev/b'], spares: 1 }] } }),
    errors: ['storage.raid[0].level'],
    schemaRejects: false,
  },
  'partition problems': {
    config: v('3.4.0', {
      storage: {
        disks: [
          {
            device: '/dev/vda',
            partitions: [
              { number: 1, label: 'a:b', startMiB: 1, sizeMiB: 100 },
              { number: 1, label: 'c', guid: 'not-a-guid' },
              { number: 2, startMiB: 50, sizeMiB: 100 },
            ],
          },
        ],
      },
    }),
    errors: [
      'storage.disks[0].partitions[0].label',
      'storage.disks[0].partitions[1]',
      'storage.disks[0].partitions[1].guid',
      'storage.disks[0].partitions',
    ],
    schemaRejects: false,
  },
  'luks problems': {
    config: v('3.4.0', {
      storage: {
        luks: [
          { name: 'a/b', clevis: { tpm2: true, custom: { pin: 'tpm2' } } },
          { name: 'c', device: '/dev/c', clevis: { tang: [{ url: 'ftp://tang', thumbprint: '' }] } },
        ],
      },
    }),
    errors: [
      'storage.luks[0].name',
      'storage.luks[0].device',
      'storage.luks[0].clevis',
      'storage.luks[0].clevis.custom.config',
      'storage.luks[1].clevis.tang[0].url',
      'storage.luks[1].clevis.tang[0].thumbprint',
    ],
    schemaRejects: false,
  },
  'kernel argument both wanted and unwanted': {
    config: v('3.3.0', { kernelArguments: { shouldExist: ['quiet'], shouldNotExist: ['quiet'] } }),
    errors: ['kernelArguments.shouldNotExist[0]'],
    schemaRejects: false,
  },
  'every finding is reported, not only the first': {
    config: v('3.4.0', {
      storage: { files: [{ path: 'a' }, { path: '/b', mode: 99999 }], links: [{ path: '/c' }] },
      systemd: { units: [{ name: 'x' }] },
      passwd: { users: [{ name: 'u' }, { name: 'u' }] },
    }),
    errors: ['storage.files[0].path', 'storage.files[1].mode', 'storage.links[0].target', 'systemd.units[0].name', 'passwd.users[1]'],
    schemaRejects: false,
  },
}

t.test('invalid corpus: rejected with findings at the expected paths', async (t) => {
  for (const [name, c] of Object.entries(invalidCorpus)) {
    const report = validateIgnition(c.config)
    t.equal(report.ok, false, `${name}: rejected`)
    const paths = report.errors.map((e) => e.path)
    for (const p of c.errors) t.ok(paths.includes(p), `${name}: error at ${JSON.stringify(p)}`, { found: report.errors })
    t.equal(!schemaAccepts(c.config), c.schemaRejects, `${name}: official schema ${c.schemaRejects ? 'rejects' : 'accepts'} it`)
  }
})

t.test('version-specific messages', async (t) => {
  const spec2 = validateIgnition(minimal('2.3.0'))
  t.match(spec2.errors[0]?.message, /spec 2 .*not supported.*(ign-converter|Butane)/)
  t.equal(spec2.version, undefined)
  t.match(validateIgnition(minimal('3.6.0')).errors[0]?.message, /3\.0\.0, 3\.1\.0, 3\.2\.0, 3\.3\.0, 3\.4\.0, 3\.5\.0/)
  t.match(validateIgnition(v('3.2.0', { kernelArguments: {} })).errors[0]?.message, /introduced in spec 3\.3\.0/)
})

function findingsAt(report: ValidationReport, kind: 'errors' | 'warnings'): string[] {
  return report[kind].map((f) => f.path)
}

t.test('warnings do not fail validation', async (t) => {
  const unknown = validateIgnition({ ignition: { version: '3.4.0', extra: 1 }, storage: { files: [{ path: '/a', Mode: 420 }] }, networkd: {} })
  t.equal(unknown.ok, true)
  t.same(findingsAt(unknown, 'warnings').sort(), ['ignition.extra', 'networkd', 'storage.files[0].Mode'])
  t.match(unknown.warnings.find((w) => w.path === 'storage.files[0].Mode')?.message, /did you mean mode/)

  const setuid = validateIgnition(v('3.4.0', files({ path: '/usr/local/bin/tool', mode: 0o4755 })))
  t.equal(setuid.ok, true)
  t.same(findingsAt(setuid, 'warnings'), ['storage.files[0].mode'])

  const decimalTypo = validateIgnition(v('3.4.0', files({ path: '/a', mode: 644 })))
  t.match(decimalTypo.warnings[0]?.message, /did you mean 0644, which is 420/)

  const hardOwner = validateIgnition(v('3.4.0', { storage: { links: [{ path: '/a', target: '/b', hard: true, user: { id: 1 } }] } }))
  t.equal(hardOwner.ok, true)
  t.same(findingsAt(hardOwner, 'warnings'), ['storage.links[0].user.id'])

  const proxy = validateIgnition({ ignition: { version: '3.4.0', proxy: { httpsProxy: 'http://p:3128' } } })
  t.equal(proxy.ok, true)
  t.same(findingsAt(proxy, 'warnings'), ['ignition.proxy.httpsProxy'])

  const noInstall = validateIgnition(v('3.4.0', units({ name: 'a.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n' })))
  t.equal(noInstall.ok, true)
  t.same(findingsAt(noInstall, 'warnings'), ['systemd.units[0].contents'])
})

t.test('the structural walk reports a wrong type once, not again as a semantic error', async (t) => {
  const report = validateIgnition(v('3.4.0', files({ path: 42 })))
  t.same(report.errors.map((e) => e.path), ['storage.files[0].path'])
})

// Agreement: wrong-typed values anywhere in a valid config. Whatever the official schema rejects, we must reject.
const wrongValues: unknown[] = [null, true, 7, 1.5, 'text', [], {}, ['text'], [{}]]

function* mutations(value: unknown, path: Array<string | number> = []): Generator<{ path: Array<string | number>; replacement: unknown }> {
  if (path.length > 0) for (const replacement of wrongValues) yield { path, replacement }
  if (Array.isArray(value)) for (let i = 0; i < value.length; i++) yield* mutations(value[i], [...path, i])
  else if (value !== null && typeof value === 'object') for (const [k, child] of Object.entries(value)) yield* mutations(child, [...path, k])
}

function pathOf(segments: Array<string | number>): string {
  return segments.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('')
}

function mutate(config: unknown, path: Array<string | number>, replacement: unknown): unknown {
  const copy = structuredClone(config) as Record<string | number, unknown>
  let node = copy
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>
  node[path[path.length - 1]!] = replacement
  return copy
}

t.test('agreement with the official schema on type mutations of valid configs', async (t) => {
  const agreementCorpus = ['flatcar-like 3.4.0', 'flatcar-like 3.5.0', 'fcos-like 3.3.0', 'fcos-like 3.4.0', 'luks 3.5.0']
  let tried = 0
  let schemaRejected = 0
  const disagreements: string[] = []
  const repeated: string[] = []
  for (const name of agreementCorpus) {
    const base = validCorpus[name]
    for (const m of mutations(base)) {
      if (tried >= 20000) break
      tried++
      const mutated = mutate(base, m.path, m.replacement)
      const report = validateIgnition(mutated)
      const label = `${name}: ${m.path.join('.')} = ${JSON.stringify(m.replacement)}`
      // One bad value is one finding at its path: a type error must not be echoed by a semantic rule.
      const at = report.errors.filter((e) => e.path === pathOf(m.path))
      if (at.length > 1) repeated.push(`${label}: ${at.map((e) => e.message).join(' | ')}`)
      if (schemaAccepts(mutated)) continue
      schemaRejected++
      if (report.ok) disagreements.push(label)
    }
  }
  t.ok(tried > 1000, `tried ${tried} mutations`)
  t.ok(schemaRejected > 500, `official schema rejected ${schemaRejected} of them`)
  t.same(disagreements, [], 'validateIgnition rejects every mutation the official schema rejects')
  t.same(repeated, [], 'no mutated value is reported twice')
})
