/**
 * Fault suite, release fan-out: a Helm chart is released to every cluster matching a selector and then
 * upgraded, while the engine process is SIGKILLed at random moments. The clusters are Kubernetes API
 * server doubles in this process (test/fakes/kube-cluster.ts: server-side apply, TLS, tokens); the
 * engine renders with the real helm (test/helpers/tools.ts) and applies with its real adapter.
 *
 * After the last restart every matching cluster ends ready at the last revision exactly once: one
 * status row per cluster, the engine's revisions 1 and 2 and no other, and on each cluster Helm's own
 * history (`helm history`, read by the real helm) holds each revision once, the last one deployed;
 * the cluster the selector does not match got nothing.
 *
 * The seed is printed; `SLIPWAY_FAULT_SEED` replays a run, `SLIPWAY_FAULT_KILLS` raises the kills.
 */
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { FakeKubeCluster } from '../../fakes/kube-cluster.ts'
import { helm, multipartBody, packageChart, webChart } from '../../helpers/charts.ts'
import { ADMIN_TOKEN, copySampleContent, removeTree } from '../../helpers/engine.ts'
import { EngineProcess, faultSeed, freePort, killCount, seededRandom } from '../../helpers/engine-process.ts'
import { sleep } from '../../helpers/wait.ts'
import { openAfterCrash, sqliteProblems } from '../../helpers/sqlite-consistency.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { helmPath } from '../../helpers/tools.ts'

const MATCHING = ['eu-1', 'eu-2', 'eu-3', 'eu-4', 'eu-5']

