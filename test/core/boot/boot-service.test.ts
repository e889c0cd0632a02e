import { readFileSync } from 'node:fs'
import t from 'tap'
import { BootService, type BootRequest } from '../../../src/core/boot/boot-service.ts'
import { Catalog, type CatalogSource } from '../../../src/core/boot/catalog.ts'
import type { Group } from '../../../src/core/selection/group.ts'
import type { Profile } from '../../../src/core/selection/profile.ts'
import type { Template } from '../../../src/core/boot/template.ts'
import { labelsFromQuery } from '../../../src/core/selection/labels.ts'
import { validateWithOfficialSchema } from '../../helpers/ignition-schema.ts'

const ipxeTemplates: Template[] = [
  { kind: 'ipxe', id: 'boot.ipxe', body: readFileSync(new URL('../../../ipxe/boot.ipxe', import.meta.url), 'utf8') },
  { kind: 'ipxe', id: 'profile.ipxe', body: readFileSync(new URL('../../../ipxe/profile.ipxe', import.meta.url), 'utf8') },
]

/** A fixed in-memory catalog: the core is tested without any storage. */
function service(groups: Group[], profiles: Profile[], templates: Template[]) {
  const catalog = new Catalog(groups, profiles, [...ipxeTemplates, ...templates])
  const source: CatalogSource = { current: () => catalog }
  return new BootService(source)
}

const request = (query: string): BootRequest => ({ labels: labelsFromQuery(new URLSearchParams(query)), rawQuery: query, engineUrl: 'http://10.0.0.1:8080' })
const group = (id: string, profile: string, selector: Record<string, string> = {}, metadata: Record<string, unknown> = {}): Group => ({ id, name: id, profile, selector, metadata })

const installProfile: Profile = {
  id: 'install',
  name: 'install',
  ignition_id: 'install.json',
  generic_id: 'hello.txt',
  boot: { kernel: '/assets/vmlinuz', initrd: ['/assets/initrd.img', '--name main /assets/extra.img'], args: ['initrd=initrd.img', 'ignition.config.url={{engine.url}}/ignition?mac=${mac:hexhyp}', 'console=ttyS0'] },
}
const installTemplate: Template = {
  kind: 'ignition',
  id: 'install.json',
  body: '{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/hostname","mode":420,"contents":{"source":"{{dataUrl hostname}}"}},{"path":"/etc/note","contents":{"source":"data:,{{note}}"}}]}}',
}

