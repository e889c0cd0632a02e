/**
 * `slipway clusters register`, `charts` and `releases` (the real binary) against a running engine
 * that fans a Helm release out (real helm rendering, the real reconciler) to Kubernetes API server
 * doubles (test/fakes/kube-cluster.ts): an install followed to every cluster with progress, an
 * upgrade watched with --json (progress on stderr, the document on stdout), a fan-out that fails
 * on an unreachable cluster (exit 1), and the API's refusals as exit codes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../../src/adapters/pki/x509-cluster-pki.ts'
import { FakeKubeCluster } from '../../fakes/kube-cluster.ts'
import { packageChart, webChart } from '../../helpers/charts.ts'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { servingCertificate } from '../../helpers/test-pki.ts'
import { helmPath } from '../../helpers/tools.ts'
import { slipway, tableRows } from './run-slipway.ts'
import { sleep } from '../../helpers/wait.ts'

/** The plain progress lines of a release's fan-out, as [ready, failed, total]. */
const progressOf = (text: string, release: string) =>
  [...text.matchAll(new RegExp(`^${release}: (\\d+)/(\\d+) clusters ready(?:, (\\d+) failed)?`, 'gm'))].map((match) => [Number(match[1]), Number(match[3] ?? 0), Number(match[2])])

t.test('releases: install --wait with progress to every matching cluster, upgrade --wait --json, a failed fan-out, refusals', async (t) => {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'slipway-cli-releases-'))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  const started = await startTestEngine({
    env: {
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_HELM_BINARY: await helmPath(),
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
      SLIPWAY_RELEASES_RECONCILE_INTERVAL_SECONDS: '0.3',
      SLIPWAY_RELEASES_REQUEST_TIMEOUT_SECONDS: '1',
    },
  })
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  const url = await started.engine.start()
  const run = (args: string[]) => slipway(args, { url, cwd: scratch, token: ADMIN_TOKEN })

  const pki = await x509ClusterPkiIssuer.issue('sites', new Date())
  const tls = { ...(await servingCertificate(pki)), caPem: pki.kubernetesCa.certificatePem }
  await writeFile(path.join(scratch, 'ca.pem'), pki.kubernetesCa.certificatePem)
  const sites = new Map<string, FakeKubeCluster>()
  for (const name of ['eu-1', 'eu-2', 'us-1']) {
    const api = await FakeKubeCluster.start({ tls, tokens: [`${name}-token-${'t'.repeat(20)}`], readyDelayMs: 300 })
    t.teardown(() => api.close())
    sites.set(name, api)
    await writeFile(path.join(scratch, `${name}.token`), `${name}-token-${'t'.repeat(20)}\n`)
  }
  // Registered through the CLI both ways: server + CA + token files, and a kubeconfig.
  for (const [name, region] of [['eu-1', 'eu'], ['us-1', 'us']] as const) {
    const registered = await run(['clusters', 'register', name, '--server', sites.get(name)!.url, '--ca-file', 'ca.pem', '--cluster-token-file', `${name}.token`, '--label', `region=${region}`])
    t.equal(registered.code, 0, registered.stderr)
  }
  await sites.get('eu-2')!.writeKubeconfig(path.join(scratch, 'eu-2.kubeconfig'), { token: `eu-2-token-${'t'.repeat(20)}` })
  const fromKubeconfig = await run(['clusters', 'register', 'eu-2', '--kubeconfig', 'eu-2.kubeconfig', '--label', 'region=eu'])
  t.equal(fromKubeconfig.code, 0, fromKubeconfig.stderr)

  for (const version of ['1.0.0', '1.1.0'] as const) await writeFile(path.join(scratch, `web-${version}.tgz`), await packageChart(webChart(version)))
  const uploaded = await run(['charts', 'upload', 'web-1.0.0.tgz'])
  t.equal(uploaded.code, 0, uploaded.stderr)
  t.match(uploaded.stdout, /^stored chart web 1\.0\.0 \([\d.]+ (?:B|KiB), sha256 [0-9a-f]{64}\)\n$/)
  t.equal((await run(['charts', 'upload', 'web-1.1.0.tgz'])).code, 0)
  t.same(tableRows((await run(['charts', 'list'])).stdout).map((row) => row.slice(0, 3)), [['NAME', 'VERSION', 'APP VERSION'], ['web', '1.0.0', '2.4'], ['web', '1.1.0', '2.4']])

  await writeFile(path.join(scratch, 'values.yaml'), 'replicas: 2\ngreeting: bonjour\n')
  const installed = await run(['releases', 'install', 'shop/web', '--chart', 'web@1.0.0', '--selector', 'region=eu', '--values', 'values.yaml', '--set', 'image=registry.example/web:2.5', '--max-parallel', '1', '--wait', '--interval', '0.1'])
  t.equal(installed.code, 0, installed.stderr)
  t.match(installed.stdout, /^shop\/web: installing revision 1 \(web 1\.0\.0\)\n/)
  t.notMatch(installed.stdout, /\r/, 'plain lines, no \\r, when stdout is not a terminal')
  const progress = progressOf(installed.stdout, 'shop/web')
  t.same(progress.at(-1), [2, 0, 2], `ends with every matching cluster ready: ${installed.stdout}`)
  t.ok(progress.every(([ready], index) => index === 0 || ready! >= progress[index - 1]![0]!), `ready never goes back: ${JSON.stringify(progress)}`)
  t.match(installed.stdout, /eu-1: revision 1 ready/, 'events are printed as they come')
  const finalTable = tableRows(installed.stdout.slice(installed.stdout.lastIndexOf('CLUSTER ')))
  t.same(finalTable.map((row) => row.slice(0, 3)), [['CLUSTER', 'REVISION', 'PHASE'], ['eu-1', '1', 'ready'], ['eu-2', '1', 'ready']], 'and ends with the per-cluster table')
  t.match(sites.get('eu-1')!.get('ConfigMap', 'shop', 'web-settings'), { data: { greeting: 'bonjour' } }, 'the values file reached the cluster')
  t.match(sites.get('eu-2')!.get('Deployment', 'shop', 'web'), { spec: { replicas: 2, template: { spec: { containers: [{ image: 'registry.example/web:2.5' }] } } } }, '--set too')
  t.same(sites.get('us-1')!.objects({ namespace: 'shop' }), [], 'a cluster the selector does not match got nothing')

  const listed = await run(['releases', 'list'])
  t.same(tableRows(listed.stdout).map((row) => row.slice(0, 7)), [
    ['NAMESPACE', 'NAME', 'CHART', 'REVISION', 'STATE', 'READY', 'FAILED'],
    ['shop', 'web', 'web-1.0.0', '1', 'active', '2/2', '0'],
  ])

  // An upgrade watched with --json: stdout is the release document only, the progress went to stderr.
  const upgraded = await run(['releases', 'upgrade', 'web', '-n', 'shop', '--version', '1.1.0', '--set', 'greeting=hola', '--reuse-values', '--wait', '--json', '--interval', '0.1'])
  t.equal(upgraded.code, 0, upgraded.stderr)
  const document = JSON.parse(upgraded.stdout) as { revision: number; chart: { version: string }; summary: { ready: number }; clusters: { revision: number; phase: string }[] }
  t.match(document, { revision: 2, chart: { version: '1.1.0' }, summary: { ready: 2 } })
  t.ok(document.clusters.every((status) => status.revision === 2 && status.phase === 'ready'))
  t.same(progressOf(upgraded.stderr, 'shop/web').at(-1), [2, 0, 2], upgraded.stderr)
  const status = await run(['releases', 'status', 'shop/web', '--json'])
  t.match(JSON.parse(status.stdout), { revision: 2, summary: { clusters: 2, ready: 2, failed: 0 } })
  const shown = await run(['releases', 'show', 'shop/web'])
  t.match(shown.stdout, /^Release: +shop\/web\nChart: +web 1\.1\.0\nRevision: +2\nState: +active\nSelector: +region=eu\n/)
  t.match(shown.stdout, /Revisions:\nREVISION +CHART +DESCRIPTION +CREATED\n +1 +web-1\.0\.0 +Install .*\n +2 +web-1\.1\.0 +Upgrade /)

  // us-1 stops answering: a release there fails, and waiting for it says so with exit 1.
  sites.get('us-1')!.setUnresponsive(true)
  const failing = await run(['releases', 'install', 'shop/api', '--chart', 'web', '--selector', 'region=us', '--wait', '--interval', '0.1'])
  t.equal(failing.code, 1, `a fan-out that fails exits 1: ${failing.stdout}${failing.stderr}`)
  t.same(progressOf(failing.stdout, 'shop/api').at(-1), [0, 1, 1], failing.stdout)
  t.match(failing.stdout, /\nus-1 +1 +failed +1 .*no answer within 1000 ms/, 'the table shows the failed cluster with its error')
  const watchedAgain = await run(['releases', 'status', 'shop/api', '--watch', '--interval', '0.1'])
  t.equal(watchedAgain.code, 1, 'status --watch on a failed fan-out: exit 1 at once')

  const unknown = await run(['releases', 'status', 'shop/nope'])
  t.equal(unknown.code, 4)
  t.equal(unknown.stderr, 'slipway: release shop/nope does not exist (RELEASE_NOT_FOUND)\n')
  const again = await run(['releases', 'install', 'shop/web', '--chart', 'web', '--selector', ''])
  t.equal(again.code, 5)
  t.match(again.stderr, /release shop\/web already exists.* \(RELEASE_EXISTS\)\n$/)

  const deleted = await run(['releases', 'delete', 'shop/web', '--yes'])
  t.equal(deleted.code, 0, deleted.stderr)
  t.equal(deleted.stdout, 'shop/web: uninstalling from eu-1, eu-2; the release is deleted once every cluster is clean\n')
  const gone = async () => (await fetch(`${url}/api/v1/releases/shop/web`, { headers: auth })).status
  for (let attempt = 0; attempt < 100 && (await gone()) !== 404; attempt++) await sleep(100)
  t.equal(await gone(), 404, 'the release is gone')
  t.same(sites.get('eu-1')!.objects({ namespace: 'shop' }), [], 'and nothing is left on the clusters')
})
