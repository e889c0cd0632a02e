/**
 * Power in the PXE lab, for real: each VM has its own IPMI BMC (OpenIPMI's ipmi_sim) inside the lab's
 * network namespace, whose chassis program runs the VM's QEMU (power on starts it, power off ends it).
 * The machines are enrolled by their BMCs before they ever booted; the engine (its API, ipmitool)
 * powers one on, then four more in batches of two: each netboots from the engine and is discovered.
 * Needs root, /dev/net/tun, qemu-system-x86, ipxe-qemu, openipmi and ipmitool: fails (never skips)
 * when one is missing.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync, truncateSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { PxeLab, type ApiMachine } from '../../lab/pxe-lab.ts'
import { qemuArgs } from '../../lab/qemu.ts'
import { startIpmiSim, type IpmiSim } from '../helpers/ipmi-sim.ts'
import { until } from '../helpers/wait.ts'

t.setTimeout(600_000)

t.test('the engine powers enrolled VMs on through their IPMI BMCs: one, then four in batches of two; each is discovered', { timeout: 600_000 }, async (t) => {
  const progress: string[] = []
  // Discovery is what is measured here; once all five are discovered they make the flavor's quorum of
  // 5 and go on to install, which the test leaves them to.
  const lab = await PxeLab.start({ controlPlane: 5, nodesMax: 0, log: (line) => progress.push(line) })
  const bmcs: IpmiSim[] = []
  t.teardown(async () => {
    // The VMs are the BMCs' children, not the lab's: each BMC stops its own VM by PID first.
    for (const bmc of bmcs) await bmc.stop()
    await lab.cleanup()
  })

  const machines: { name: string; uuid: string; mac: string; bmc: IpmiSim; serialLog: string }[] = []
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

  // Off again through the engine: the VM's QEMU ends.
  await lab.engine.api('POST', `/api/v1/machines/${first!.uuid}/power`, { action: 'off' })
  await until('the first VM ends', () => (!first!.bmc.machineOn() ? true : undefined), 10_000, 100)
  t.pass('powered off, its QEMU is gone')
})