t.test('iPXE: chain script keeps the booting NIC and the profile script lists kernel, args and every initrd', async (t) => {
  const boot = service([group('g', 'install', { mac: '52:54:00:00:00:01' }, { hostname: 'h' })], [installProfile], [])
  const chain = boot.chainScript(request(''))
  t.match(chain, /^#!ipxe\n/)
  t.match(chain, /chain ipxe\?uuid=\$\{uuid\}&mac=\$\{mac:hexhyp\}&domain=\$\{domain\}&hostname=\$\{hostname\}&serial=\$\{serial\}/)
  t.notMatch(chain, /\$\{net0/, 'never the first NIC: the one iPXE booted from')
  const script = boot.ipxeScript(request('mac=52-54-00-00-00-01'))
  t.match(script, /^#!ipxe\n/)
  t.match(script, /\nkernel \/assets\/vmlinuz initrd=initrd.img ignition.config.url=http:\/\/10.0.0.1:8080\/ignition\?mac=\$\{mac:hexhyp\} console=ttyS0\n/)
  t.match(script, /\ninitrd \/assets\/initrd.img\ninitrd --name main \/assets\/extra.img\nboot\n?$/)
  t.notMatch(script, /&amp;/, 'no HTML escaping')
})

t.test('Ignition: rendered with metadata, request labels and engine URL; valid against the official schema', async (t) => {
  const boot = service([group('g', 'install', { mac: '52:54:00:00:00:01' }, { hostname: 'node-1', note: 'a&b<c>' })], [installProfile], [installTemplate])
  const rendered = boot.ignition(request('mac=52:54:00:00:00:01'))
  t.equal(rendered.version, '3.4.0')
  const config = JSON.parse(rendered.body)
  t.equal(config.storage.files[0].contents.source, 'data:,node-1')
  t.equal(config.storage.files[1].contents.source, 'data:,a&b<c>', 'not HTML-escaped')
  const official = validateWithOfficialSchema(config)
  t.ok(official.ok, official.errors.join('; '))
})

t.test('a template referring to a missing variable is a 5xx-kind error naming the template, not an empty value', async (t) => {
  const boot = service([group('g', 'install', {}, { note: 'x' })], [installProfile], [installTemplate])
  const error = t.throws(() => boot.ignition(request('mac=52:54:00:00:00:01'))) as unknown as { kind: string; code: string; message: string; details: Record<string, unknown> }
  t.equal(error.kind, 'configuration')
  t.equal(error.code, 'TEMPLATE_RENDER_FAILED')
  t.equal(error.details.template, 'ignition/install.json')
  t.match(error.message, /dataUrl.*not defined \(line 1, column \d+\)/)
  const plain = service([group('g', 'install')], [{ ...installProfile, ignition_id: 'plain.json' }], [
    { kind: 'ignition', id: 'plain.json', body: '{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/x","contents":{"source":"data:,{{missing.value}}"}}]}}' },
  ])
  t.throws(() => plain.ignition(request('')), { code: 'TEMPLATE_RENDER_FAILED', message: /"value" not defined \(line 1, column \d+\)/ })
})

t.test('an invalid Ignition config is never served: the report names the template and the failing paths', async (t) => {
  const broken: Template = {
    kind: 'ignition',
    id: 'install.json',
    body: '{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"relative/path","contents":{"source":"data:,x"}},{"path":"/etc/a","mode":"644"}]}}',
  }
  const boot = service([group('g', 'install')], [installProfile], [broken])
  const error = t.throws(() => boot.ignition(request(''))) as unknown as { code: string; details: { template: string; errors: { path: string }[] } }
  t.equal(error.code, 'IGNITION_INVALID')
  t.equal(error.details.template, 'ignition/install.json')
  const paths = error.details.errors.map((finding) => finding.path)
  t.ok(paths.includes('storage.files[0].path'), `paths: ${paths.join(', ')}`)
  t.ok(paths.includes('storage.files[1].mode'), `paths: ${paths.join(', ')}`)

  const notJson: Template = { kind: 'ignition', id: 'install.json', body: '{"ignition": {"version": "3.4.0"},}' }
  t.throws(() => service([group('g', 'install')], [installProfile], [notJson]).ignition(request('')), { code: 'IGNITION_NOT_JSON' })
  const wrongVersion: Template = { kind: 'ignition', id: 'install.json', body: '{"ignition": {"version": "2.2.0"}}' }
  t.throws(() => service([group('g', 'install')], [installProfile], [wrongVersion]).ignition(request('')), { code: 'IGNITION_INVALID' })
})

t.test('raw .ign files are served as they are (validated), Butane YAML is refused with advice', async (t) => {
  const raw: Template = { kind: 'ignition', id: 'plain.ign', body: '{"ignition":{"version":"3.3.0"},"systemd":{"units":[{"name":"x.service","contents":"{{not a template}}"}]}}' }
  const rawProfile: Profile = { id: 'raw', name: 'raw', ignition_id: 'plain.ign' }
  const boot = service([group('g', 'raw')], [rawProfile], [raw])
  t.same(JSON.parse(boot.ignition(request('')).body), JSON.parse(raw.body))
  const butaneProfile: Profile = { id: 'bu', name: 'bu', ignition_id: 'flatcar.yaml' }
  const withButane = service([group('g', 'bu')], [butaneProfile], [{ kind: 'ignition', id: 'flatcar.yaml', body: 'variant: flatcar\nversion: 1.0.0\n' }])
  t.throws(() => withButane.ignition(request('')), { code: 'UNSUPPORTED_TEMPLATE_FORMAT', message: /butane/ })
})

t.test('no group, unknown profile, missing template and missing sections each have their own code', async (t) => {
  t.throws(() => service([group('g', 'install', { mac: '52:54:00:00:00:01' })], [installProfile], []).ipxeScript(request('mac=52:54:00:00:00:02')), {
    code: 'NO_MATCHING_GROUP',
    kind: 'not_found',
  })
  t.throws(() => service([group('g', 'ghost')], [], []).ipxeScript(request('')), { code: 'UNKNOWN_PROFILE', kind: 'configuration' })
  t.throws(() => service([group('g', 'install')], [installProfile], []).ignition(request('')), { code: 'TEMPLATE_NOT_FOUND' })
  const bare: Profile = { id: 'bare', name: 'bare' }
  const boot = service([group('g', 'bare')], [bare], [])
  t.throws(() => boot.ipxeScript(request('')), { code: 'NO_BOOT_SPEC' })
  t.throws(() => boot.ignition(request('')), { code: 'NO_IGNITION' })
  t.throws(() => boot.generic(request('')), { code: 'NO_GENERIC' })
})

t.test('generic templates see the same context', async (t) => {
  const boot = service([group('g', 'install', {}, { hostname: 'h1' })], [installProfile], [{ kind: 'generic', id: 'hello.txt', body: 'host={{hostname}} group={{group.id}} mac={{request.query.mac}}' }])
  t.equal(boot.generic(request('mac=52:54:00:00:00:01')), 'host=h1 group=g mac=52:54:00:00:00:01')
})

interface MetadataCase {
  description: string
  group: { id?: string; selector?: Record<string, string>; metadata?: Record<string, unknown> } | null
  query: string
  expectedLines?: Record<string, string>
  expectedBodyContains?: string
}

t.test("/metadata matches matchbox's own metadata tests (lines sorted, numbers as written)", async (t) => {
  const cases = JSON.parse(readFileSync(new URL('../../fixtures/matchbox/metadata-cases.json', import.meta.url), 'utf8')) as MetadataCase[]
  for (const testCase of cases) {
    if (testCase.group === null) {
      t.throws(() => service([], [installProfile], []).metadata(request(testCase.query)), { name: 'SlipwayError', message: /no group matches/ }, testCase.description)
      continue
    }
    const g = group(testCase.group.id ?? 'g', 'install', testCase.group.selector ?? {}, testCase.group.metadata ?? {})
    const body = service([g], [installProfile], []).metadata(request(testCase.query))
    const lines = body.split('\n').filter(Boolean)
    t.same([...lines].sort(), lines, 'sorted')
    if (testCase.expectedLines) {
      const expected = Object.entries(testCase.expectedLines).map(([key, value]) => `${key}=${value}`).sort()
      t.same(lines, expected, testCase.description)
    }
    if (testCase.expectedBodyContains) t.ok(body.includes(testCase.expectedBodyContains), testCase.description)
  }
  const big = service([group('g', 'install', {}, { count: 1000000, list: [1, 2], none: null })], [installProfile], []).metadata(request(''))
  t.match(big, /^COUNT=1000000$/m)
  t.notMatch(big, /LIST|NONE/, 'arrays and nulls are skipped, like matchbox')
})

t.test('renders are cached per catalog: the same input renders once', async (t) => {
  let renders = 0
  const boot = service([group('g', 'install', {}, { hostname: 'h', note: 'n' })], [installProfile], [installTemplate])
  const catalog = (boot as unknown as { catalogs: CatalogSource }).catalogs.current()
  const original = catalog.compiled.bind(catalog)
  catalog.compiled = (kind, id, body) => {
    const compiled = original(kind, id, body)
    return (context) => (renders++, compiled(context))
  }
  const first = boot.ignition(request('mac=52:54:00:00:00:01'))
  const second = boot.ignition(request('mac=52:54:00:00:00:01'))
  boot.ignition(request('mac=52:54:00:00:00:02'))
  t.equal(second, first)
  t.equal(renders, 2, 'one render per distinct context')
})
