import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { ConfigError, configLeaves, loadConfig } from '../src/config.ts'

const scratchDirs: string[] = []
const scratch = () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-config-'))
  scratchDirs.push(dir)
  return dir
}
t.teardown(() => scratchDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

t.test('defaults: data in ./var, HTTP on 8080, sample content folders', async (t) => {
  const dir = scratch()
  const config = loadConfig({ cwd: dir, env: {} })
  t.equal(config.http.port, 8080)
  t.equal(config.http.host, '0.0.0.0')
  t.equal(config.dataDir, path.join(dir, 'var'))
  t.equal(config.database.path, path.join(dir, 'var', 'slipway.db'))
  t.equal(config.content.profilesDir, path.join(dir, 'profiles'))
})

t.test('YAML file, then environment on top; paths relative to the file', async (t) => {
  const dir = scratch()
  writeFileSync(path.join(dir, 'engine.yaml'), 'http:\n  port: 9000\n  publicUrl: http://10.0.0.1:9000\ndataDir: state\nlog:\n  level: debug\n')
  const config = loadConfig({ cwd: '/', env: { SLIPWAY_CONFIG: path.join(dir, 'engine.yaml'), SLIPWAY_HTTP_PORT: '9100' } })
  t.equal(config.http.port, 9100, 'environment wins')
  t.equal(config.http.publicUrl, 'http://10.0.0.1:9000')
  t.equal(config.dataDir, path.join(dir, 'state'))
  t.equal(config.log.level, 'debug')
})

t.test('matchboxDir points every content folder at a matchbox data directory', async (t) => {
  const config = loadConfig({ cwd: '/srv', env: { SLIPWAY_CONTENT_MATCHBOX_DIR: '/var/lib/matchbox' } })
  t.equal(config.content.profilesDir, '/var/lib/matchbox')
  t.equal(config.content.ignitionDir, '/var/lib/matchbox/ignition')
  t.equal(config.content.assetsDir, '/var/lib/matchbox/assets')
})

t.test('every problem is reported at once, with the file key and the variable to fix', async (t) => {
  const dir = scratch()
  writeFileSync(path.join(dir, 'slipway.yaml'), 'http:\n  port: 70000\n  prot: 1\nlog:\n  level: loud\n')
  const error = t.throws(() => loadConfig({ cwd: dir, env: { SLIPWAY_HTTP_BODY_LIMIT: 'big' } })) as ConfigError
  t.ok(error instanceof ConfigError)
  const text = error.problems.join('\n')
  t.match(text, /http\.port: must be <= 65535 \(file key http\.port or SLIPWAY_HTTP_PORT\)/)
  t.match(text, /http "prot": must NOT have additional properties/)
  t.match(text, /log\.level: .*\(fatal, error, warn, info, debug, trace, silent\)/)
  t.match(text, /http\.bodyLimit: must be integer .*SLIPWAY_HTTP_BODY_LIMIT/)
  t.equal(error.problems.length, 4)
})

t.test('a named file that is missing or not YAML is an error', async (t) => {
  const dir = scratch()
  t.throws(() => loadConfig({ cwd: dir, env: { SLIPWAY_CONFIG: 'nope.yaml' } }), { message: /nope\.yaml does not exist/ })
  writeFileSync(path.join(dir, 'slipway.yaml'), 'http: [unclosed\n')
  t.throws(() => loadConfig({ cwd: dir, env: {} }), ConfigError)
  writeFileSync(path.join(dir, 'slipway.yaml'), '- a list\n')
  t.throws(() => loadConfig({ cwd: dir, env: {} }), { message: /top level must be a mapping/ })
})

t.test('every leaf has an environment variable', async (t) => {
  const names = configLeaves().map((leaf) => leaf.envName)
  t.ok(names.includes('SLIPWAY_HTTP_PORT') && names.includes('SLIPWAY_AUTH_ADMIN_TOKEN') && names.includes('SLIPWAY_CONTENT_MATCHBOX_DIR'))
  t.equal(new Set(names).size, names.length)
})

t.test('the README documents every setting with its variable', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  for (const leaf of configLeaves()) t.match(readme, `| \`${leaf.path.join('.')}\` | \`${leaf.envName}\` |`, leaf.envName)
})
