/**
 * The whole provisioning loop with real machines: four QEMU VMs with empty disks PXE-boot from the
 * engine (the only DHCP/TFTP/HTTP server on a bridge in a private network namespace), boot the lab OS,
 * run the discovery agent the engine serves, wait for a role, install it and boot again as installed
 * machines (lab/pxe-lab.ts, the same code as `npm run lab`), which report the config they run to the
 * engine and stay up serving SSH.
 *
 * Two machines first: the 3-member control plane must not be started with them (all or nothing).
 * Then two more: three control-plane members and one node. Needs root, /dev/net/tun, qemu-system-x86,
 * ipxe-qemu, curl, dnsmasq-base (router advertisements) and apt access for the lab OS packages; it
 * fails (never skips) when one is missing.
 */
import t from 'tap'
import { CLUSTER, INSTALLED_MARKER, PxeLab, REPORTED_MARKER, SSHD_MARKER, type ApiMachine, type LabMachine } from '../../lab/pxe-lab.ts'
import { validateWithOfficialSchema } from '../helpers/ignition-schema.ts'
import { until } from '../helpers/wait.ts'

// Four TCG VMs boot, install and roll twice: 160-220 s on a quiet 2-core machine, more on a loaded
// one. The runner's 300 s for every file would end it; this file asks for the time its subtest has.
t.setTimeout(1_200_000)

const PROFILE_OF_ROLE: Record<string, string> = { 'control-plane': 'etcd-member-kubernetes-control-plane', node: 'kubernetes-node' }

const hyphenated = (mac: string) => mac.replaceAll(':', '-')

