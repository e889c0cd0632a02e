/**
 * The IPMI client against a real IPMI 2.0 BMC (OpenIPMI's ipmi_sim, RMCP+ on loopback) through the
 * real ipmitool: power status, on, off, soft-off, cycle and reset reach the machine behind the BMC;
 * the boot device is set for the next boot and persistently; a wrong password, a wrong user, a user
 * without the privilege and a BMC that is not there each fail with their own code; the password is
 * never in ipmitool's arguments.
 */
import { readFileSync, readdirSync } from 'node:fs'
import t from 'tap'
import { IpmitoolClient, classifyFailure } from '../../src/adapters/bmc/ipmitool-client.ts'
import type { BmcTarget } from '../../src/core/power/bmc.ts'
import { bmcFailure } from '../helpers/bmc-failure.ts'
import { startIpmiSim } from '../helpers/ipmi-sim.ts'
import { until } from '../helpers/wait.ts'

const bmc = await startIpmiSim()
t.teardown(() => bmc.stop())
const client = new IpmitoolClient({ answerTimeoutSeconds: 1, resends: 1 })
const target: BmcTarget = {
  protocol: 'ipmi',
  host: bmc.host,
  port: bmc.port,
  username: bmc.username,
  password: bmc.password,
  ipmi: { cipherSuite: 3, privilege: 'ADMINISTRATOR' },
  redfish: null,
}
const signal = (): AbortSignal => AbortSignal.timeout(15_000)


t.test('power: status, on, cycle, reset, soft-off and off reach the machine behind the BMC', async (t) => {
  t.equal(await client.powerState(target, signal()), 'off', 'a machine that was never powered on is off')
  await client.power(target, 'on', signal())
  t.equal(await client.powerState(target, signal()), 'on')
  t.ok(bmc.machineOn(), 'the machine runs')
  await client.power(target, 'cycle', signal())
  // ipmi_sim cycles as real BMCs do: off now, on again a moment later.
  await until('on again after the cycle', async () => ((await client.powerState(target, signal())) === 'on' ? true : undefined), 10_000, 200)
  await client.power(target, 'reset', signal())
  t.equal(await client.powerState(target, signal()), 'on', 'on after a cycle and a reset')
  await client.power(target, 'soft-off', signal())
  t.equal(await client.powerState(target, signal()), 'off', 'a soft off (ACPI shutdown) ends the machine')
  await client.power(target, 'on', signal())
  await client.power(target, 'off', signal())
  t.equal(await client.powerState(target, signal()), 'off')
  t.notOk(bmc.machineOn())
  t.same(bmc.calls(), ['power 1', 'power 0', 'power 1', 'reset 1', 'shutdown 1', 'power 1', 'power 0'], 'the BMC was asked exactly this, in this order')
})

t.test('boot device: network for the next boot, then the disk persistently', async (t) => {
  await client.setBootDevice(target, 'network', false, signal())
  t.equal(bmc.bootDevice(), 'pxe')
  await client.setBootDevice(target, 'disk', true, signal())
  t.equal(bmc.bootDevice(), 'default', 'the BMC set "boot from the default hard disk"')
})

t.test('failures have their own codes, and a failed call changes nothing', async (t) => {
  const before = bmc.calls().length
  const wrongPassword = await bmcFailure(client.power({ ...target, password: 'not-the-password' }, 'on', signal()))
  t.match(wrongPassword, { code: 'BMC_AUTH_FAILED', transient: false })
  t.notMatch(wrongPassword.message, /not-the-password/, 'the message never carries the password')
  t.match(await bmcFailure(client.power({ ...target, username: 'nobody' }, 'on', signal())), { code: 'BMC_AUTH_FAILED' }, 'a user the BMC does not know')
  t.equal(bmc.calls().length, before, 'nothing reached the machine')
  bmc.refuseChanges(true)
  t.match(await bmcFailure(client.power(target, 'on', signal())), { code: 'BMC_REFUSED', transient: false, message: /"chassis power on" was refused: / }, 'the BMC answered with an error')
  bmc.refuseChanges(false)

  const started = Date.now()
  const unreachable = await bmcFailure(client.powerState({ ...target, port: bmc.port === 65_000 ? 65_001 : 65_000 }, signal()))
  t.match(unreachable, { code: 'BMC_UNREACHABLE', transient: true }, `a port where no BMC answers (${Date.now() - started} ms)`)
  const aborted = await bmcFailure(client.powerState({ ...target, port: 65_002 }, AbortSignal.timeout(300)))
  t.match(aborted, { code: 'BMC_TIMEOUT', transient: true }, 'the caller\'s time limit ends ipmitool')
  t.match(await bmcFailure(new IpmitoolClient({ binary: 'ipmitool-not-installed' }).powerState(target, signal())), { code: 'BMC_CLIENT_MISSING', message: /apt install ipmitool/ })
})

t.test('the password is in ipmitool\'s environment, never in its arguments', async (t) => {
  // ipmitool lives about 100 ms: catch it in /proc while it runs, for several calls.
  const seen: string[] = []
  const watching = (async () => {
    for (const stop = Date.now() + 5_000; Date.now() < stop && seen.length === 0; ) {
      for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
          if (argv[0]?.endsWith('ipmitool') && argv.includes(String(bmc.port))) seen.push(argv.join(' '))
        } catch {
          // gone already
        }
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  await until('ipmitool seen in /proc', async () => {
    await client.powerState(target, signal())
    return seen.length > 0 || undefined
  }, 10_000, 0)
  await watching
  t.ok(seen.length > 0)
  for (const argv of seen) {
    t.notMatch(argv, new RegExp(bmc.password), 'no password in the command line')
    t.match(argv, / -E /, 'ipmitool reads it from IPMI_PASSWORD')
  }
})

t.test('classifying ipmitool 1.8.19 output: each sentence to its code', async (t) => {
  t.match(classifyFailure('Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session', 'x'), { code: 'BMC_AUTH_FAILED' })
  t.match(classifyFailure('Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request', 'x'), { code: 'BMC_UNREACHABLE' })
  t.match(classifyFailure('Set Chassis Power Control to Up/On failed: Insufficient privilege level', 'chassis power on'), { code: 'BMC_REFUSED', message: /"chassis power on" was refused: Insufficient privilege level/ })
  t.match(classifyFailure('Unable to Get Channel Cipher Suites\nsomething new', 'x'), { code: 'BMC_PROTOCOL', message: /something new/ })
})
