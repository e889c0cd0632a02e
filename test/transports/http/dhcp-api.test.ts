import path from 'node:path'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'

t.test('DHCP reservations and leases through the admin API', async (t) => {
  const { engine, dataDir } = await startTestEngine({
    env: { SLIPWAY_DHCP_SUBNET: '10.77.0.0/24', SLIPWAY_DHCP_SERVER_ADDRESS: '10.77.0.1' },
  })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const request = (method: 'GET' | 'PUT' | 'DELETE', url: string, payload?: object, headers: Record<string, string> = auth) =>
    engine.app.inject({ method, url, headers, ...(payload ? { payload } : {}) })

  t.equal((await request('GET', '/api/v1/dhcp/reservations', undefined, {})).statusCode, 401, 'token required')
  const created = await request('PUT', '/api/v1/dhcp/reservations/52-54-00-00-00-0A', { ip: '10.77.0.10', hostname: 'node-10' })
  t.equal(created.statusCode, 200, created.body)
  t.same(created.json(), { mac: '52:54:00:00:00:0a', ip: '10.77.0.10', hostname: 'node-10' })
  t.same((await request('GET', '/api/v1/dhcp/reservations')).json(), [{ mac: '52:54:00:00:00:0a', ip: '10.77.0.10', hostname: 'node-10' }])

  for (const [name, mac, body, status, code] of [
    ['bad mac', 'zz', { ip: '10.77.0.11' }, 400, 'INVALID_MAC'],
    ['bad ip', '52:54:00:00:00:0b', { ip: '10.77.0' }, 400, 'INVALID_IP'],
    ['outside the boot network', '52:54:00:00:00:0b', { ip: '192.168.1.5' }, 400, 'IP_OUTSIDE_SUBNET'],
    ["the engine's own address", '52:54:00:00:00:0b', { ip: '10.77.0.1' }, 400, 'IP_IS_SERVER'],
    ['an address reserved for another MAC', '52:54:00:00:00:0b', { ip: '10.77.0.10' }, 409, 'IP_RESERVED'],
    ['unknown field', '52:54:00:00:00:0b', { ip: '10.77.0.12', name: 'x' }, 400, 'VALIDATION_FAILED'],
  ] as const) {
    const response = await request('PUT', `/api/v1/dhcp/reservations/${mac}`, body)
    t.equal(response.statusCode, status, name)
    t.equal(response.json().code, code, name)
  }
  t.equal((await request('GET', '/api/v1/dhcp/reservations')).json().length, 1, 'the refused writes changed nothing')

  t.equal((await request('DELETE', '/api/v1/dhcp/reservations/52:54:00:00:00:0a')).statusCode, 204)
  t.equal((await request('DELETE', '/api/v1/dhcp/reservations/52:54:00:00:00:0a')).json().code, 'RESERVATION_NOT_FOUND')
  t.same((await request('GET', '/api/v1/dhcp/leases')).json(), [], 'no leases yet')
})
