import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import t from 'tap'
import { ContentFolderError, readContentFolders } from '../../src/adapters/content/content-folders.ts'
import { loadConfig } from '../../src/config.ts'
import { createEngine } from '../../src/engine.ts'
import { copySampleContent, removeTree } from '../helpers/engine.ts'

const folders = (dir: string) => ({
  profilesDir: path.join(dir, 'profiles'),
  ignitionDir: path.join(dir, 'ignition'),
  ipxeDir: path.join(dir, 'ipxe'),
  genericDir: path.join(dir, 'generic'),
})

t.test('the sample content loads', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-content-'))
  t.teardown(() => removeTree(dir))
  copySampleContent(dir)
  const content = await readContentFolders(folders(dir))
  t.same(content.profiles.map((profile) => profile.id).sort(), [
    'discovery',
    'etcd-member-kubernetes-control-plane',
    'fedora-coreos',
    'fedora-coreos-install',
    'flatcar-install',
    'kubernetes-node',
  ])
  t.ok(content.groups.some((group) => group.id === 'discovery' && Object.keys(group.selector).length === 0), 'discovery is the default group')
})

t.test('broken files stop start-up with every problem listed', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-content-'))
  t.teardown(() => removeTree(dir))
  copySampleContent(dir)
  writeFileSync(path.join(dir, 'profiles', 'groups', 'broken.json'), '{"id": "broken",')
  writeFileSync(path.join(dir, 'profiles', 'groups', 'orphan.json'), '{"id": "orphan", "profile": "nowhere"}')
  writeFileSync(path.join(dir, 'profiles', 'groups', 'twin.json'), '{"id": "discovery", "profile": "discovery"}')
  writeFileSync(path.join(dir, 'profiles', 'profiles', 'typo.json'), '{"id": "typo", "ignition": "x.json"}')
  writeFileSync(path.join(dir, 'ignition', 'bad-syntax.json'), '{{#each}}')
  const error = (await readContentFolders(folders(dir)).catch((caught: unknown) => caught)) as ContentFolderError
  t.ok(error instanceof ContentFolderError)
  const text = error.problems.join('\n')
  t.match(text, /broken\.json: not valid JSON/)
  t.match(text, /orphan\.json: group "orphan" names profile "nowhere"/)
  t.match(text, /twin\.json: group id "discovery" is already defined in .*discovery\.json/)
  t.match(text, /typo\.json.*unknown field\(s\) ignition/)
  t.match(text, /bad-syntax\.json/)
  t.equal(error.problems.length, 5)
})

t.test('restart after a file is removed: file-defined objects go, API-owned ones stay', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-content-'))
  t.teardown(() => removeTree(dir))
  copySampleContent(dir)
  mkdirSync(path.join(dir, 'var'))
  const env = {
    SLIPWAY_DATA_DIR: path.join(dir, 'var'),
    SLIPWAY_CONTENT_PROFILES_DIR: path.join(dir, 'profiles'),
    SLIPWAY_CONTENT_IGNITION_DIR: path.join(dir, 'ignition'),
    SLIPWAY_CONTENT_IPXE_DIR: path.join(dir, 'ipxe'),
    SLIPWAY_CONTENT_GENERIC_DIR: path.join(dir, 'generic'),
    SLIPWAY_AUTH_ADMIN_TOKEN: 'content-test-token-0000',
  }
  const start = () => createEngine(loadConfig({ cwd: dir, env }), pino({ level: 'silent' }))
  const first = await start()
  await first.close()
  rmSync(path.join(dir, 'profiles', 'groups', 'lab-node-2.json'))
  rmSync(path.join(dir, 'profiles', 'groups', 'lab-node-2-install.json'))
  rmSync(path.join(dir, 'profiles', 'profiles', 'fedora-coreos-install.json'))
  const second = await start()
  t.teardown(() => second.close())
  const auth = { authorization: 'Bearer content-test-token-0000' }
  t.equal((await second.app.inject({ url: '/api/v1/groups/lab-node-2', headers: auth })).statusCode, 404)
  t.equal((await second.app.inject({ url: '/api/v1/profiles/fedora-coreos-install', headers: auth })).statusCode, 404)
  t.equal((await second.app.inject({ url: '/api/v1/profiles/fedora-coreos', headers: auth })).statusCode, 200)
})
