/**
 * `npm run lab`: boots N QEMU machines with empty disks through the engine and watches them get
 * discovered, scheduled, installed and rebooted into their role. Needs root (network namespace, taps,
 * DHCP on port 67) and qemu-system-x86, ipxe-qemu, busybox-static's Debian package (downloaded), curl.
 *
 *   npm run lab                           4 machines: 3 control-plane members and a node
 *   npm run lab -- --machines 6 --nodes 3 --firmware uefi
 *   npm run lab -- --quorum-demo          then roll the 3 control-plane members and the node over SSH
 *                                         with a sampler writing to etcd every 200 ms, and print its figures
 *
 * Everything it created is removed when it ends, also on Ctrl-C.
 */
import { parseArgs } from 'node:util'
import type { Firmware } from './qemu.ts'
import { CLUSTER, PxeLab } from './pxe-lab.ts'

const { values } = parseArgs({
  options: {
    machines: { type: 'string', default: '4' },
    'control-plane': { type: 'string', default: '3' },
    nodes: { type: 'string', default: '1' },
    firmware: { type: 'string', default: 'bios' },
    accel: { type: 'string', default: 'auto' },
    'timeout-minutes': { type: 'string', default: '15' },
    'quorum-demo': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  console.log('usage: npm run lab -- [--machines N] [--control-plane 1|3|5] [--nodes MAX] [--firmware bios|uefi] [--accel auto|tcg|kvm] [--timeout-minutes M] [--quorum-demo]')
  process.exit(0)
}
const machines = Number(values.machines)
const controlPlane = Number(values['control-plane'])
const problems: string[] = []
if (!Number.isInteger(machines) || machines < 1 || machines > 16) problems.push('--machines must be 1..16')
if (![1, 3, 5].includes(controlPlane)) problems.push('--control-plane must be 1, 3 or 5')
if (!['bios', 'uefi'].includes(values.firmware)) problems.push('--firmware must be bios or uefi')
if (!['auto', 'tcg', 'kvm'].includes(values.accel)) problems.push('--accel must be auto, tcg or kvm')
if (problems.length) {
  console.error(`lab: ${problems.join('; ')}`)
  process.exit(2)
}

const log = (line: string) => console.log(line)
const lab = await PxeLab.start({
  controlPlane: controlPlane as 1 | 3 | 5,
  nodesMax: Number(values.nodes),
  firmware: values.firmware as Firmware,
  accel: values.accel as 'auto' | 'tcg' | 'kvm',
  log,
})
let stopping = false
const stop = async (code: number) => {
  if (stopping) return
  stopping = true
  log('cleaning up (VMs, engine, namespace, disks)')
  await lab.cleanup()
  process.exit(code)
}
process.on('SIGINT', () => void stop(130))
process.on('SIGTERM', () => void stop(143))

try {
  lab.startProgress()
  const started = Date.now()
  const vms = []
  for (let i = 0; i < machines; i++) vms.push(await lab.powerOn())
  const installedAt = await lab.waitUntilInstalled(vms, Number(values['timeout-minutes']) * 60_000)
  // Installed machines report their config and start their SSH server (for rolling updates).
  await lab.waitUntilServing(vms, 120_000)
  await new Promise((resolve) => setTimeout(resolve, 1500)) // the last progress lines
  const members = await lab.engine.api<{ members: { hostname: string; role: string; machine_uuid: string; ip: string | null }[] }>('GET', `/api/v1/clusters/${CLUSTER}`)
  log('')
  log(`all ${vms.length} machine(s) installed in ${((Date.now() - started) / 1000).toFixed(1)} s from the first power-on (${lab.accel}):`)
  for (const vm of vms) {
    const member = members.members.find((candidate) => candidate.machine_uuid === vm.uuid)
    const seconds = ((installedAt.get(vm.name)! - vm.poweredOnAt) / 1000).toFixed(1)
    log(`  ${vm.name}  ${vm.mac}  ${member?.hostname ?? '(no role)'}  ${member?.role ?? ''}  ${member?.ip ?? ''}  installed boot after ${seconds} s`)
  }
  if (values['quorum-demo']) await quorumDemo()
  await stop(0)
} catch (error) {
  log(`lab failed: ${error instanceof Error ? error.message : String(error)}`)
  await stop(1)
}

/**
 * A rolling update of every machine (a template change, then a run over SSH) while a sampler writes
 * to etcd and reads back every 200 ms; prints etcd's health before and the sampler's figures after.
 */
async function quorumDemo(): Promise<void> {
  const etcd = await lab.etcd()
  log('')
  log(`etcd: ${etcd.endpoints.join(', ')}`)
  log(await etcd.ctl(['endpoint', 'status', '-w', 'table']))
  const sampler = etcd.startSampler(200)
  for (const name of ['kubernetes-control-plane.json', 'kubernetes-node.json']) {
    const template = (await lab.engine.api<{ body: string }>('GET', `/api/v1/templates/ignition/${name}`)).body
    await lab.engine.api('PUT', `/api/v1/templates/ignition/${name}`, { body: template.replace('{ "path": "/etc/slipway/role", "mode": 420,', '{ "path": "/etc/slipway/role", "mode": 416,') })
  }
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const run = await lab.engine.api<{ id: string }>('POST', '/api/v1/rollouts', { cluster: CLUSTER, max_parallel: 2, strategy: 'reboot', drain: { enabled: false }, ssh: { user: 'root' }, ready_timeout_seconds: 300 })
  log(`rolling update ${run.id}: max_parallel 2 asked; etcd's quorum allows one control-plane member down at a time`)
  let state = 'running'
  let seen = 0
  while (!['completed', 'failed', 'cancelled'].includes(state)) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const current = await lab.engine.api<{ state: string; events: { at: string; message: string }[] }>('GET', `/api/v1/rollouts/${run.id}`)
    for (const event of current.events.slice(seen)) log(`  ${event.at}  ${event.message}`)
    seen = current.events.length
    state = current.state
  }
  const { summary } = await sampler.stop()
  log('')
  log(`rolling update ${state}; sampler: ${summary.samples} samples over ${((summary.lastAt - summary.firstAt) / 1000).toFixed(0)} s, ${summary.failedWrites} failed quorum writes, ${summary.failedReads} failed reads, slowest write ${summary.slowestWriteMs} ms`)
  for (const [member, ms] of Object.entries(summary.longestMemberUnavailableMs)) log(`  ${member}: longest unavailable ${(ms / 1000).toFixed(1)} s`)
  log(await etcd.ctl(['endpoint', 'status', '-w', 'table']))
}
