/**
 * The real `slipway` binary against a served engine and real IPMI BMCs (ipmi_sim): a BMC is set with
 * its password read from a file (never an argument), shown without it, a machine powered and its
 * boot device set, a bring-up followed with --wait to its end; a discovered machine's BMC set with
 * its credentials only (the address its agent reported); usage errors are refused before any request.
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ADMIN_TOKEN, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { startIpmiSim, type IpmiSim } from '../../helpers/ipmi-sim.ts'
import { slipway as runSlipway, type RunOptions } from './run-slipway.ts'

const slipway = (args: string[], options: RunOptions) => runSlipway(args, { token: ADMIN_TOKEN, ...options })

t.test('machines bmc set/show/remove, power, boot-device and bring-up --wait', async (t) => {
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_POWER_POLL_INTERVAL_SECONDS: '0' } })
  const bmcs: IpmiSim[] = []
  t.teardown(async () => {
    await engine.close()
    for (const bmc of bmcs) await bmc.stop()
    removeTree(path.dirname(dataDir))
  })
  const url = await engine.start()
  for (let n = 0; n < 3; n++) bmcs.push(await startIpmiSim({ password: `cli-bmc-pw-${n}` }))
  const uuids = bmcs.map((_, n) => `c1100000-0000-4000-8000-00000000000${n + 1}`)
  const passwordFile = path.join(path.dirname(dataDir), 'bmc-password')

  for (const [n, bmc] of bmcs.entries()) {
    writeFileSync(passwordFile, `${bmc.password}\n`, { mode: 0o600 })
    const set = await slipway(['machines', 'bmc', 'set', uuids[n]!, '--protocol', 'ipmi', '--address', `${bmc.host}:${bmc.port}`, '--user', bmc.username, '--password-file', passwordFile], { url })
    t.equal(set.code, 0, set.stderr)
    t.match(set.stdout, /Password: +set \(sealed, never shown\)/)
    t.notMatch(set.stdout, new RegExp(bmc.password))
  }
  const show = await slipway(['machines', 'bmc', 'show', uuids[0]!, '--json'], { url })
  t.match(JSON.parse(show.stdout), { protocol: 'ipmi', port: bmcs[0]!.port, password_set: true })

  const on = await slipway(['machines', 'power', uuids[0]!, 'on'], { url })
  t.equal(on.code, 0, on.stderr)
  t.match(on.stdout, new RegExp(`${uuids[0]}: power on`))
  t.match((await slipway(['machines', 'power', uuids[0]!], { url })).stdout, /power on/)
  t.equal((await slipway(['machines', 'boot-device', uuids[0]!, 'disk', '--persistent'], { url })).code, 0)
  t.equal(bmcs[0]!.bootDevice(), 'default', 'the disk, from now on')

  const bringUp = await slipway(['machines', 'bring-up', uuids[1]!, uuids[2]!, '--batch', '1', '--pause', '0.5', '--wait', '--interval', '0.1'], { url })
  t.equal(bringUp.code, 0, bringUp.stderr)
  t.match(bringUp.stdout, /bring-up \S+ done: 2 powered on, 0 failed/)
  t.ok(bmcs[1]!.machineOn() && bmcs[2]!.machineOn(), 'both machines run')

  t.equal((await slipway(['machines', 'power', uuids[0]!, 'explode'], { url })).code, 2, 'an unknown action is a usage error')
  t.equal((await slipway(['machines', 'bmc', 'set', uuids[0]!, '--protocol', 'telnet', '--address', 'x', '--user', 'u'], { url })).code, 2)
  const wrong = await slipway(['machines', 'power', 'not-a-uuid', 'on'], { url })
  t.equal(wrong.code, 2, 'a malformed UUID is refused before any request')

  // A discovered machine whose agent read its BMC's address: --address is left out, the engine takes that one.
  const discovered = 'c1100000-0000-4000-8000-0000000000d1'
  const report = await fetch(`${url}/discovery`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ 'boot-info': { uuid: discovered, mac: '52:54:00:c1:10:d1' }, interfaces: [{ name: 'eth0', mac: '52:54:00:c1:10:d1' }], bmc: { mac: '0c:c4:7a:c1:10:d1', ipv4: '10.41.7.21', source: 'ipmitool lan print' } }),
  })
  t.equal(report.status, 200, await report.text())
  const credentialsOnly = await slipway(['machines', 'bmc', 'set', discovered, '--protocol', 'ipmi', '--user', 'admin', '--password-file', passwordFile], { url })
  t.equal(credentialsOnly.code, 0, credentialsOnly.stderr)
  t.match(credentialsOnly.stdout, /Address: +10\.41\.7\.21:623/)
  const undiscovered = await slipway(['machines', 'bmc', 'set', 'c1100000-0000-4000-8000-0000000000d2', '--protocol', 'ipmi', '--user', 'admin', '--password-file', passwordFile], { url })
  t.equal(undiscovered.code, 5, 'refused by the engine')
  t.match(undiscovered.stderr, /host: is needed: no discovery report .*\(BMC_HOST_NOT_DISCOVERED\)/)
  t.equal((await slipway(['machines', 'bmc', 'set', discovered, '--protocol', 'ipmi', '--user', 'admin', '--address', ''], { url })).code, 2, 'an empty --address is a usage error, not an address left out')

  t.equal((await slipway(['machines', 'bmc', 'remove', uuids[0]!], { url })).code, 0)
  t.equal((await slipway(['machines', 'bmc', 'show', uuids[0]!], { url })).code, 4, 'gone: not found')
})

t.test('machines reinstall, deprovision (and --status) and return', async (t) => {
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_POWER_POLL_INTERVAL_SECONDS: '0', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0' } })
  const bmc = await startIpmiSim({ password: 'cli-flow-pw', poweredOn: true })
  t.teardown(async () => {
    await engine.close()
    await bmc.stop()
    removeTree(path.dirname(dataDir))
  })
  const url = await engine.start()
  const uuid = 'c1100000-0000-4000-8000-0000000000f1'
  const mac = '52:54:00:c1:10:f1'
  const post = (route: string, body: unknown) => fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify(body) })
  t.equal((await post('/discovery', { 'boot-info': { uuid, mac }, interfaces: [{ name: 'eth0', mac }] })).status, 200)
  writeFileSync(path.join(path.dirname(dataDir), 'flow-password'), bmc.password)
  t.equal((await slipway(['machines', 'bmc', 'set', uuid, '--protocol', 'ipmi', '--address', `${bmc.host}:${bmc.port}`, '--user', bmc.username, '--password-file', path.join(path.dirname(dataDir), 'flow-password')], { url })).code, 0)

  const notProvisioned = await slipway(['machines', 'reinstall', uuid], { url })
  t.not(notProvisioned.code, 0)
  t.match(notProvisioned.stderr, /MACHINE_NOT_PROVISIONED/, 'a discovered machine has no role to install again')
  t.equal((await post(`/api/v1/machines/${uuid}/transitions`, { to: 'scheduled', reason: 'test' })).status, 200)
  const reinstall = await slipway(['machines', 'reinstall', uuid], { url })
  t.equal(reinstall.code, 0, reinstall.stderr)
  t.match(reinstall.stdout, new RegExp(`${uuid} is scheduled and power-cycled .*installs its role again`))

  t.equal((await post(`/api/v1/machines/${uuid}/transitions`, { to: 'discovered', reason: 'test' })).status, 200)
  const deprovision = await slipway(['machines', 'deprovision', uuid], { url })
  t.equal(deprovision.code, 0, deprovision.stderr)
  t.match(deprovision.stdout, /is out of the pool and (power-cycled|powered on) .*disks are wiped on this boot/)
  const status = await slipway(['machines', 'deprovision', uuid, '--status'], { url })
  t.match(status.stdout, /State: +wipe_pending/)
  t.match(JSON.parse((await slipway(['machines', 'deprovision', uuid, '--status', '--json'], { url })).stdout), { machine_uuid: uuid, state: 'wipe_pending' })
  t.equal((await slipway(['machines', 'return', uuid], { url })).code, 0)
  const gone = await slipway(['machines', 'deprovision', uuid, '--status'], { url })
  t.not(gone.code, 0)
  t.match(gone.stderr, /DEPROVISION_NOT_FOUND/)
  t.equal((await slipway(['machines', 'reinstall', 'not-a-uuid'], { url })).code, 2, 'a malformed UUID is refused before any request')

  // A bring-up by label: the labelled machine (with its BMC) is powered on.
  t.equal((await fetch(`${url}/api/v1/machines/${uuid}/labels`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ rack: 'r1' }) })).status, 200)
  const byLabel = await slipway(['machines', 'bring-up', '--label', 'rack=r1', '--pause', '0', '--wait', '--interval', '0.1'], { url })
  t.equal(byLabel.code, 0, byLabel.stderr)
  t.match(byLabel.stdout, /bring-up \S+ done: 1 powered on, 0 failed/)
  t.equal((await slipway(['machines', 'bring-up', uuid, '--label', 'rack=r1'], { url })).code, 2, 'UUIDs or labels, not both')
  t.equal((await slipway(['machines', 'bring-up'], { url })).code, 2, 'nothing named')
  t.equal((await slipway(['machines', 'bring-up', '--label', 'rack'], { url })).code, 2, 'a label is key=value')
})
