import path from 'node:path'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'

const UUID = '0b2a6c1e-4f3d-4e2a-9c55-1a2b3c4d5e6f'
const MAC = '52:54:00:00:77:01'
const report = (memoryBytes: number) => ({
  'boot-info': { uuid: UUID, mac: MAC, 'random-id': 'r1' },
  interfaces: [{ name: 'eth0', mac: MAC, ipv4: '10.0.0.7', cidrv4: '10.0.0.7/24' }],
  disks: [{ path: '/dev/vda', 'size-bytes': 10737418240 }],
  memory: { 'total-bytes': memoryBytes },
  firmware: 'uefi',
})

t.test("templates see the requesting machine's discovered facts, and a new report is rendered at once", async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const template =
    '{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/slipway/machine","contents":{"source":"{{#if machine}}{{dataUrl machine.uuid}}{{else}}data:,unknown{{/if}}"}},' +
    '{"path":"/etc/slipway/memory","contents":{"source":"{{#if machine}}{{dataUrl machine.facts.memory.totalBytes}}{{else}}data:,0{{/if}}"}}]}}'
  t.equal((await app.inject({ method: 'PUT', url: '/api/v1/templates/ignition/facts.json', headers: { ...auth, 'content-type': 'text/plain' }, payload: template })).statusCode, 201)
  await app.inject({ method: 'POST', url: '/api/v1/profiles', headers: auth, payload: { id: 'facts', ignition_id: 'facts.json' } })
  await app.inject({ method: 'POST', url: '/api/v1/groups', headers: auth, payload: { id: 'facts', profile: 'facts', selector: { mac: MAC } } })
  const files = async (query: string) => (await app.inject({ method: 'GET', url: `/ignition?${query}` })).json().storage.files.map((file: { contents: { source: string } }) => file.contents.source)

  t.same(await files(`mac=${MAC}`), ['data:,unknown', 'data:,0'], 'not discovered yet')
  t.equal((await app.inject({ method: 'POST', url: '/discovery', payload: report(2147483648) })).statusCode, 200)
  t.same(await files(`mac=${MAC}`), [`data:,${UUID}`, 'data:,2147483648'], 'found by boot MAC')
  t.same(await files(`uuid=${UUID.toUpperCase()}&mac=${MAC}`), [`data:,${UUID}`, 'data:,2147483648'], 'found by uuid (any case)')
  t.same(await files(`uuid=&mac=${MAC}`), [`data:,${UUID}`, 'data:,2147483648'], "iPXE's empty uuid falls back to the MAC")
  await app.inject({ method: 'POST', url: '/discovery', payload: report(4294967296) })
  t.same(await files(`mac=${MAC}`), [`data:,${UUID}`, 'data:,4294967296'], 'a new report is not hidden by the render cache')
})
