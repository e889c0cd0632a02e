/**
 * The engine as `npm start` runs it, under `ulimit -n 1024` (the soft limit many service managers
 * still give): 2,000 idle connections from 40 loopback clients must neither exhaust its file
 * descriptors nor keep /healthz from answering within 100 ms.
 */
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { freePort, spawnScratchEngine } from '../../helpers/engine-process.ts'
import { sleep } from '../../helpers/wait.ts'
import { describeRamp, idleFlood, loopbackSources, metricValue, rampIdleFlood, timedGet } from './listener-kit.ts'

t.test('under ulimit -n 1024, 2,000 idle connections leave /healthz answered within 100 ms', async (t) => {
  const port = await freePort()
  const { child, output: engineOutput } = spawnScratchEngine(t, { SLIPWAY_HTTP_PORT: String(port), SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0', SLIPWAY_LOG_LEVEL: 'warn' }, { descriptorLimit: 1024 })
  const flood = idleFlood(port, { sources: loopbackSources(40) })
  t.teardown(() => flood.close())
  for (let attempt = 0; ; attempt++) {
    if ((await timedGet(port, '/healthz', { expect: 200 })).ok) break
    if (child.exitCode !== null || attempt > 600) throw new Error(`the engine did not start: ${engineOutput().slice(-3000)}`)
    await sleep(50)
  }
  t.equal(/^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/limits`, 'utf8'))?.[1], '1024', 'the engine runs with a soft limit of 1,024 descriptors')

  const ramp = await rampIdleFlood(flood, { total: 2_000, step: 100, limitMs: 100, probe: () => timedGet(port, '/healthz', { expect: 200 }) })
  t.comment(describeRamp('http idle flood at ulimit -n 1024', ramp, flood))
  t.equal(ramp.firstBadAt, undefined, `every /healthz answered 200 within 100 ms (worst ${ramp.worst.ms.toFixed(1)} ms, ${ramp.worst.detail})`)
  t.equal(child.exitCode, null, 'the engine is still running')
  const descriptors = readdirSync(`/proc/${child.pid}/fd`).length
  const metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((response) => response.text(), () => '')
  const open = metricValue(metrics, 'slipway_connections_open', { listener: 'http' })
  const limit = metricValue(metrics, 'slipway_connections_limit', { listener: 'all' })
  t.comment(`engine side: ${descriptors} descriptors in use, ${open} http connections open, a cap of ${limit} connections across listeners`)
  t.ok(descriptors < 1_000, `descriptors stay below the limit (${descriptors})`)
  t.ok(limit > 0 && limit < 1_000, `the cap across listeners keeps headroom below 1,024 (${limit})`)
  t.notMatch(engineOutput(), /EMFILE/, 'no descriptor exhaustion was logged')
})
