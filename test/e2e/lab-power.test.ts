/**
 * Power in the PXE lab, for real: each VM has its own BMC inside the lab's network namespace, four an
 * IPMI BMC (OpenIPMI's ipmi_sim), one the Redfish double run as a process, each driving the same
 * chassis program, which runs the VM's QEMU (power on starts it, power off ends it).
 * The machines are enrolled by their BMCs before they ever booted; the engine (its API, ipmitool)
 * powers one on, then four more in batches of two: each netboots from the engine and is discovered;
 * the five install their roles and form a 5-member etcd. Then one is re-provisioned (its etcd member
 * removed and added again, network boot, power cycle: it installs again and rejoins etcd); another
 * rolls with the poweroff strategy (powered on again through its BMC); and the cluster is destroyed
 * with its machines wiped (each deprovisioned through its BMC: wiped on its live boot, powered off).
 * Needs root, /dev/net/tun, qemu-system-x86, ipxe-qemu, openipmi and ipmitool: fails (never skips)
 * when one is missing.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync, truncateSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { CLUSTER, INSTALLED_MARKER, PxeLab, SSHD_MARKER, type ApiMachine } from '../../lab/pxe-lab.ts'
import { qemuArgs } from '../../lab/qemu.ts'
import { startIpmiSim } from '../helpers/ipmi-sim.ts'
import { startLabRedfishBmc } from '../helpers/redfish-bmc-launcher.ts'
import { until } from '../helpers/wait.ts'

// It may first wait for another lab on this machine (lab/pxe-lab.ts: one at a time).
t.setTimeout(1_200_000)

/** What the test reads of a VM's BMC, IPMI or Redfish alike: the chassis calls it made and whether the VM runs. */
interface LabBmc {
  calls(): string[]
  machineOn(): boolean
  stop(): Promise<void>
}
/** Which machine's BMC speaks Redfish. */
const REDFISH_MACHINE = 5