t.test('SIGKILL during a release fan-out and its upgrade: every matching cluster ready once, no revision twice', { timeout: 180_000 }, async (t) => {
  const seed = faultSeed()
  const random = seededRandom(seed)
  const kills = killCount(1)
  t.comment(`seed ${seed} (SLIPWAY_FAULT_SEED=${seed} replays it), ${kills} kill(s) in the install and ${kills} in the upgrade`)
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-fault-releases-'))
  t.teardown(() => removeTree(scratch))
  copySampleContent(path.join(scratch, 'content'))
  const dataDir = path.join(scratch, 'var')
  const engine = new EngineProcess({
    dataDir,
    contentDir: path.join(scratch, 'content'),
    port: await freePort(),
    env: {
      SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
      SLIPWAY_HELM_BINARY: await helmPath(),
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
      SLIPWAY_RELEASES_RECONCILE_INTERVAL_SECONDS: '0.5',
      SLIPWAY_RELEASES_REQUEST_TIMEOUT_SECONDS: '5',
    },
  })
  t.teardown(() => engine.kill())
  let passed = false
  t.teardown(() => {
    if (!passed) t.comment(`--- engine output (seed ${seed})\n${engine.output.slice(-6000)}`)
  })
  await engine.start()

  const pki = await x509ClusterPkiIssuer.issue('sites', new Date())
  const tls = { ...(await servingCertificate(pki)), caPem: pki.kubernetesCa.certificatePem }
  const sites = new Map<string, { api: FakeKubeCluster; kubeconfig: string }>()
  for (const name of [...MATCHING, 'us-1']) {
    const token = `${name}-token-${'t'.repeat(20)}`
    // A little latency per answer: an apply takes a while, so that kills land inside the fan-out.
    const api = await FakeKubeCluster.start({ tls, tokens: [token], readyDelayMs: 20, latencyMs: 15 })
    t.teardown(() => api.close())
    const kubeconfig = await api.writeKubeconfig(path.join(scratch, `${name}.kubeconfig`), { token })
    const registered = await engine.call('POST', '/api/v1/clusters', { name, labels: { region: name.split('-')[0]! }, server: api.url, ca_bundle: pki.kubernetesCa.certificatePem, credentials: { token } })
    t.equal(registered.status, 201, `registering ${name}: ${registered.status === 201 ? 'ok' : registered.text}`)
    sites.set(name, { api, kubeconfig })
  }
  for (const version of ['1.0.0', '1.1.0'] as const) {
    const { payload, headers } = await multipartBody({}, { chart: { name: 'chart.tgz', bytes: await packageChart(webChart(version)) } })
    const response = await fetch(`${engine.baseUrl}/api/v1/charts`, { method: 'POST', headers: { ...headers, authorization: `Bearer ${ADMIN_TOKEN}` }, body: new Uint8Array(payload) })
    t.equal(response.status, 201, `chart web ${version} uploaded`)
  }

  const statusOf = async () => {
    const answer = await engine.call('GET', '/api/v1/releases/shop/web').catch(() => undefined)
    if (!answer || answer.status !== 200) return undefined
    return answer.json() as { revision: number; clusters: { cluster: string; revision: number; phase: string }[] }
  }
  const readyAt = (revision: number, release: Awaited<ReturnType<typeof statusOf>>) => release?.clusters.filter((status) => status.phase === 'ready' && status.revision === revision).length ?? 0
  /** Kills the engine `kills` times while the fan-out of `revision` is under way, then lets it finish. */
  const killDuring = async (revision: number) => {
    for (let round = 0; round < kills; round++) {
      // First kill: after a random number of clusters are ready (0 .. all but one); later ones: a
      // random moment after the restart, while the new engine resumes. Then up to 300 ms more.
      const readyFirst = round === 0 ? Math.floor(random() * MATCHING.length) : readyAt(revision, await statusOf())
      const deadline = Date.now() + 60_000
      while (readyAt(revision, await statusOf()) < readyFirst && Date.now() < deadline) await sleep(25)
      const extraMs = Math.floor(random() * 300) + (round === 0 ? 0 : 200 + Math.floor(random() * 1000))
      await sleep(extraMs)
      const before = readyAt(revision, await statusOf())
      await engine.kill()
      t.comment(`revision ${revision}, kill ${round + 1}: ${extraMs} ms after ${readyFirst} ready (${before} of ${MATCHING.length} ready at the kill)`)
      const db = openAfterCrash(path.join(dataDir, 'slipway.db'))
      t.same(sqliteProblems(db), [], `consistent after revision ${revision} kill ${round + 1}`)
      db.close()
      await engine.start()
    }
    const deadline = Date.now() + 90_000
    let last: Awaited<ReturnType<typeof statusOf>>
    for (;;) {
      last = await statusOf()
      if (readyAt(revision, last) === MATCHING.length || Date.now() > deadline) break
      await sleep(200)
    }
    t.equal(readyAt(revision, last), MATCHING.length, `every matching cluster ready at revision ${revision}: ${JSON.stringify(last?.clusters)}`)
  }

  const installed = await engine.call('POST', '/api/v1/releases', {
    name: 'web',
    namespace: 'shop',
    chart: { name: 'web', version: '1.0.0' },
    selector: 'region=eu',
    values: { replicas: 2, greeting: 'bonjour' },
    rollout: { max_parallel: 2, max_failures: MATCHING.length },
  })
  t.equal(installed.status, 201, installed.status === 201 ? 'release created' : installed.text)
  await killDuring(1)
  const upgraded = await engine.call('PUT', '/api/v1/releases/shop/web', { chart: { name: 'web', version: '1.1.0' }, values: { greeting: 'hola' }, reuse_values: true })
  t.equal(upgraded.status, 200, upgraded.status === 200 ? 'release upgraded' : upgraded.text)
  await killDuring(2)

  const release = (await statusOf())!
  t.equal(release.revision, 2, 'the release is at revision 2: a kill made no extra revision')
  t.same(release.clusters.map((status) => `${status.cluster}:${status.phase}@${status.revision}`).sort(), MATCHING.map((name) => `${name}:ready@2`), 'ready once per matching cluster, and no other')
  for (const name of MATCHING) {
    const site = sites.get(name)!
    const history = JSON.parse(await helm(['history', 'web', '-n', 'shop', '--kubeconfig', site.kubeconfig, '-o', 'json'])) as { revision: number; status: string }[]
    t.same(history.map((entry) => `${entry.revision}:${entry.status}`), ['1:superseded', '2:deployed'], `${name}: Helm's history has each revision once`)
    t.ok(site.api.get('Deployment', 'shop', 'web'), `${name}: the Deployment is there`)
    t.equal(site.api.get('ConfigMap', 'shop', 'web-settings'), undefined, `${name}: revision 2 pruned what 1.1.0 dropped`)
  }
  t.same(sites.get('us-1')!.api.objects({ namespace: 'shop' }), [], 'the cluster the selector does not match got nothing')
  await engine.stop()

  const db = openAfterCrash(path.join(dataDir, 'slipway.db'))
  t.teardown(() => db.close())
  t.same(sqliteProblems(db), [])
  t.same(db.prepare("select revision from release_revisions where namespace = 'shop' and name = 'web' order by revision").all(), [{ revision: 1 }, { revision: 2 }], 'revisions 1 and 2, each once')
  t.same(
    db.prepare("select cluster, count(*) as n from cluster_releases where namespace = 'shop' and name = 'web' group by cluster order by cluster").all(),
    MATCHING.map((cluster) => ({ cluster, n: 1 })),
    'one status row per matching cluster',
  )
  passed = t.passing()
})
