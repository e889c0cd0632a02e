import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import t from 'tap'
import { loadConfig } from '../src/config.ts'
import { createEngine } from '../src/engine.ts'
import { removeTree } from './helpers/engine.ts'
import { validateWithOfficialSchema } from './helpers/ignition-schema.ts'

const EXAMPLES = new URL('./fixtures/matchbox/examples/', import.meta.url).pathname

/** A matchbox data directory exactly as a user has one: matchbox's own example files, unmodified. */
function matchboxDataDir(example: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-matchbox-'))
  mkdirSync(path.join(dir, 'groups'))
  for (const file of readdirSync(path.join(EXAMPLES, 'groups', example))) cpSync(path.join(EXAMPLES, 'groups', example, file), path.join(dir, 'groups', file))
  cpSync(path.join(EXAMPLES, 'profiles'), path.join(dir, 'profiles'), { recursive: true })
  cpSync(path.join(EXAMPLES, 'ignition'), path.join(dir, 'ignition'), { recursive: true })
  return dir
}

async function engineOn(matchboxDir: string) {
  const config = loadConfig({
    cwd: matchboxDir,
    env: { SLIPWAY_CONTENT_MATCHBOX_DIR: matchboxDir, SLIPWAY_DATA_DIR: path.join(matchboxDir, 'var'), SLIPWAY_AUTH_ADMIN_TOKEN: 'matchbox-compat-token-000' },
  })
  return createEngine(config, pino({ level: 'silent' }))
}

const raw = (file: string) => JSON.parse(readFileSync(path.join(EXAMPLES, 'ignition', file), 'utf8'))

t.test("matchbox's examples load unmodified and boot the same way", async (t) => {
  const cases = [
    { example: 'flatcar-install', query: 'uuid=u&mac=52-54-00-a1-9c-ae', profile: 'flatcar-install', ignition: 'flatcar-install.ign' },
    { example: 'flatcar-install', query: 'uuid=u&mac=52-54-00-a1-9c-ae&os=installed', profile: 'flatcar', ignition: 'flatcar.ign' },
    { example: 'flatcar', query: 'mac=52:54:00:a1:9c:ae', profile: 'flatcar', ignition: 'flatcar.ign' },
    { example: 'fedora-coreos', query: 'mac=52:54:00:a1:9c:ae', profile: 'fedora-coreos', ignition: 'fedora-coreos.ign' },
  ]
  for (const testCase of cases) {
    const dir = matchboxDataDir(testCase.example)
    const engine = await engineOn(dir)
    t.teardown(async () => {
      await engine.close()
      removeTree(dir)
    })
    const profile = JSON.parse(readFileSync(path.join(EXAMPLES, 'profiles', `${testCase.profile}.json`), 'utf8'))
    const ipxe = await engine.app.inject({ method: 'GET', url: `/ipxe?${testCase.query}` })
    t.equal(ipxe.statusCode, 200, `${testCase.example}: /ipxe`)
    const kernelLine = `kernel ${profile.boot.kernel} ${profile.boot.args.join(' ')}`
    t.ok(ipxe.body.split('\n').includes(kernelLine), `${testCase.example}: kernel line is matchbox's: ${kernelLine}`)
    for (const initrd of profile.boot.initrd) t.ok(ipxe.body.split('\n').includes(`initrd ${initrd}`), `initrd ${initrd}`)

    const ignition = await engine.app.inject({ method: 'GET', url: `/ignition?${testCase.query}` })
    t.equal(ignition.statusCode, 200, `${testCase.example} ${testCase.query}: /ignition ${ignition.body.slice(0, 300)}`)
    t.same(ignition.json(), raw(testCase.ignition), `${testCase.ignition} served as written`)
    t.ok(validateWithOfficialSchema(ignition.json()).ok, `${testCase.ignition} is valid against the official schema`)
  }
})

t.test('the Butane sources next to the .ign files are loaded but refused if a profile points at them', async (t) => {
  const dir = matchboxDataDir('flatcar')
  const engine = await engineOn(dir)
  t.teardown(async () => {
    await engine.close()
    removeTree(dir)
  })
  const auth = { authorization: 'Bearer matchbox-compat-token-000' }
  const put = await engine.app.inject({ method: 'PUT', url: '/api/v1/profiles/flatcar', headers: auth, payload: { id: 'flatcar', ignition_id: 'flatcar.yaml' } })
  t.equal(put.statusCode, 200)
  const response = await engine.app.inject({ method: 'GET', url: '/ignition?mac=52:54:00:a1:9c:ae' })
  t.equal(response.statusCode, 500)
  t.equal(response.json().code, 'UNSUPPORTED_TEMPLATE_FORMAT')
  t.match(response.json().message, /butane/)
})
