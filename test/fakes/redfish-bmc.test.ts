/**
 * The Redfish BMC double against the real Redfish clients from Debian, so that it speaks Redfish the
 * way clients expect: redfishtool (Basic and Session authentication) and python3-sushy (OpenStack
 * Ironic's library) each read the system and reset it, set a one-time network boot (through the
 * ETag the double requires), and are refused with a wrong password; with a machine behind it,
 * redfishtool's resets power that machine.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { chassisControl, standInChassis } from '../helpers/chassis.ts'
import { servingCertificate } from '../helpers/test-pki.ts'
import { until } from '../helpers/wait.ts'
import { RedfishBmc } from './redfish-bmc.ts'

const run = promisify(execFile)
const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-redfish-'))
const pki = await x509ClusterPkiIssuer.issue('bmc', new Date())
const caFile = path.join(scratch, 'ca.pem')
writeFileSync(caFile, pki.kubernetesCa.certificatePem)
const bmc = await RedfishBmc.start({ ...(await servingCertificate(pki)), requireEtag: true })
t.teardown(async () => {
  await bmc.close()
  rmSync(scratch, { recursive: true, force: true })
})
// Python's requests lets REQUESTS_CA_BUNDLE override a client's own CA choice: the clients get ours.
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', REQUESTS_CA_BUNDLE: caFile, HOME: scratch }

t.test('redfishtool reads the system, resets it and sets a one-time network boot', async (t) => {
  const tool = (args: string[], password = bmc.password) => run('redfishtool', ['-r', `127.0.0.1:${bmc.port}`, '-u', bmc.username, '-p', password, '-S', 'Always', ...args], { env })
  const system = JSON.parse((await tool(['Systems', '-1', 'get'])).stdout) as Record<string, unknown>
  t.match(system, { '@odata.id': bmc.systemPath, PowerState: 'Off', Actions: { '#ComputerSystem.Reset': { target: `${bmc.systemPath}/Actions/ComputerSystem.Reset` } } })
  await tool(['Systems', '-1', 'reset', 'On'])
  t.equal(bmc.machine.power, 'On')
  await tool(['-A', 'Session', 'Systems', '-1', 'reset', 'GracefulShutdown'])
  t.equal(bmc.machine.power, 'Off', 'with a session too')
  await tool(['Systems', '-1', 'setBootOverride', 'Once', 'Pxe'])
  t.match(bmc.machine, { bootTarget: 'Pxe', bootEnabled: 'Once' }, 'the PATCH carried the ETag the double requires')
  await t.rejects(tool(['Systems', '-1', 'get'], 'wrong'), { code: 5, stderr: /401/ })
  t.match(bmc.calls, ['reset On', 'login', 'reset GracefulShutdown', 'logout', 'boot Pxe Once'])
})

t.test('sushy reads the system, resets it and sets a one-time network boot', async (t) => {
  const script = path.join(scratch, 'check.py')
  writeFileSync(
    script,
    `import json, sys
import sushy
url, user, password, ca = sys.argv[1:5]
root = sushy.Sushy(url + '/redfish/v1', username=user, password=password, verify=ca)
members = list(root.get_system_collection().members_identities)
system = root.get_system(members[0])
report = {'members': members, 'power': str(system.power_state), 'resets': sorted(str(value) for value in system.get_allowed_reset_system_values())}
system.reset_system(sushy.RESET_ON)
system.refresh()
report['after_on'] = str(system.power_state)
system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_HDD, enabled=sushy.BOOT_SOURCE_ENABLED_CONTINUOUS)
system.refresh()
report['boot'] = [str(system.boot.target), str(system.boot.enabled)]
try:
    sushy.Sushy(url + '/redfish/v1', username=user, password='wrong', verify=ca).get_system_collection()
    report['wrong_password'] = 'accepted'
except sushy.exceptions.AccessError as error:
    report['wrong_password'] = 'refused'
print(json.dumps(report))
`,
  )
  bmc.machine.power = 'Off'
  const { stdout } = await run('/usr/bin/python3', [script, bmc.url, bmc.username, bmc.password, caFile], { env })
  const report = JSON.parse(stdout) as Record<string, unknown>
  t.match(report, { members: [bmc.systemPath], power: /off/i, after_on: /on/i, wrong_password: 'refused' })
  t.match(String(report.resets), /on/i)
  t.match(report.boot, [/hdd/i, /continuous/i])
  t.match(bmc.machine, { power: 'On', bootTarget: 'Hdd', bootEnabled: 'Continuous' })
})

t.test('with a machine behind it (the chassis program ipmi_sim drives), redfishtool powers the machine itself', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-redfish-chassis-'))
  const chassis = standInChassis(dir)
  const driven = await RedfishBmc.start({ ...(await servingCertificate(pki)), chassis: chassisControl(chassis.program, chassis.stateDir) })
  t.teardown(async () => {
    await driven.close()
    chassis.kill()
    rmSync(dir, { recursive: true, force: true })
  })
  const tool = async (args: string[]) => (await run('redfishtool', ['-r', `127.0.0.1:${driven.port}`, '-u', driven.username, '-p', driven.password, '-S', 'Always', ...args], { env })).stdout
  const powerState = async () => (JSON.parse(await tool(['Systems', '-1', 'get'])) as { PowerState: string }).PowerState
  t.equal(await powerState(), 'Off')
  await tool(['Systems', '-1', 'setBootOverride', 'Once', 'Pxe'])
  await tool(['Systems', '-1', 'reset', 'On'])
  t.ok(chassis.machineOn(), "the machine's process runs")
  const pid = chassis.machinePid()
  await tool(['Systems', '-1', 'reset', 'PowerCycle'])
  t.ok(chassis.machineOn() && chassis.machinePid() !== pid, 'a power cycle ended it and started it again')
  t.equal(await powerState(), 'On', 'the state read is the machine\'s')
  chassis.kill()
  await until('the killed machine is gone', () => (chassis.machineOn() ? undefined : true), 5000, 50)
  t.equal(await powerState(), 'Off', 'a machine that stopped by itself reads Off')
  await tool(['Systems', '-1', 'reset', 'On'])
  await tool(['Systems', '-1', 'reset', 'ForceOff'])
  t.notOk(chassis.machineOn())
  t.same(chassis.calls(), ['boot pxe', 'power 1', 'power 0', 'power 1', 'power 1', 'power 0'], 'the same chassis calls ipmi_sim makes')

  // A machine that stopped by itself leaves its PID behind, and a long run gives PIDs out again: the
  // PID now names another process (here one of ours), which is neither the machine nor to be killed.
  const other = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => void other.kill('SIGKILL'))
  writeFileSync(path.join(chassis.stateDir, 'pid'), `${other.pid} 1\n`)
  t.notOk(chassis.machineOn(), 'a PID whose process started at another time is not the machine')
  t.equal(await powerState(), 'Off', 'nor does the BMC take it for the machine')
  await tool(['Systems', '-1', 'reset', 'ForceOff'])
  chassis.kill()
  t.equal(other.exitCode ?? other.signalCode, null, 'and neither the BMC nor the test killed it')
  t.doesNotThrow(() => process.kill(other.pid!, 0), 'it still runs')
})
