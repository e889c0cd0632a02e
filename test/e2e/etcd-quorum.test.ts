/**
 * The engine asks a real etcd: three etcd 3.4 processes on loopback addresses, each run from the
 * member environment and certificates the engine rendered (test/helpers/etcd-members.ts), reached by
 * the engine's etcd adapter (v3 JSON gateway, mutual TLS with the engine's own client certificate).
 * GET /api/v1/clusters/{name}/etcd answers the members as etcd reports them; an operator's client
 * certificate works with the real etcdctl, one from another CA is refused; a member added and removed
 * again; a member stopped is reported unhealthy, leaves no room for a control-plane restart (a
 * rollout run starts none and says why) and a removal that would break the quorum is refused; a
 * member that answers garbage is reported, not a crash; back, it counts as back once caught up; with
 * every member gone the route answers 502 ETCD_UNREACHABLE.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { EtcdJsonGateway } from '../../src/adapters/etcd/etcd-json-gateway.ts'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { EtcdQuorum, memberNotBack } from '../../src/core/clusters/etcd-quorum.ts'
import { RolloutExecutor } from '../../src/core/lifecycle/rollout-executor.ts'
import { liveControlPlaneAllowance } from '../../src/core/lifecycle/rollout-plan.ts'
import { RolloutService } from '../../src/core/lifecycle/rollout-service.ts'
import { EtcdServerDouble } from '../fakes/etcd-server-double.ts'
import { EmptyMachineShell } from '../fakes/machine-shell.ts'
import { ManualClock } from '../fakes/manual-clock.ts'
import { EmptyNodeDrainer } from '../fakes/node-drainer.ts'
import { FixedRolloutLocks } from '../fakes/rollout-locks.ts'
import { FixedRolloutRepository } from '../fakes/rollout-repository.ts'
import { FixedRolloutTargets } from '../fakes/rollout-targets.ts'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../helpers/engine.ts'
import { startEtcdMembers } from '../helpers/etcd-members.ts'
import { createToken } from '../helpers/seeded-routes.ts'
import { until } from '../helpers/wait.ts'
import { slipway } from '../transports/cli/run-slipway.ts'

const run = promisify(execFile)
const machines = [1, 2, 3].map((n) => ({ uuid: `e7cd0000-0000-4000-8000-00000000002${n}`, mac: `52:54:00:00:e7:2${n}`, ip: `127.0.0.${20 + n}` }))

interface EtcdView {
  leader: string | null
  voting_members: number
  healthy_members: number
  quorum: number
  members: { id: string; id_hex: string; name: string; reachable: boolean; healthy: boolean; leader: boolean; raft_index: number | null; raft_applied_index: number | null; raft_term: number | null; errors: string[] }[]
}

t.test('the engine asks the real etcd: members and health, operators’ etcdctl certificates, membership changes under the quorum check, a member down', async (t) => {
  const logLines: string[] = []
  const { engine, dataDir, config } = await startTestEngine({ logLines })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const app = engine.app
  const etcd = await startEtcdMembers(app, 'q', machines)
  t.teardown(() => etcd.close())
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-etcdctl-'))
  t.teardown(() => removeTree(scratch))
  const view = async (headers: Record<string, string> = auth) => {
    const answer = await app.inject({ method: 'GET', url: '/api/v1/clusters/q/etcd', headers })
    if (answer.statusCode !== 200) throw new Error(`GET etcd: ${answer.statusCode} ${answer.body}`)
    return answer.json() as EtcdView
  }

  // The members as etcd reports them, through the engine's own certificate.
  const operator = { authorization: `Bearer ${await createToken(app, 'ops', 'operator')}` }
  const healthy = await view(operator)
  t.match(healthy, { voting_members: 3, healthy_members: 3, quorum: 2, leader: /^q-cp-[123]$/ })
  t.same(healthy.members.map((member) => member.name).sort(), ['q-cp-1', 'q-cp-2', 'q-cp-3'])
  t.ok(healthy.members.every((member) => member.reachable && member.healthy && member.errors.length === 0 && member.raft_term! >= 2 && member.raft_applied_index! > 0 && member.raft_index! >= member.raft_applied_index! - 100), 'every member healthy, with its raft indexes and term')
  t.equal(healthy.members.filter((member) => member.leader).length, 1, 'one leader')
  const listed = (await etcd.etcdctl(0, ['member', 'list'])).stdout.trim().split('\n').map((line) => line.split(', ')[0]!)
  t.same(healthy.members.map((member) => member.id_hex).sort(), listed.sort(), 'the IDs etcdctl prints')

  // The route needs its token in every spelling.
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/clusters/q/etcd' })).statusCode, 401)
  for (const url of ['/api/v1/clusters/q/%65tcd', '/api/v1/clusters/q/etc%64', '/api/v1/%63lusters/q/etcd']) {
    const anonymous = await app.inject({ method: 'GET', url })
    t.equal(anonymous.statusCode, 401, `${url} without a token`)
    t.notOk(anonymous.body.includes('q-cp-1'), `${url} shows nothing without a token`)
  }
  const viewer = { authorization: `Bearer ${await createToken(app, 'watcher', 'viewer')}` }
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/clusters/q/etcd', headers: viewer })).statusCode, 403, 'a viewer may not ask etcd')

  // An operator's etcdctl certificate: admins only, returned once, never stored or logged.
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/clusters/q/etcd/client-certificate', headers: operator, payload: {} })).statusCode, 403, 'operators may not have one')
  const issuedAnswer = await app.inject({ method: 'POST', url: '/api/v1/clusters/q/etcd/client-certificate', headers: auth })
  t.equal(issuedAnswer.statusCode, 200, issuedAnswer.body)
  t.equal(issuedAnswer.headers['cache-control'], 'no-store')
  const issued = issuedAnswer.json() as { common_name: string; ca_certificate: string; certificate: string; private_key: string; not_after: string }
  t.equal(issued.common_name, 'operator:configured-admin', "the default names the token that asked")
  t.ok(Math.abs(Date.parse(issued.not_after) - Date.now() - 24 * 3600_000) < 60_000, 'valid a day')
  const files = { cacert: path.join(scratch, 'ca.crt'), cert: path.join(scratch, 'client.crt'), key: path.join(scratch, 'client.key') }
  writeFileSync(files.cacert, issued.ca_certificate)
  writeFileSync(files.cert, issued.certificate)
  writeFileSync(files.key, issued.private_key, { mode: 0o600 })
  const etcdctl = (args: string[], cert = files.cert, key = files.key) => run('etcdctl', ['--endpoints', etcd.endpoints, '--cacert', files.cacert, '--cert', cert, '--key', key, '--dial-timeout', '3s', '--command-timeout', '5s', ...args])
  await etcdctl(['put', '/slipway/operator', 'was-here'])
  t.equal((await etcdctl(['get', '/slipway/operator', '--print-value-only'])).stdout.trim(), 'was-here', "the real etcdctl works with it")
  const named = (await app.inject({ method: 'POST', url: '/api/v1/clusters/q/etcd/client-certificate', headers: auth, payload: { common_name: 'alice@ops' } })).json() as { common_name: string }
  t.equal(named.common_name, 'alice@ops')
  const injected = await app.inject({ method: 'POST', url: '/api/v1/clusters/q/etcd/client-certificate', headers: auth, payload: { common_name: 'x, O=system:masters' } })
  t.equal(injected.statusCode, 400, 'a common name cannot add to the subject')

  const other = await x509ClusterPkiIssuer.issue('other', new Date())
  const [foreign] = await x509ClusterPkiIssuer.issueLeaves(other, [{ name: 'etcd-client', file: 'etcd/client', kind: 'certificate', authority: 'etcd', commonName: 'intruder', organizations: [], usages: ['client'], dnsNames: [], ipAddresses: [] }], new Date())
  writeFileSync(path.join(scratch, 'foreign.crt'), foreign!.certificatePem)
  writeFileSync(path.join(scratch, 'foreign.key'), foreign!.privateKeyPem, { mode: 0o600 })
  const refused = await etcdctl(['endpoint', 'health'], path.join(scratch, 'foreign.crt'), path.join(scratch, 'foreign.key')).then(() => 'accepted', (error: { stderr?: string }) => error.stderr ?? 'refused')
  t.not(refused, 'accepted', "a certificate under another cluster's etcd CA is refused")

  const keyBody = issued.private_key.split('\n')[1]!
  t.notOk(logLines.some((line) => line.includes(keyBody)), 'the key is in no log line')
  t.notOk(JSON.stringify(await engine.store.selectFrom('audit_log').selectAll().execute()).includes(keyBody), 'nor in the audit log')
  if (existsSync(config.database.path)) t.notOk(readFileSync(config.database.path).includes(keyBody), 'nor in the database file')
  const audit = (await app.inject({ method: 'GET', url: '/api/v1/audit', headers: auth })).json() as { entries: { route: string; status: number; principal: string }[] }
  t.match(audit.entries.filter((entry) => entry.route === '/api/v1/clusters/:name/etcd/client-certificate'), [{ status: 400 }, { status: 200 }, { status: 200, principal: 'configured-admin' }, { status: 403, principal: 'ops' }], 'every issue (and refusal) is audited')

  // The CLI: the members as a table, a certificate written for etcdctl.
  const url = await engine.start()
  const cli = (args: string[]) => slipway(args, { url, token: ADMIN_TOKEN })
  const table = await cli(['clusters', 'etcd', 'q'])
  t.equal(table.code, 0, table.stderr)
  t.match(table.stdout, /Healthy:\s+3 of 3 voting members \(a quorum is 2\)/)
  t.match(table.stdout, new RegExp(`q-cp-1\\s+${healthy.members.find((member) => member.name === 'q-cp-1')!.id_hex}\\s+yes`))
  t.equal((await cli(['clusters', 'etcd-certificate', 'q'])).code, 2, 'a certificate goes to files (or --json)')
  const written = await cli(['clusters', 'etcd-certificate', 'q', '--out-dir', path.join(scratch, 'cli'), '--common-name', 'cli-user'])
  t.equal(written.code, 0, written.stderr)
  t.match(written.stdout, /^cli-user, valid until .*\n  etcdctl --cacert .*ca\.crt --cert .*client\.crt --key .*client\.key/)
  t.equal(statSync(path.join(scratch, 'cli', 'client.key')).mode & 0o777, 0o600, 'the key is written 0600')
  const viaCli = await run('etcdctl', ['--endpoints', etcd.endpoints, '--cacert', path.join(scratch, 'cli', 'ca.crt'), '--cert', path.join(scratch, 'cli', 'client.crt'), '--key', path.join(scratch, 'cli', 'client.key'), 'get', '/slipway/operator', '--print-value-only'])
  t.equal(viaCli.stdout.trim(), 'was-here', "the CLI's files work with etcdctl")
  t.equal((await cli(['clusters', 'etcd-certificate', 'q', '--out-dir', path.join(scratch, 'cli')])).code, 2, 'existing files are kept without --force')

  // A member added, then removed, through the quorum check, with the operator's certificate.
  const quorum = new EtcdQuorum(new EtcdJsonGateway(async () => ({ endpoints: etcd.endpoints.split(','), caPem: issued.ca_certificate, client: { certificatePem: issued.certificate, privateKeyPem: issued.private_key } })))
  const added = await quorum.addMember('q', ['https://127.0.0.24:2380'])
  t.match(added, { name: '', peerUrls: ['https://127.0.0.24:2380'], clientUrls: [] })
  const grown = await view()
  t.match(grown, { voting_members: 4, healthy_members: 3, quorum: 3 }, 'four voting members, the new one not started: three still make the quorum')
  t.match(grown.members.find((member) => member.id === added.id), { name: '', reachable: false, healthy: false, errors: ['not started: it has no client URL yet'] })
  t.match(await quorum.removeMember('q', added.id), { id: added.id })
  t.match(await view(), { voting_members: 3, healthy_members: 3 }, 'and it is gone again')
  await t.rejects(quorum.removeMember('q', '12345'), { code: 'ETCD_MEMBER_NOT_FOUND' })

  // One member stopped: reported, no room for a control-plane restart, a removal that would break the quorum refused.
  await etcd.stop(2)
  const started = Date.now()
  const degraded = await view()
  t.ok(Date.now() - started < 3_000, `a dead member does not hold the answer up (${Date.now() - started} ms)`)
  t.match(degraded, { voting_members: 3, healthy_members: 2 })
  t.match(degraded.members.find((member) => member.name === 'q-cp-3'), { reachable: false, healthy: false, errors: [/127\.0\.0\.23:2379.*ECONNREFUSED/] })
  const look = await quorum.look('q')
  t.equal(liveControlPlaneAllowance(look, new Set()).allowance, 0, 'with one of three unhealthy, no other member may go down')
  const q1 = look.members.find((member) => member.name === 'q-cp-1')!
  await t.rejects(quorum.removeMember('q', q1.id), { code: 'ETCD_QUORUM_AT_RISK', message: /removing q-cp-1 would leave 1 healthy of 2 voting members, fewer than the 2 a quorum needs; not healthy: q-cp-3/ })
  t.equal((await view()).voting_members, 3, 'the refused removal changed nothing')
  const degradedTable = await cli(['clusters', 'etcd', 'q'])
  t.equal(degradedTable.code, 1, 'the CLI exits 1 while a member is not healthy')
  t.match(degradedTable.stdout, /q-cp-3\s+\S+\s+no\s+.*ECONNREFUSED/)

  // A rollout run over the three members, gated on this etcd, starts none of them and says why.
  const clock = new ManualClock()
  const repository = new FixedRolloutRepository()
  const locks = new FixedRolloutLocks()
  const targets = new FixedRolloutTargets(['q'], machines.map((machine, index) => ({ uuid: machine.uuid, cluster: 'q', labels: {}, role: 'control-plane' as const, hostname: `q-cp-${index + 1}`, machineState: 'installed', drift: 'outdated' as const })))
  const runId = (await new RolloutService(repository, targets, locks, clock.now).create({ cluster: 'q', max_parallel: 2 })).id
  const executor = new RolloutExecutor({
    repository,
    locks,
    drainerFor: async () => new EmptyNodeDrainer(),
    shell: new EmptyMachineShell(),
    sshTargetFor: async () => ({ host: '127.0.0.1', port: 22, username: 'core', privateKeyPem: '' }),
    pinHostKey: async () => {},
    expectedConfig: async () => '{}',
    driftOf: async () => undefined,
    controlPlaneMembers: async () => 3,
    etcd: quorum,
    clock: clock.now,
    sleep: clock.sleep,
    log: () => {},
  })
  t.teardown(() => executor.stop())
  await executor.tick()
  await executor.tick()
  t.same((await repository.listMachines(runId)).map((machine) => machine.phase), ['waiting', 'waiting', 'waiting'], 'no control-plane member started')
  t.same(locks.holders('q'), [])
  t.match(repository.events(runId).map((event) => event.message).filter((message) => message.startsWith('etcd of cluster q')), [/^etcd of cluster q: not healthy: q-cp-3 \(.*ECONNREFUSED.*\); with 3 voting member\(s\) 1 may be down at once, so no control-plane member starts until etcd is healthy again$/])

  // A member's client port answering garbage (a double with the member's own certificate): reported, not a crash.
  const garbage = await EtcdServerDouble.start({
    serving: { certificatePem: readFileSync(etcd.pki(2, 'etcd/server.crt'), 'utf8'), privateKeyPem: readFileSync(etcd.pki(2, 'etcd/server.key'), 'utf8') },
    clientCa: issued.ca_certificate,
    host: '127.0.0.23',
    port: 2379,
    answer: () => ({ status: 200, body: '{"raftIndex": {"not": "a number"}}' }),
  })
  const confused = (await view()).members.find((member) => member.name === 'q-cp-3')!
  await garbage.close()
  t.match(confused, { reachable: false, healthy: false, errors: [/maintenance\/status did not answer as etcd does: \/raftIndex/] })

  // Back: once healthy and caught up, with the others healthy, it counts as back.
  etcd.start(2)
  const back = await until('q-cp-3 back in etcd', async () => (memberNotBack(await quorum.look('q'), 'q-cp-3') === undefined ? true : undefined), 30_000, 250)
  t.ok(back)
  t.match(await view(), { healthy_members: 3 })

  // Every member gone: the route says etcd cannot be asked.
  await Promise.all([0, 1, 2].map((n) => etcd.stop(n)))
  const gone = await app.inject({ method: 'GET', url: '/api/v1/clusters/q/etcd', headers: auth })
  t.equal(gone.statusCode, 502)
  t.match(gone.json(), { code: 'ETCD_UNREACHABLE', message: /no etcd member of cluster "q" answered: https:\/\/127\.0\.0\.2[123]:2379/ })
  t.match((await app.inject({ method: 'GET', url: '/api/v1/clusters/none/etcd', headers: auth })).json(), { code: 'CLUSTER_NOT_FOUND' })
})
