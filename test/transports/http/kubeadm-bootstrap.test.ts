/**
 * The kubeadm bootstrap script the role configs install (generic/kubeadm-bootstrap.sh), run by a real
 * shell against a real engine, with the files a member is served written into a scratch root and a
 * stand-in `kubeadm` that records its calls (there is no Flatcar image or kube-apiserver here). The
 * joining node waits for an HTTPS endpoint served with the first member's own API server certificate,
 * checked against the cluster CA as the script does on a machine.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { ADMIN_TOKEN, auth, REPO_ROOT, removeTree, startServingEngine } from '../../helpers/engine.ts'
import { slipway, tableRows } from '../cli/run-slipway.ts'
import { reportInstalled, takeSlotAndFetchConfig } from '../../helpers/machine-requests.ts'
import { until } from '../../helpers/wait.ts'

const run = promisify(execFile)
const SCRIPT = path.join(REPO_ROOT, 'generic/kubeadm-bootstrap.sh')
const admin = (app: FastifyInstance, method: 'GET' | 'POST', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })
type Config = { storage: { files: { path: string; contents: { source: string } }[] } }
const text = (source: string) => decodeURIComponent(source.replace(/^data:,/, ''))

/** A member's root: every file its config writes under /etc, plus a stand-in kubeadm. */
function memberRoot(scratch: string, name: string, config: Config, engineUrl: string) {
  const root = path.join(scratch, name)
  for (const file of config.storage.files) {
    if (!file.contents.source.startsWith('data:')) continue
    const target = path.join(root, file.path)
    mkdirSync(path.dirname(target), { recursive: true })
    writeFileSync(target, text(file.contents.source))
  }
  // The engine answers here on a loopback port, not at the URL the config names.
  const lifecycle = path.join(root, 'etc/slipway/lifecycle.env')
  writeFileSync(lifecycle, readFileSync(lifecycle, 'utf8').replace(/^SLIPWAY_URL=.*$/m, `SLIPWAY_URL=${engineUrl}`))
  const kubeadm = path.join(root, 'kubeadm')
  writeFileSync(
    kubeadm,
    [
      '#!/bin/sh',
      'echo "$*" >> "$FAKE_ROOT/calls"',
      // kubeadm reset empties the certificates folder and the kubeconfigs.
      'if [ "$1" = reset ]; then rm -rf "$FAKE_ROOT/etc/kubernetes/pki" "$FAKE_ROOT"/etc/kubernetes/*.conf; exit 0; fi',
      'if [ -e "$FAKE_ROOT/fail" ]; then echo "[preflight] Running pre-flight checks"; echo "error execution phase preflight: [preflight] Some fatal errors occurred:"; echo "	[ERROR Port-6443]: Port 6443 is in use"; exit 3; fi',
      'echo "[kubeadm] $1 done"',
    ].join('\n'),
  )
  chmodSync(kubeadm, 0o755)
  return root
}

function runScript(root: string, extraEnv: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      'sh',
      [SCRIPT],
      {
        env: {
          PATH: process.env.PATH!,
          FAKE_ROOT: root,
          SLIPWAY_CLUSTER_ENV: path.join(root, 'etc/slipway/cluster.env'),
          SLIPWAY_LIFECYCLE_ENV: path.join(root, 'etc/slipway/lifecycle.env'),
          SLIPWAY_KUBEADM: path.join(root, 'kubeadm'),
          SLIPWAY_KUBEADM_CONFIG: path.join(root, 'etc/slipway/kubeadm.yaml'),
          SLIPWAY_STATE_DIR: path.join(root, 'var/lib/slipway'),
          SLIPWAY_KUBERNETES_DIR: path.join(root, 'etc/kubernetes'),
          ...extraEnv,
        },
        timeout: 60_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: stdout + stderr }),
    )
  })
}

const calls = (root: string) => (existsSync(path.join(root, 'calls')) ? readFileSync(path.join(root, 'calls'), 'utf8').trim().split('\n') : [])
const listTree = (dir: string): string[] => readdirSync(dir, { withFileTypes: true, recursive: true }).filter((entry) => entry.isFile()).map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name))).sort()

