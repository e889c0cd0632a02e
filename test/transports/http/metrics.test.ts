/**
 * /metrics as Prometheus reads it: the real `promtool check metrics` (Debian's prometheus) finds no
 * naming or format problem, the standard process_* and nodejs_* series carry their standard names,
 * HTTP requests are counted by route pattern (never by raw path: an attacker's paths must not mint
 * series) with a latency histogram, and the inventory is there as gauges: machines by state, install
 * slots in use, clusters by health, releases by state, reboot lock slots held per group.
 */
import { execFile } from 'node:child_process'
import path from 'node:path'
import t from 'tap'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'

function promtool(exposition: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], { timeout: 30_000 }, (error, stdout, stderr) => {
      const failed = error as (Error & { code?: number | string }) | null
      if (failed?.code === 'ENOENT') return reject(new Error('promtool is not installed (Debian: prometheus); .ci/run installs it'))
      resolve({ code: failed ? Number(failed.code) : 0, output: `${stdout}${stderr}`.trim() })
    })
    child.stdin!.end(exposition)
  })
}

/** The samples of a metric, as `{labels} value` strings keyed by the label text. */
function samples(exposition: string, name: string): Map<string, number> {
  const found = new Map<string, number>()
  for (const line of exposition.split('\n')) {
    const match = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line)
    if (match) found.set(match[1] ?? '', Number(match[2]))
  }
  return found
}

t.test('promtool accepts /metrics; standard names; HTTP by route pattern; the inventory as gauges', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const admin = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) })
  for (let n = 1; n <= 3; n++) {
    const mac = `52:54:00:00:3e:0${n}`
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: `3e000000-0000-4000-8000-00000000000${n}`, mac }, interfaces: [{ name: 'eth0', mac, ipv4: `10.9.0.${n}` }] } })
  }
  t.equal((await admin('POST', '/api/v1/flavors', { name: 'one', control_plane_count: 1, nodes_max: 0 })).statusCode, 201)
  t.equal((await admin('POST', '/api/v1/clusters', { name: 'solo', flavor: 'one' })).statusCode, 201)
  await admin('POST', '/api/v1/scheduler/run')
  t.equal((await app.inject({ method: 'POST', url: '/install-authorization?uuid=3e000000-0000-4000-8000-000000000001&mac=52-54-00-00-3e-01', remoteAddress: '10.9.0.1', payload: {} })).statusCode, 200, 'one install slot taken')
  const locks = await admin('PUT', '/api/v1/locks/edge', { slots: 2 })
  t.equal(locks.statusCode, 200, locks.body)
  await admin('GET', '/api/v1/machines/3e000000-0000-4000-8000-000000000002')
  await admin('GET', '/api/v1/machines/3e000000-0000-4000-8000-000000000003')
  for (let n = 0; n < 5; n++) await app.inject({ method: 'GET', url: `/attacker/${n}/../etc/passwd${n}` })
  for (const method of ['PROPFIND', 'MKCOL', 'SEARCH'] as const) await app.inject({ method, url: '/api/v1/machines' })

  const exposition = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const checked = await promtool(exposition)
  t.equal(checked.code, 0, checked.output)
  t.equal(checked.output, '', 'promtool has nothing to say')

  t.ok(samples(exposition, 'process_cpu_seconds_total').size, 'process_* under its standard name')
  t.ok(samples(exposition, 'nodejs_heap_size_used_bytes').size, 'nodejs_* under its standard name')
  t.notMatch(exposition, /^slipway_(process|nodejs)_/m, 'not prefixed, so standard dashboards find them')

  const requests = samples(exposition, 'slipway_http_requests_total')
  t.equal(requests.get('{method="GET",route="/api/v1/machines/:uuid",status="200"}'), 2, 'counted by route pattern, not by path')
  t.equal(requests.get('{method="GET",route="unmatched",status="404"}'), 5, 'paths no route matches share one series')
  t.notOk([...requests.keys()].some((labels) => labels.includes('passwd')), 'no raw path ever becomes a label')
  t.notOk([...requests.keys()].some((labels) => /PROPFIND|MKCOL|SEARCH/.test(labels)), 'nor a method outside the standard ones')
  t.ok([...requests.keys()].some((labels) => labels.startsWith('{method="other"')), 'those count as "other"')
  const durations = samples(exposition, 'slipway_http_request_duration_seconds_count')
  t.equal(durations.get('{method="GET",route="/api/v1/machines/:uuid"}'), 2, 'and timed in a histogram')

  t.same(Object.fromEntries(samples(exposition, 'slipway_machines')), { '{state="booting"}': 0, '{state="discovered"}': 2, '{state="scheduled"}': 0, '{state="installing"}': 1, '{state="installed"}': 0, '{state="install_failed"}': 0 }, 'machines by state')
  t.equal(samples(exposition, 'slipway_install_slots_in_use').get(''), 1)
  t.equal(samples(exposition, 'slipway_install_slots').get(''), 10, 'of install.maxConcurrent')
  t.equal(samples(exposition, 'slipway_clusters').get('{health="Unknown"}'), 1, 'a cluster never checked is Unknown')
  t.ok(samples(exposition, 'slipway_releases').has('{state="active"}'), 'releases by state, zero included')
  t.equal(samples(exposition, 'slipway_lock_slots').get('{group="edge"}'), 2, 'reboot lock slots per group')
  t.equal(samples(exposition, 'slipway_lock_slots_held').get('{group="edge"}'), 0, 'and how many are held')
})