t.test('4 VMs: discovered, the control plane waits for its quorum, 3 control-plane members and a node install and boot installed', { timeout: 1_200_000 }, async (t) => {
  const progress: string[] = []
  const lab = await PxeLab.start({ controlPlane: 3, nodesMax: 1, log: (line) => progress.push(line) })
  let passed = false
  t.teardown(async () => {
    if (!passed) {
      t.comment(`--- lab progress\n${progress.join('\n')}`)
      t.comment(`--- engine log (last 8000 chars)\n${lab.engine.process.stdout().slice(-8000)}\n${lab.engine.process.stderr().slice(-2000)}`)
      for (const machine of lab.machines) t.comment(`--- ${machine.name} console (last 2500 chars)\n${machine.vm.serial().replace(/\x1b\[[0-9;=?]*[a-zA-Z]/g, '').slice(-2500)}`)
    }
    await lab.cleanup()
  })
  lab.startProgress()
  const machinesNow = () => lab.apiMachines()
  const find = (machines: ApiMachine[], vm: LabMachine) => machines.find((machine) => machine.uuid === vm.uuid)

  // Two machines: discovered with the identity QEMU gave them, and nothing scheduled.
  const poweredOn = Date.now()
  const first = [await lab.powerOn(), await lab.powerOn()]
  const discovered = await until(
    'the first 2 VMs to be discovered',
    async () => {
      const machines = await machinesNow()
      return first.every((vm) => find(machines, vm)?.state === 'discovered') ? machines : undefined
    },
    180_000,
    500,
    { abort: () => lab.failure(first) },
  )
  for (const vm of first) {
    const machine = find(discovered, vm)!
    t.equal(machine.boot_mac, vm.mac, `${vm.name} discovered with the MAC QEMU was given (${vm.mac}) and its SMBIOS UUID`)
    t.ok(machine.interfaces.some((nic) => nic.is_boot && nic.mac === vm.mac && nic.ipv4?.startsWith(`${lab.network.prefix}.`)), `${vm.name}'s boot interface has its DHCP address`)
  }
  // Their agents ask for an install slot and are told no: they have no role yet.
  await until(
    'both agents to be refused an install slot (409: no role yet)',
    async () => {
      const waiting = first.filter((vm) =>
        lab.engine.lines().some(({ entry }) => entry.status === 409 && entry.method === 'POST' && String(entry.url).startsWith('/install-authorization?') && String(entry.url).includes(vm.uuid)),
      )
      return waiting.length === first.length ? true : undefined
    },
    60_000,
    500,
    { abort: () => lab.failure(first) },
  )
  const pass = await lab.engine.api<{ assignments: unknown[]; clusters: { name: string; state: string; waiting: string[] }[] }>('POST', '/api/v1/scheduler/run')
  t.same(pass.assignments, [], 'with 2 of 3 control-plane machines, the scheduler assigns nothing')
  t.match(pass.clusters, [{ name: CLUSTER, state: 'pending', waiting: [/control plane needs 3 more qualifying machine\(s\), 2 available: nothing assigned/] }])
  t.same(await lab.engine.api('GET', '/api/v1/scheduler'), [], 'no machine has a role')
  t.ok(first.every((vm) => !vm.vm.serial().includes('role config received')), 'no agent got a role config')

  // Two more: the quorum is there.
  const second = [await lab.powerOn(), await lab.powerOn()]
  const all = [...first, ...second]
  const installedAt = await lab.waitUntilInstalled(all, 600_000)
  const wallSeconds = (Math.max(...installedAt.values()) - poweredOn) / 1000
  t.comment(`power-on of the first VM to all 4 booted installed: ${wallSeconds.toFixed(1)} s (${lab.accel}; the last two powered on ${((second[0]!.poweredOnAt - poweredOn) / 1000).toFixed(1)} s after the first)`)
  for (const vm of all) t.comment(`${vm.name}: power-on to installed boot ${((installedAt.get(vm.name)! - vm.poweredOnAt) / 1000).toFixed(1)} s`)

  const machines = await machinesNow()
  t.equal(machines.length, 4, 'the engine knows exactly the 4 VMs')
  const installedSha = new Map<string, string>()
  const detail = await lab.engine.api<{ provisioning: { state: string }; members: { machine_uuid: string; role: string; hostname: string; ip: string }[] }>('GET', `/api/v1/clusters/${CLUSTER}`)
  t.equal(detail.provisioning.state, 'scheduled')
  // Deterministic: the control plane is the three lowest boot MACs among the machines discovered when
  // the pass that assigned it ran (vm3 and vm4 power on together; either may report first).
  const historyOf = async (vm: LabMachine) =>
    (await lab.engine.api<{ events: { to_state: string; at: string }[] }>('GET', `/api/v1/machines/${vm.uuid}`)).events
  const histories = new Map<string, { to_state: string; at: string }[]>()
  for (const vm of all) histories.set(vm.uuid, await historyOf(vm))
  const roleOf = (vm: LabMachine) => detail.members.find((member) => member.machine_uuid === vm.uuid)?.role
  const controlPlane = all.filter((vm) => roleOf(vm) === 'control-plane')
  const passAt = controlPlane.map((vm) => histories.get(vm.uuid)!.find((event) => event.to_state === 'scheduled')!.at).sort()[0]!
  const availableAtPass = all.filter((vm) => histories.get(vm.uuid)!.find((event) => event.to_state === 'discovered')!.at <= passAt)
  t.same(
    controlPlane.map((vm) => vm.name),
    [...availableAtPass].sort((a, b) => (a.mac < b.mac ? -1 : 1)).slice(0, 3).map((vm) => vm.name),
    `the control plane is the 3 lowest boot MACs discovered by its pass (${controlPlane.map((vm) => vm.name).join(', ')})`,
  )
  t.ok(roleOf(first[0]!) === 'control-plane' && roleOf(first[1]!) === 'control-plane', 'the two first machines are in it')
  t.equal(all.filter((vm) => roleOf(vm) === 'node').length, 1, 'and the fourth machine is the node')

  for (const vm of all) {
    const machine = find(machines, vm)!
    const member = detail.members.find((candidate) => candidate.machine_uuid === vm.uuid)!
    t.equal(machine.state, 'installed', `${vm.name} is installed`)
    t.equal(machine.boot_mac, vm.mac)
    const history = await lab.engine.api<{ events: { from_state: string | null; to_state: string; at: string }[] }>('GET', `/api/v1/machines/${vm.uuid}`)
    t.same(
      history.events.map((event) => event.to_state),
      ['discovered', 'scheduled', 'installing', 'installed'],
      `${vm.name} went discovered -> scheduled -> installing -> installed`,
    )
    t.ok(history.events.every((event, index) => index === 0 || event.at >= history.events[index - 1]!.at), 'each transition timestamped, in order')

    // What the VM installed is the engine's role config, valid against the official schema.
    const reported = new RegExp(`${INSTALLED_MARKER} hostname=(\\S+) role=(\\S+) ignition-sha256=([0-9a-f]{64})`).exec(vm.vm.serial())
    t.ok(reported, `${vm.name} booted installed and read its config back from its disk`)
    const [, hostname, role, sha256] = reported ?? []
    t.equal(hostname, member.hostname, `${vm.name} applied its hostname ${member.hostname}`)
    t.equal(role, PROFILE_OF_ROLE[member.role], `${vm.name} carries its role (${member.role})`)
    installedSha.set(vm.uuid, sha256!)
    // The role config carries the cluster's keys: served to the VM alone (its address, its slot), never to this host.
    const fromHost = await lab.engine.get(`/ignition?uuid=${vm.uuid}&mac=${hyphenated(vm.mac)}&os=installed`)
    t.equal(fromHost.status, 403, `${vm.name}'s role config is refused to another address (${fromHost.body.slice(0, 60)})`)
    const deliveries = (await lab.engine.api<{ entries: { principal: string; summary: string; source_ip: string }[] }>('GET', '/api/v1/audit?limit=1000')).entries.filter((entry) => entry.principal === `machine:${vm.uuid}`)
    t.same(deliveries.map((entry) => [entry.summary, entry.source_ip]), [['secret-bearing ignition delivered (install slot)', member.ip]], `${vm.name} got its role config once, in its install slot, at its own address`)
    // What an operator sees of it (secrets redacted): valid, and the right keys for the role.
    const view = await lab.engine.api<{ ignition: { body: string } }>('GET', `/api/v1/machines/${vm.uuid}/boot`)
    const config = JSON.parse(view.ignition.body)
    t.same(validateWithOfficialSchema(config), { ok: true, errors: [] }, `${vm.name}'s Ignition is valid against the official schema`)
    const paths = (config.storage.files as { path: string }[]).map((file) => file.path)
    t.notOk(paths.some((file) => /(^|\/)ca\.key$|front-proxy-ca\.key$/.test(file)), 'no CA key: the engine signs (kubeadm external-CA mode)')
    if (member.role === 'control-plane') t.ok(paths.includes('/etc/kubernetes/pki/etcd/peer.key'), 'a control-plane member gets its etcd peer key')
    else t.same(paths.filter((file) => file.endsWith('.key') || file.endsWith('.conf')), ['/etc/kubernetes/kubelet.conf'], "a node's only key is its kubelet's")

    const reports = lab.engine.lines().filter(({ entry }) => entry.method === 'POST' && String(entry.url).startsWith(`/lifecycle/install/success?uuid=${vm.uuid}`))
    t.equal(reports.map(({ entry }) => entry.status).join(), '200', `${vm.name} reported its install once`)
    const ipxeAfterInstall = lab.engine
      .lines()
      .filter(({ entry }) => entry.method === 'GET' && String(entry.url).startsWith('/ipxe?') && String(entry.url).includes(vm.uuid))
    t.equal(ipxeAfterInstall.length, 2, `${vm.name} netbooted twice: discovery, then installed`)
  }
  const initialCluster = (await lab.engine.api<{ metadata: { etcd_initial_cluster: string } }>('GET', `/api/v1/groups/${CLUSTER}-${CLUSTER}-cp-1`)).metadata.etcd_initial_cluster
  t.equal(initialCluster.split(',').length, 3, `etcd's initial cluster names the 3 members: ${initialCluster}`)

  // Installed machines stay up: each reports the config it runs (it is the one the engine serves) and
  // serves SSH, so that the engine can roll it.
  await lab.waitUntilServing(all, 120_000)
  const drift = await lab.engine.api<{ uuid: string; state: string; reported_sha256: string; expected_sha256: string }[]>('GET', '/lifecycle/ignition')
  for (const vm of all) {
    const serial = vm.vm.serial()
    t.ok(serial.includes(`${REPORTED_MARKER} up_to_date`), `${vm.name} reported its config and the engine found it up to date`)
    // Up to date: the config read back from its disk is, canonically, exactly the one the engine serves it.
    t.match(drift.find((record) => record.uuid === vm.uuid), { state: 'up_to_date', expected_sha256: /^[0-9a-f]{64}$/ }, `the engine's drift listing has ${vm.name} up to date`)
    t.match(serial, new RegExp(`${SSHD_MARKER} ssh-ed25519 [A-Za-z0-9+/]+=*`), `${vm.name} serves SSH with an ed25519 host key`)
    const ip = detail.members.find((member) => member.machine_uuid === vm.uuid)!.ip
    // No SSH client needed: Dropbear sends its banner first.
    const { stdout } = await lab.network.exec('timeout', ['5', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/22 && head -n 1 <&3`])
    t.match(stdout, /^SSH-2\.0-dropbear/, `${vm.name} (${ip}) answers on port 22 with an SSH banner`)
  }

  // The control plane's etcd, for real: each control-plane VM runs etcd 3.4 from the member
  // configuration and certificates the engine rendered; the three form one cluster over mutual TLS.
  // This host reaches it with a client certificate the engine issued (the members refuse any other).
  const etcd = await lab.etcd()
  const controlPlaneIps = detail.members.filter((member) => member.role === 'control-plane').map((member) => member.ip)
  t.same(etcd.endpoints.sort(), controlPlaneIps.map((ip) => `https://${ip}:2379`).sort(), "etcd's endpoints are the control-plane members' addresses")
  const health = await etcd.healthy(3, 90_000, () => lab.failure(all))
  t.equal(health.length, 3, `endpoint health on all 3 members: ${health.map((entry) => entry.endpoint).join(', ')}`)
  const memberList = JSON.parse(await etcd.ctl(['member', 'list', '-w', 'json'])) as { members: { name: string; peerURLs: string[]; clientURLs: string[] }[] }
  t.same(
    memberList.members.map((member) => member.name).sort(),
    detail.members.filter((member) => member.role === 'control-plane').map((member) => member.hostname).sort(),
    'member list: exactly the 3 control-plane machines, by their hostnames',
  )
  t.ok(
    memberList.members.every((member) => controlPlaneIps.some((ip) => member.peerURLs.includes(`https://${ip}:2380`))),
    "each member's peer URL is its machine's boot address (the scheduler's initial cluster)",
  )
  await etcd.ctl(['put', 'slipway-lab/written-on-one', `at ${Date.now()}`], [etcd.endpoints[0]!])
  const readBack = await etcd.ctl(['get', 'slipway-lab/written-on-one', '--print-value-only'], [etcd.endpoints[2]!])
  t.match(readBack, /^at \d+/, `a put through ${etcd.endpoints[0]} is read through ${etcd.endpoints[2]}`)

  // From here to the end of both rolling updates, a sampler writes to etcd and reads back every
  // 200 ms: not one quorum write may fail while members restart one at a time.
  const sampler = etcd.startSampler(200)
  await until('the sampler to write', () => (sampler.samples().some((sample) => sample.write === 'ok') ? true : undefined), 30_000, 200)

  // A rolling update for real: a template change makes all 4 outdated; a run asked for max_parallel
  // 2 restarts them over SSH, the node first, then the control plane one member at a time (etcd's
  // quorum allows one of three down, whatever the run asked for); each boots again, reads its new
  // config back from its disk and reports it, and a control-plane member's slot goes back only once
  // its etcd member is healthy and caught up. There is no Kubernetes in the lab, so the run does not drain.
  const template = (await lab.engine.api<{ body: string }>('GET', '/api/v1/templates/ignition/kubernetes-node.json')).body
  const templateCp = (await lab.engine.api<{ body: string }>('GET', '/api/v1/templates/ignition/kubernetes-control-plane.json')).body
  // The change: the role file's mode (0644 -> 0640). Role and hostname stay, so the second boot shows them.
  const change = (body: string) => body.replace('{ "path": "/etc/slipway/role", "mode": 420,', '{ "path": "/etc/slipway/role", "mode": 416,')
  t.not(change(template), template, 'the template change applies')
  await lab.engine.api('PUT', '/api/v1/templates/ignition/kubernetes-node.json', { body: change(template) })
  await lab.engine.api('PUT', '/api/v1/templates/ignition/kubernetes-control-plane.json', { body: change(templateCp) })
  await until(
    'all 4 machines to be outdated',
    async () => ((await lab.engine.api<{ state: string }[]>('GET', '/lifecycle/ignition')).filter((record) => record.state === 'outdated').length === 4 ? true : undefined),
    30_000,
    500,
    { abort: () => lab.failure(all) },
  )
  t.pass('the template change made all 4 outdated before any new report')
  const rollStarted = Date.now()
  const created = await lab.engine.api<{ id: string; machines: unknown[] }>('POST', '/api/v1/rollouts', {
    cluster: CLUSTER,
    max_parallel: 2,
    strategy: 'reboot',
    drain: { enabled: false },
    ssh: { user: 'root' },
    ready_timeout_seconds: 240,
  })
  t.equal(created.machines.length, 4)
  let maxHolders = 0
  type Run = { state: string; finished_at: string | null; machines: { hostname: string; uuid: string; phase: string; started_at: string; finished_at: string }[]; events: { message: string }[] }
  const run = await until<Run>(
    'the rolling update to finish',
    async () => {
      const holders = (await lab.engine.api<{ holders: unknown[] }>('GET', `/api/v1/locks/${CLUSTER}`)).holders.length
      maxHolders = Math.max(maxHolders, holders)
      const current = await lab.engine.api<Run>('GET', `/api/v1/rollouts/${created.id}`)
      return current.finished_at ? current : undefined
    },
    600_000,
    500,
    { abort: () => lab.failure(all) },
  )
  t.equal(run.state, 'completed', JSON.stringify(run.events.slice(-6)))
  t.comment(`rolling update of 4 VMs, one at a time: ${((Date.now() - rollStarted) / 1000).toFixed(1)} s`)
  for (const machine of run.machines) {
    t.comment(`${machine.hostname}: slot to release ${((Date.parse(machine.finished_at) - Date.parse(machine.started_at)) / 1000).toFixed(1)} s`)
  }
  t.equal(maxHolders, 1, 'the semaphore never showed more than 1 holder')
  t.ok(run.events.some((event) => /etcd/.test(event.message)), 'the run waited on etcd before releasing control-plane members')
  // The last machine's console may lag behind its report (its SSH server starts after it).
  await until(
    'every VM to serve SSH again after its restart',
    async () => (all.every((vm) => vm.vm.serial().split(SSHD_MARKER).length - 1 >= 2) ? true : undefined),
    60_000,
    500,
    { abort: () => lab.failure(all) },
  )
  const spans = run.machines.map((machine) => [Date.parse(machine.started_at), Date.parse(machine.finished_at)] as const).sort((a, b) => a[0] - b[0])
  t.ok(spans.every((span, index) => index === 0 || span[0] >= spans[index - 1]![1]), 'one machine at a time though the run asked for 2: each started after the previous one finished')
  t.equal(run.machines[3]!.hostname.includes('-cp-'), true, 'the node went first, the control plane after it')
  for (const vm of all) {
    const serial = vm.vm.serial()
    t.ok(serial.includes('slipway-lab: applying new config (reboot)'), `${vm.name} was told over SSH to apply its new config`)
    const boots = [...serial.matchAll(new RegExp(`${INSTALLED_MARKER} hostname=\\S+ role=\\S+ ignition-sha256=([0-9a-f]{64})`, 'g'))]
    t.equal(boots.length, 2, `${vm.name} really restarted: two installed boots (${serial.split(INSTALLED_MARKER).length - 1} marker(s))`)
    t.not(boots.at(-1)?.[1], installedSha.get(vm.uuid), `${vm.name} came back with another config, read back from its disk`)
    t.equal(serial.split(`${REPORTED_MARKER} up_to_date`).length - 1, 2, `${vm.name} reported up to date after the restart`)
    const hostKeys = [...serial.matchAll(new RegExp(`${SSHD_MARKER} (ssh-ed25519 [A-Za-z0-9+/]+=*)`, 'g'))].map((match) => match[1])
    t.ok(hostKeys.length === 2 && hostKeys[0] === hostKeys[1], `${vm.name} kept its SSH host key across the restart (the engine pinned it)`)
  }
  t.same((await lab.engine.api<{ holders: unknown[] }>('GET', `/api/v1/locks/${CLUSTER}`)).holders, [], 'no slot left held')

  // Machine-driven mode: the machines roll themselves. Each runs the rolling agent (the same
  // generic/rolling-agent.sh a Flatcar timer runs); labelled slipway.io/rolling=machine, an outdated
  // machine takes its cluster's slot, fetches its new config, restarts into it, reports, releases.
  // There is no Kubernetes in the lab: the machines are labelled not to drain (an agent that must
  // drain and cannot does not restart).
  for (const vm of all) await lab.engine.api('PUT', `/api/v1/machines/${vm.uuid}/labels`, { 'slipway.io/rolling': 'machine', 'slipway.io/rolling-drain': 'skip' })
  const secondChange = (body: string) => change(body).replace('{ "path": "/etc/slipway/role", "mode": 416,', '{ "path": "/etc/slipway/role", "mode": 384,')
  await lab.engine.api('PUT', '/api/v1/templates/ignition/kubernetes-node.json', { body: secondChange(template) })
  await lab.engine.api('PUT', '/api/v1/templates/ignition/kubernetes-control-plane.json', { body: secondChange(templateCp) })
  const selfStarted = Date.now()
  await until(
    'the fleet to be outdated again',
    async () => ((await lab.engine.api<{ state: string }[]>('GET', '/lifecycle/ignition')).some((record) => record.state === 'outdated') ? true : undefined),
    30_000,
    500,
    { abort: () => lab.failure(all) },
  )
  await t.rejects(
    lab.engine.api('POST', '/api/v1/rollouts', { cluster: CLUSTER, drain: { enabled: false }, ssh: { user: 'root' } }),
    /409 .*NOTHING_TO_ROLL/,
    'an engine-driven run leaves machine-driven machines alone',
  )
  // The run above left the cluster's lock group 2 slots (its max_parallel): a node and a control-plane
  // member may restart together, two control-plane members never (the engine asks etcd).
  const controlPlaneUuids = new Set(detail.members.filter((member) => member.role === 'control-plane').map((member) => member.machine_uuid))
  let selfMaxControlPlaneHolders = 0
  await until(
    'every machine to roll itself and report up to date',
    async () => {
      const holding = (await lab.engine.api<{ holders: { id: string }[] }>('GET', `/api/v1/locks/${CLUSTER}`)).holders
      selfMaxControlPlaneHolders = Math.max(selfMaxControlPlaneHolders, holding.filter((holder) => controlPlaneUuids.has(holder.id)).length)
      const drift = await lab.engine.api<{ uuid: string; state: string }[]>('GET', '/lifecycle/ignition')
      const restarted = all.every((vm) => vm.vm.serial().split(INSTALLED_MARKER).length - 1 === 3)
      const holders = (await lab.engine.api<{ holders: unknown[] }>('GET', `/api/v1/locks/${CLUSTER}`)).holders.length
      return restarted && holders === 0 && drift.every((record) => record.state === 'up_to_date') ? true : undefined
    },
    600_000,
    500,
    { abort: () => lab.failure(all) },
  )
  t.comment(`machine-driven rolling update of 4 VMs: ${((Date.now() - selfStarted) / 1000).toFixed(1)} s`)
  t.equal(selfMaxControlPlaneHolders, 1, 'machine-driven: never more than 1 control-plane member holding a slot')
  // The agent prints its line after the engine answered its release: the last machine's line may trail
  // the empty semaphore by the time its console takes to reach us.
  const released = 'slipway-lab: slipway-rolling: up to date: reboot slot released (no drain: slipway.io/rolling-drain=skip)'
  await until('every console to show its release', () => (all.every((vm) => vm.vm.serial().includes(released)) ? true : undefined), 30_000, 200).catch(() => undefined)
  for (const vm of all) {
    const serial = vm.vm.serial()
    t.ok(serial.includes('slipway-lab: slipway-rolling: outdated: took a reboot slot'), `${vm.name} took a slot itself`)
    t.ok(serial.includes(released), `${vm.name} gave it back after its restart`)
  }
  const { samples, summary } = await sampler.stop()
  const worst = Object.entries(summary.longestMemberUnavailableMs).sort((a, b) => b[1] - a[1])[0]
  t.comment(
    `etcd sampler over both rolling updates: ${summary.samples} samples in ${((summary.lastAt - summary.firstAt) / 1000).toFixed(0)} s, ${summary.failedWrites} failed quorum writes, ${summary.failedReads} failed reads, slowest write ${summary.slowestWriteMs} ms, longest unavailability of a single member ${worst ? `${(worst[1] / 1000).toFixed(1)} s (${worst[0]})` : 'none'}`,
  )
  t.ok(summary.samples > 100, `the sampler ran through the updates (${summary.samples} samples)`)
  t.equal(summary.failedWrites, 0, `zero failed quorum writes${summary.failedWrites ? `: ${samples.filter((sample) => sample.write === 'failed').map((sample) => sample.detail).slice(0, 3).join('; ')}` : ''}`)
  t.equal(summary.failedReads, 0, 'every write read back through another member')
  t.ok(Object.values(summary.longestMemberUnavailableMs).filter((ms) => ms > 0).length === 3, 'each of the 3 members was down during the updates (the sampler saw every restart)')

  // Member replacement: a control-plane machine dies for good (its QEMU is killed), with a sampler
  // running again. The operator removes it from the cluster: the engine removes its etcd member (the
  // two left are healthy: the quorum allows it), its membership and its address. A fresh machine
  // powered on takes its place and hostname; the engine adds it to the running etcd before its role
  // config is served, and it starts with initial-cluster-state existing: the cluster is 3 again.
  const replacing = etcd.startSampler(200)
  await until('the sampler to write', () => (replacing.samples().some((sample) => sample.write === 'ok') ? true : undefined), 30_000, 200)
  // A follower: the leader's abrupt death would add an election (about a second, more under TCG), which
  // the sampler's 2 s write deadline may not cover; the figure for that case is etcd's, not the engine's.
  const statuses = JSON.parse(await etcd.ctl(['endpoint', 'status', '-w', 'json'])) as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[]
  const leaderEndpoint = statuses.find((entry) => entry.Status.header.member_id === entry.Status.leader)?.Endpoint
  const victimMember = detail.members.find((member) => member.role === 'control-plane' && !leaderEndpoint?.includes(`//${member.ip}:`))!
  const victim = all.find((vm) => vm.uuid === victimMember.machine_uuid)!
  await victim.vm.stop()
  await until(
    `${victimMember.hostname}'s etcd member to be unreachable`,
    async () => {
      const entries = JSON.parse(await etcd.ctl(['endpoint', 'health', '-w', 'json']).catch((error: { stdout?: string }) => error.stdout ?? '[]')) as { endpoint: string; health: boolean }[]
      return entries.some((entry) => entry.endpoint.includes(`//${victimMember.ip}:`) && !entry.health) ? true : undefined
    },
    60_000,
    1000,
  )
  const replacementStarted = Date.now()
  const removal = await lab.engine.api<{ etcd: { removed: string } | null; machine: { state: string } }>('DELETE', `/api/v1/clusters/${CLUSTER}/members/${victim.uuid}`)
  t.match(removal, { etcd: { removed: victimMember.hostname }, machine: { state: 'discovered' } }, `${victimMember.hostname} removed: its etcd member too`)
  const twoLeft = JSON.parse(await etcd.ctl(['member', 'list', '-w', 'json'])) as { members: { name: string }[] }
  t.same(twoLeft.members.map((member) => member.name).sort(), memberList.members.map((member) => member.name).filter((name) => name !== victimMember.hostname).sort(), 'etcd has the 2 members left')
  const fresh = await lab.powerOn()
  await lab.waitUntilInstalled([fresh], 300_000)
  const healed = await lab.engine.api<{ members: { machine_uuid: string; role: string; hostname: string; ip: string }[] }>('GET', `/api/v1/clusters/${CLUSTER}`)
  const freshMember = healed.members.find((member) => member.machine_uuid === fresh.uuid)
  t.match(freshMember, { role: 'control-plane', hostname: victimMember.hostname }, `${fresh.name} took ${victimMember.hostname}'s place`)
  const joined = new RegExp(`etcd member ${victimMember.hostname} started \\(existing cluster; state file system created\\)`)
  await until(`${fresh.name}'s etcd to start`, () => (joined.test(fresh.vm.serial()) ? true : undefined), 60_000, 250, { abort: () => lab.failure([fresh]) })
  t.pass(`${fresh.name} started its etcd with initial-cluster-state existing: it joined the running cluster`)
  const etcdAfter = await lab.etcd()
  const threeAgain = await etcdAfter.healthy(3, 180_000, () => lab.failure([fresh]))
  t.ok(threeAgain.some((entry) => entry.endpoint.includes(`//${freshMember!.ip}:`)), `the replacement (${freshMember!.ip}) is one of the 3 healthy members`)
  t.comment(`member replacement: removal to 3 healthy members ${((Date.now() - replacementStarted) / 1000).toFixed(1)} s`)
  const replacement = await replacing.stop()
  t.comment(
    `etcd sampler through the replacement: ${replacement.summary.samples} samples, ${replacement.summary.failedWrites} failed quorum writes, ${replacement.summary.failedReads} failed reads, slowest write ${replacement.summary.slowestWriteMs} ms`,
  )
  t.equal(replacement.summary.failedWrites, 0, 'zero failed quorum writes while a member died and was replaced')
  const reservations = await lab.engine.api<{ mac: string }[]>('GET', '/api/v1/dhcp/reservations')
  t.notOk(reservations.some((reservation) => reservation.mac === victim.mac), "the dead machine's address reservation is gone")
  t.ok(reservations.some((reservation) => reservation.mac === fresh.mac), "and the replacement's address is reserved")
  passed = t.passing()
})