t.test('the engine powers enrolled VMs on through their IPMI BMCs: one, then four in batches of two; each is discovered', { timeout: 1_200_000 }, async (t) => {
  const progress: string[] = []
  // Discovery is what is measured here; once all five are discovered they make the flavor's quorum of
  // 5 and go on to install, which the test leaves them to.
  const lab = await PxeLab.start({ controlPlane: 5, nodesMax: 0, log: (line) => progress.push(line) })
  const bmcs: LabBmc[] = []
  t.teardown(async () => {
    // The VMs are the BMCs' children, not the lab's: each BMC stops its own VM by PID first.
    for (const bmc of bmcs) await bmc.stop()
    await lab.cleanup()
  })

  const machines: { name: string; uuid: string; mac: string; bmc: LabBmc; serialLog: string }[] = []
  for (let index = 1; index <= 5; index++) {
    const name = `pvm${index}`
    const uuid = randomUUID()
    const mac = `52:54:00:b0:0c:${index.toString(16).padStart(2, '0')}`
    const disk = path.join(lab.scratch, `${name}.raw`)
    writeFileSync(disk, '')
    truncateSync(disk, 64 * 1024 * 1024)
    const tap = await lab.network.addTap()
    const serialLog = path.join(lab.scratch, `${name}-serial.log`)
    const command = ['qemu-system-x86_64', ...qemuArgs({ lab: lab.network, tap, mac, uuid, firmware: 'bios', workDir: lab.scratch, name, memoryMb: 256, disk, allowReboot: true, accel: lab.accel }, serialLog)]
    // The fifth machine's BMC speaks Redfish (the double, run inside the namespace), the others' IPMI.
    if (index === REDFISH_MACHINE) {
      const bmc = await startLabRedfishBmc({ port: 9443, password: `bmc-${index}-pw`, machineCommand: command, launch: (args) => lab.network.spawn(`bmc ${name} (redfish)`, process.execPath, args) })
      bmcs.push(bmc)
      machines.push({ name, uuid, mac, bmc, serialLog })
      await lab.engine.api('PUT', `/api/v1/machines/${uuid}/bmc`, { protocol: 'redfish', host: bmc.host, port: bmc.port, username: bmc.username, password: bmc.password, redfish: { ca_bundle: bmc.caPem } })
      continue
    }
    const bmc = await startIpmiSim({
      host: '127.0.0.1',
      port: 9000 + index,
      password: `bmc-${index}-pw`,
      machineCommand: command,
      launch: (args) => lab.network.spawn(`bmc ${name}`, 'ipmi_sim', args),
    })
    bmcs.push(bmc)
    machines.push({ name, uuid, mac, bmc, serialLog })
    // Enrolled before it ever booted: the engine has never heard of this UUID.
    await lab.engine.api('PUT', `/api/v1/machines/${uuid}/bmc`, { protocol: 'ipmi', host: '127.0.0.1', port: bmc.port, username: bmc.username, password: bmc.password })
  }
  t.notOk(machines.some((machine) => machine.bmc.machineOn()), 'every VM is off')

  const discoveredAt = new Map<string, number>()
  const waitDiscovered = (uuids: string[], timeoutMs: number) =>
    until(
      `${uuids.length} machine(s) discovered`,
      async () => {
        // The time from the machine's own history: five machines reach the flavor's quorum, so the
        // scheduler may take one past `discovered` between two polls.
        for (const machine of await lab.engine.api<ApiMachine[]>('GET', '/api/v1/machines')) {
          if (!uuids.includes(machine.uuid) || machine.state === 'booting' || discoveredAt.has(machine.uuid)) continue
          const detail = await lab.engine.api<{ events: { to_state: string; at: string }[] }>('GET', `/api/v1/machines/${machine.uuid}`)
          const discovered = detail.events.find((event) => event.to_state === 'discovered')
          if (discovered) discoveredAt.set(machine.uuid, Date.parse(discovered.at))
        }
        return uuids.every((uuid) => discoveredAt.has(uuid)) || undefined
      },
      timeoutMs,
      250,
    ).catch((error: unknown) => {
      // What each machine still awaited did: its BMC's calls, whether its QEMU runs, its console's end.
      const pending = machines.filter((machine) => uuids.includes(machine.uuid) && !discoveredAt.has(machine.uuid))
      const report = pending.map((machine) => {
        let serial = ''
        try {
          serial = readFileSync(machine.serialLog, 'latin1').split(/\r?\n/).slice(-15).join('\n')
        } catch {
          serial = '(no console output)'
        }
        return `${machine.name}: BMC calls ${JSON.stringify(machine.bmc.calls())}, QEMU ${machine.bmc.machineOn() ? 'running' : 'not running'}\n${serial}`
      })
      throw new Error(`${(error as Error).message} (accel ${lab.accel})\n${report.join('\n')}\n${progress.slice(-20).join('\n')}`)
    })

  // One VM: the engine sets its next boot to the network and powers it on.
  const [first, ...rest] = machines
  const started = Date.now()
  await lab.engine.api('PUT', `/api/v1/machines/${first!.uuid}/boot-device`, { device: 'network' })
  const on = await lab.engine.api<{ power: string }>('POST', `/api/v1/machines/${first!.uuid}/power`, { action: 'on' })
  t.equal(on.power, 'on')
  await waitDiscovered([first!.uuid], 180_000)
  const single = (discoveredAt.get(first!.uuid)! - started) / 1000
  t.comment(`one VM: engine power-on to discovered ${single.toFixed(1)} s (${lab.accel})`)
  t.same(first!.bmc.calls(), ['boot pxe', 'power 1'], 'its BMC was asked for a network boot, then power')

  // Four more in batches of two, 10 s apart.
  const batchStarted = Date.now()
  const run = await lab.engine.api<{ id: string }>('POST', '/api/v1/power/bring-ups', { machines: rest.map((machine) => machine.uuid), batch_size: 2, pause_seconds: 10 })
  await waitDiscovered(rest.map((machine) => machine.uuid), 300_000)
  const bringUp = await lab.engine.api<{ state: string; machines: { uuid: string; batch: number; state: string; powered_on_at: string }[] }>('GET', `/api/v1/power/bring-ups/${run.id}`)
  t.match(bringUp, { state: 'done' })
  t.same(bringUp.machines.map((machine) => [machine.batch, machine.state]), [[1, 'on'], [1, 'on'], [2, 'on'], [2, 'on']])
  const poweredOn = (batch: number) => Math.min(...bringUp.machines.filter((machine) => machine.batch === batch).map((machine) => Date.parse(machine.powered_on_at)))
  t.ok(poweredOn(2) - poweredOn(1) >= 10_000, `the second batch was powered on ${((poweredOn(2) - poweredOn(1)) / 1000).toFixed(1)} s after the first`)
  const last = Math.max(...rest.map((machine) => discoveredAt.get(machine.uuid)!))
  t.comment(`four VMs in batches of two, 10 s apart: bring-up to the last discovered ${((last - batchStarted) / 1000).toFixed(1)} s`)
  for (const machine of rest) t.comment(`${machine.name}: power-on to discovered ${((discoveredAt.get(machine.uuid)! - Date.parse(bringUp.machines.find((entry) => entry.uuid === machine.uuid)!.powered_on_at)) / 1000).toFixed(1)} s`)

  // The engine's view: every BMC says on, and each discovered machine is the enrolled UUID with its MAC.
  const views = await lab.engine.api<{ machine_uuid: string; power: string }[]>('GET', '/api/v1/bmcs')
  t.same(views.map((view) => view.power), machines.map(() => 'on'))
  const seen = await lab.engine.api<ApiMachine[]>('GET', '/api/v1/machines')
  for (const machine of machines) t.equal(seen.find((entry) => entry.uuid === machine.uuid)?.boot_mac, machine.mac, `${machine.name} discovered as enrolled`)

  // The five make the flavor's quorum: they are scheduled and install their roles.
  const stateOf = async (uuid: string) => (await lab.engine.api<ApiMachine[]>('GET', '/api/v1/machines')).find((machine) => machine.uuid === uuid)?.state
  const allInstalled = async () => (await lab.engine.api<ApiMachine[]>('GET', '/api/v1/machines')).filter((machine) => machine.state === 'installed').length === machines.length || undefined
  await until('all five installed', allInstalled, 300_000, 500)
  const serialOf = (machine: (typeof machines)[number]) => readFileSync(machine.serialLog, 'latin1')
  const count = (text: string, marker: string) => text.split(marker).length - 1

  // Re-provision one, installed and running its role: the engine sets its next boot to the network and
  // power-cycles it; it boots the live image (its disk still holds the install), installs its role again.
  const again = machines[1]!
  // Their etcd forms once all five run it: a re-provision asks it first (and is refused, 504, while no
  // member answers).
  const etcd = await lab.etcd()
  await etcd.healthy(5, 120_000)
  const installedBoots = count(serialOf(again), INSTALLED_MARKER)
  const reinstallStarted = Date.now()
  const reinstall = await lab.engine.api<{ state: string; power_action: string }>('POST', `/api/v1/machines/${again.uuid}/reinstall`)
  t.match(reinstall, { state: 'scheduled', power_action: 'cycle' })
  await until(`${again.name} installed again`, async () => ((await stateOf(again.uuid)) === 'installed' && count(serialOf(again), INSTALLED_MARKER) > installedBoots ? true : undefined), 240_000, 500)
  t.comment(`re-provision: engine request to the installed boot of the new install ${((Date.now() - reinstallStarted) / 1000).toFixed(1)} s`)
  const history = (await lab.engine.api<{ events: { from_state: string; to_state: string }[] }>('GET', `/api/v1/machines/${again.uuid}`)).events.map((event) => `${event.from_state}>${event.to_state}`)
  t.same(history.slice(-3), ['installed>scheduled', 'scheduled>installing', 'installing>installed'], 'installed, sent back, installed again')
  t.match(serialOf(again).slice(serialOf(again).lastIndexOf('live image: discovery')), /live image: discovery[\s\S]*install authorized[\s\S]*installed boot:/, 'it booted the live image, which installed its role')
  t.same(again.bmc.calls().slice(-3), ['boot pxe', 'power 0', 'power 1'], 'through its BMC: network boot, then a power cycle')
  // Its new install erased its etcd data: before the power cycle the engine removed its etcd member and
  // added it again, so it joined the running etcd as a new member; the five are healthy again.
  const rejoined = /etcd member \S+ started \(existing cluster; state file system created\)/
  await until(`${again.name}'s etcd to start`, () => (rejoined.test(serialOf(again)) ? true : undefined), 60_000, 250)
  t.pass(`${again.name}'s etcd joined the running cluster (initial-cluster-state existing)`)
  const healthy = await etcd.healthy(5, 120_000)
  t.equal(healthy.length, 5, 'etcd: 5 healthy members after the re-provision')
  t.equal((JSON.parse(await etcd.ctl(['member', 'list', '-w', 'json'])) as { members: unknown[] }).members.length, 5, 'and exactly 5 members')

  // A rolling update with the poweroff strategy: the machine powers itself off into its new config and
  // the engine powers it on again through its BMC once the BMC says it is off.
  const rolled = machines[0]!
  await until(`${rolled.name} serves SSH`, () => (serialOf(rolled).includes(SSHD_MARKER) ? true : undefined), 120_000, 500)
  await lab.engine.api('PUT', `/api/v1/machines/${rolled.uuid}/labels`, { roll: 'poweroff' })
  const template = (await lab.engine.api<{ body: string }>('GET', '/api/v1/templates/ignition/kubernetes-control-plane.json')).body
  const changed = template.replace('{ "path": "/etc/slipway/role", "mode": 420,', '{ "path": "/etc/slipway/role", "mode": 416,')
  t.not(changed, template, 'the template change applies')
  await lab.engine.api('PUT', '/api/v1/templates/ignition/kubernetes-control-plane.json', { body: changed })
  await until(`${rolled.name} outdated`, async () => ((await lab.engine.api<{ uuid: string; state: string }[]>('GET', '/lifecycle/ignition')).find((record) => record.uuid === rolled.uuid)?.state === 'outdated' ? true : undefined), 30_000, 500)
  const rollStarted = Date.now()
  const bootsBefore = count(serialOf(rolled), INSTALLED_MARKER)
  const created = await lab.engine.api<{ id: string; machines: unknown[] }>('POST', '/api/v1/rollouts', {
    cluster: CLUSTER,
    selector: 'roll=poweroff',
    strategy: 'poweroff',
    drain: { enabled: false },
    ssh: { user: 'root' },
    ready_timeout_seconds: 180,
  })
  t.equal(created.machines.length, 1, 'one machine rolls')
  type Run = { state: string; finished_at: string | null; events: { message: string }[] }
  const roll = await until<Run>('the poweroff roll to finish', async () => {
    const current = await lab.engine.api<Run>('GET', `/api/v1/rollouts/${created.id}`)
    return current.finished_at ? current : undefined
  }, 240_000, 500)
  t.equal(roll.state, 'completed', JSON.stringify(roll.events.slice(-6)))
  t.comment(`poweroff rolling update of one VM: ${((Date.now() - rollStarted) / 1000).toFixed(1)} s`)
  t.ok(roll.events.some((event) => event.message.endsWith('powered off by its poweroff restart: powered on again through its BMC')), 'the engine powered it on again')
  t.match(serialOf(rolled), /applying new config \(poweroff\)/, 'it was told to apply its config and power off')
  t.ok(count(serialOf(rolled), INSTALLED_MARKER) > bootsBefore, 'it booted its new config')
  t.equal(rolled.bmc.calls().at(-1), 'power 1', 'the last thing its BMC did: power on')

  // The cluster destroyed with its machines wiped: each is deprovisioned (out of the pool, credential
  // revoked), set to boot from the network and power-cycled through its BMC, boots the live image,
  // whose agent is told to wipe its disks, and is powered off once it reported. Before that, a member
  // is not deprovisioned on its own. The one behind the Redfish BMC is looked at closely.
  const gone = machines[REDFISH_MACHINE - 1]!
  const refusal = await lab.engine.api('POST', `/api/v1/machines/${gone.uuid}/deprovision`).then(() => 'accepted', (error: Error) => error.message)
  t.match(refusal, /: 409 .*MACHINE_IN_CLUSTER/, 'a cluster member is not deprovisioned')
  for (const machine of machines) t.equal(readFileSync(path.join(lab.scratch, `${machine.name}.raw`)).subarray(0, 16).toString('latin1'), 'SLIPWAY-LAB-DISK', `${machine.name}'s disk holds its install`)
  const reservedForMachines = async () => (await lab.engine.api<{ mac: string }[]>('GET', '/api/v1/dhcp/reservations')).filter((reservation) => machines.some((machine) => machine.mac === reservation.mac)).length
  t.equal(await reservedForMachines(), machines.length, "the members' addresses are reserved")
  const deprovisionStarted = Date.now()
  await lab.engine.api('DELETE', `/api/v1/clusters/${CLUSTER}?wipe=true`)
  const done = await until(
    'all five wiped and powered off',
    async () => {
      const deprovisions = await lab.engine.api<{ machine_uuid: string; state: string }[]>('GET', '/api/v1/deprovisions')
      return deprovisions.length === machines.length && deprovisions.every((deprovision) => deprovision.state === 'done') ? deprovisions : undefined
    },
    240_000,
    500,
  )
  t.equal(done.length, 5)
  await until('their QEMUs to end', () => (machines.every((machine) => !machine.bmc.machineOn()) ? true : undefined), 10_000, 100)
  t.comment(`destroy with wipe: engine request to all five wiped and powered off ${((Date.now() - deprovisionStarted) / 1000).toFixed(1)} s`)
  for (const machine of machines) {
    const disk = readFileSync(path.join(lab.scratch, `${machine.name}.raw`))
    t.ok(disk.subarray(0, 16 * 1024 * 1024).every((byte) => byte === 0), `${machine.name}: its first 16 MiB (install header, config, host key) are zeros`)
    t.match(serialOf(machine), /this machine is being deprovisioned: wiping its disks[\s\S]*wipe success: \/dev\/vda: wiped 1 disk\(s\) wiped/, `${machine.name}: its agent wiped and reported`)
    t.equal(await stateOf(machine.uuid), 'discovered', `${machine.name} is discovered, in no cluster`)
  }
  t.same(gone.bmc.calls().slice(-4), ['boot pxe', 'power 0', 'power 1', 'power 0'], 'Redfish: network boot, cycle, then off once wiped')
  t.equal(await reservedForMachines(), 0, 'no address is reserved for them any more')
  await t.rejects(lab.engine.api('GET', `/api/v1/clusters/${CLUSTER}/etcd`), /404/, 'and there is no etcd to ask')

  // Off again through the engine: the VM's QEMU ends.
  await lab.engine.api('POST', `/api/v1/machines/${first!.uuid}/power`, { action: 'off' })
  await until('the first VM ends', () => (!first!.bmc.machineOn() ? true : undefined), 10_000, 100)
  t.pass('powered off, its QEMU is gone')
})