t.test('init once, retried after a failure with the engine’s files put back; a joining node waits for the endpoint; every phase reaches the engine', async (t) => {
  const { engine, address } = await startServingEngine(t)
  const app = engine.app
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-kubeadm-'))
  t.teardown(() => removeTree(scratch))
  await admin(app, 'POST', '/api/v1/flavors', { name: 'pair', control_plane_count: 1, nodes_min: 0, nodes_max: 1 })
  await admin(app, 'POST', '/api/v1/clusters', { name: 'duo', flavor: 'pair' })
  const machines = [
    { uuid: '5c1a0000-0000-4000-8000-000000000001', mac: '52:54:00:00:5c:01', ip: '127.0.0.1' },
    { uuid: '5c1a0000-0000-4000-8000-000000000002', mac: '52:54:00:00:5c:02', ip: '10.9.0.2' },
  ]
  for (const machine of machines) {
    await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: machine.uuid, mac: machine.mac }, interfaces: [{ name: 'eth0', mac: machine.mac, ipv4: machine.ip }] } })
  }
  await admin(app, 'POST', '/api/v1/scheduler/run')
  const [cpConfig, nodeConfig] = await Promise.all(machines.map(async (machine) => (await takeSlotAndFetchConfig(app, machine)).json() as Config))
  const cp = memberRoot(scratch, 'cp', cpConfig!, address)
  const node = memberRoot(scratch, 'node', nodeConfig!, address)
  const progress = async () => (await admin(app, 'GET', '/api/v1/clusters/duo/bootstrap')).json() as { hostname: string; phase: string; command: string; message: string; log: string | null; attempts: number }[]

  // The first control-plane member: kubeadm fails once; its leftovers go, the engine's files come back.
  const engineFiles = listTree(path.join(cp, 'etc/kubernetes'))
  t.ok(engineFiles.includes('pki/apiserver.key') && engineFiles.includes('admin.conf'), `${engineFiles.length} files from the engine`)
  writeFileSync(path.join(cp, 'fail'), '')
  const failed = await runScript(cp)
  t.equal(failed.code, 1, 'a failed kubeadm fails the unit (systemd retries it)')
  t.same(calls(cp), [`init --config ${path.join(cp, 'etc/slipway/kubeadm.yaml')}`, 'reset --force'])
  t.same(listTree(path.join(cp, 'etc/kubernetes')), engineFiles, 'after kubeadm reset, every file of the engine is back')
  let seen = (await progress()).find((entry) => entry.hostname === 'duo-cp-1')!
  t.match(seen, { phase: 'failed', command: 'init', message: 'kubeadm init exited with status 3', attempts: 1 })
  t.match(seen.log, /\[ERROR Port-6443\]: Port 6443 is in use/, "with kubeadm's last lines")
  // What an operator sees: the CLI's table, the log on demand, and a failing exit status.
  const shown = await slipway(['clusters', 'bootstrap', 'duo', '--log'], { url: address, token: ADMIN_TOKEN })
  t.equal(shown.code, 1, 'a failed member fails the command')
  t.same(tableRows(shown.stdout)[1]?.slice(0, 4), ['duo-cp-1', 'init', 'failed', '1'])
  t.match(shown.stdout, /duo-cp-1 \(kubeadm init, failed\):\n[\s\S]*Port 6443 is in use/)

  writeFileSync(path.join(cp, 'fail'), '')
  removeTree(path.join(cp, 'fail'))
  const succeeded = await runScript(cp)
  t.equal(succeeded.code, 0, succeeded.output)
  seen = (await progress()).find((entry) => entry.hostname === 'duo-cp-1')!
  t.match(seen, { phase: 'done', command: 'init', attempts: 2 })
  const again = await runScript(cp)
  t.equal(again.code, 0)
  t.match(again.output, /already ran kubeadm init; nothing to do/)
  t.equal(calls(cp).filter((call) => call.startsWith('init')).length, 2, 'a reboot never runs kubeadm again')

  // The node: no endpoint yet, so it waits (here: gives up at once), and never runs kubeadm.
  const endpointEnv = (port: number) => {
    const file = path.join(node, 'etc/slipway/cluster.env')
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^SLIPWAY_ENDPOINT=.*$/m, `SLIPWAY_ENDPOINT=127.0.0.1:${port}`))
  }
  endpointEnv(1)
  const waiting = await runScript(node, { SLIPWAY_ENDPOINT_WAIT_SECONDS: '0' })
  t.equal(waiting.code, 1)
  t.same(calls(node), [], 'no kubeadm before the endpoint answers')
  t.match((await progress()).find((entry) => entry.hostname === 'duo-node-1'), { phase: 'failed', command: 'join', message: /did not answer within 0s/ })

  // The endpoint answers /readyz with the first member's API server certificate: the node joins.
  const file = (at: string) => text(cpConfig!.storage.files.find((candidate) => candidate.path === at)!.contents.source)
  const apiserver = https.createServer({ cert: file('/etc/kubernetes/pki/apiserver.crt'), key: file('/etc/kubernetes/pki/apiserver.key') }, (request, response) => {
    response.end(request.url === '/readyz' ? 'ok' : 'not found')
  })
  await new Promise<void>((resolve) => apiserver.listen(0, '127.0.0.1', resolve))
  t.teardown(() => apiserver.close())
  endpointEnv((apiserver.address() as AddressInfo).port)
  const joined = await runScript(node)
  t.equal(joined.code, 0, joined.output)
  t.same(calls(node), [`join --config ${path.join(node, 'etc/slipway/kubeadm.yaml')}`])
  t.match((await progress()).find((entry) => entry.hostname === 'duo-node-1'), { phase: 'done', command: 'join', attempts: 1 })
  const allDone = await slipway(['clusters', 'bootstrap', 'duo'], { url: address, token: ADMIN_TOKEN })
  t.equal(allDone.code, 0, allDone.stderr)
  t.same(tableRows(allDone.stdout).slice(1).map((row) => [row[0], row[2]]), [['duo-cp-1', 'done'], ['duo-node-1', 'done']])

  // The control-plane endpoint, as dig asks the engine's DNS: the installed member whose bootstrap is done.
  for (const machine of machines) await reportInstalled(app, machine)
  const endpointAnswer = await until('the endpoint in DNS', async () => {
    const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(engine.dnsPort()), 'api.duo.apps.slipway.internal', 'A', '+short', '+time=2', '+tries=1'])
    return stdout.trim() === '127.0.0.1' ? stdout.trim() : undefined
  })
  t.equal(endpointAnswer, '127.0.0.1', 'api.duo.apps.slipway.internal answers the first member, whose API server runs')

  // A machine in no cluster has nothing to report; a report that is not one is refused.
  await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: '5c1a0000-0000-4000-8000-000000000003', mac: '52:54:00:00:5c:03' }, interfaces: [{ name: 'eth0', mac: '52:54:00:00:5c:03', ipv4: '10.9.0.3' }] } })
  const credential = /^SLIPWAY_MACHINE_CREDENTIAL=(\S+)$/m.exec(readFileSync(path.join(cp, 'etc/slipway/lifecycle.env'), 'utf8'))![1]!
  const bad = await app.inject({ method: 'POST', url: '/lifecycle/bootstrap', headers: { authorization: `Bearer ${credential}` }, payload: { phase: 'exploded', command: 'init', message: '' } })
  t.match({ status: bad.statusCode, ...bad.json() }, { status: 400, code: 'INVALID_BOOTSTRAP_REPORT' })
  t.equal((await app.inject({ method: 'POST', url: '/lifecycle/bootstrap', payload: { phase: 'done', command: 'init', message: '' } })).statusCode, 401, 'a machine credential is needed')
  t.equal((await admin(app, 'GET', '/api/v1/clusters/nope/bootstrap')).json().code, 'CLUSTER_NOT_FOUND')
})
