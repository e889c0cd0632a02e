/**
 * The Redfish client against the Redfish BMC double (itself checked against redfishtool and sushy):
 * power state and every action through #ComputerSystem.Reset with the BMC's allowed values; the boot
 * override with the ETag the BMC requires; the system found when none is configured; a session per
 * call, logged out after; and each failure with its code: wrong password, untrusted certificate,
 * nothing listening, and a BMC whose links point elsewhere.
 */
import t from 'tap'
import { RedfishClient } from '../../src/adapters/bmc/redfish-client.ts'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import type { BmcTarget } from '../../src/core/power/bmc.ts'
import { bmcFailure } from '../helpers/bmc-failure.ts'
import { RedfishBmc } from '../fakes/redfish-bmc.ts'
import { servingCertificate } from '../helpers/test-pki.ts'

const pki = await x509ClusterPkiIssuer.issue('bmc', new Date())
const bmc = await RedfishBmc.start({ ...(await servingCertificate(pki)), requireEtag: true })
t.teardown(() => bmc.close())
const client = new RedfishClient()
const target: BmcTarget = {
  protocol: 'redfish',
  host: '127.0.0.1',
  port: bmc.port,
  username: bmc.username,
  password: bmc.password,
  ipmi: null,
  redfish: { systemPath: null, verifyTls: true, caBundle: pki.kubernetesCa.certificatePem },
}
const signal = (): AbortSignal => AbortSignal.timeout(10_000)


t.test('power: state, on, cycle, reset, soft-off, off through #ComputerSystem.Reset', async (t) => {
  t.equal(await client.powerState(target, signal()), 'off')
  for (const action of ['on', 'cycle', 'reset', 'soft-off', 'on', 'off'] as const) await client.power(target, action, signal())
  t.equal(await client.powerState(target, signal()), 'off')
  t.same(
    bmc.calls.filter((call) => call.startsWith('reset')),
    ['reset On', 'reset PowerCycle', 'reset ForceRestart', 'reset GracefulShutdown', 'reset On', 'reset ForceOff'],
    'DMTF ResetType values, as the BMC allows them',
  )
  const logins = bmc.calls.filter((call) => call === 'login').length
  t.equal(logins, 8, 'one session per call')
  t.equal(bmc.calls.filter((call) => call === 'logout').length, logins, 'each logged out')
})

t.test('boot device: network once, disk persistently, each PATCH with the ETag', async (t) => {
  await client.setBootDevice(target, 'network', false, signal())
  t.match(bmc.machine, { bootTarget: 'Pxe', bootEnabled: 'Once' })
  await client.setBootDevice({ ...target, redfish: { ...target.redfish!, systemPath: bmc.systemPath } }, 'disk', true, signal())
  t.match(bmc.machine, { bootTarget: 'Hdd', bootEnabled: 'Continuous' }, 'with the system path configured too')
})

t.test('failures have their own codes', async (t) => {
  t.match(await bmcFailure(client.power({ ...target, password: 'wrong' }, 'on', signal())), { code: 'BMC_AUTH_FAILED', transient: false })
  t.match(await bmcFailure(client.powerState({ ...target, redfish: { ...target.redfish!, caBundle: null } }, signal())), { code: 'BMC_TLS_UNTRUSTED', message: /redfish.caBundle/ }, 'a certificate from a CA the engine was not given')
  t.equal(await client.powerState({ ...target, redfish: { ...target.redfish!, caBundle: null, verifyTls: false } }, signal()), 'off', 'verification off, knowingly: it answers')
  const closed = await RedfishBmc.start(await servingCertificate(pki))
  const port = closed.port
  await closed.close()
  t.match(await bmcFailure(client.powerState({ ...target, port }, signal())), { code: 'BMC_UNREACHABLE', transient: true })
  t.match(await bmcFailure(client.power(target, 'on', AbortSignal.timeout(1))), { code: 'BMC_TIMEOUT' })
  t.match(await bmcFailure(client.powerState({ ...target, redfish: { ...target.redfish!, systemPath: '/redfish/v1/Systems/other' } }, signal())), { code: 'BMC_REFUSED', message: /HTTP 404.*not found/ })

  // A BMC whose reset action points at another host: the credentials never go there.
  for (const elsewhere of ['https://203.0.113.9/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', '/admin/reboot']) {
    const hostile = await RedfishBmc.start({ ...(await servingCertificate(pki)), resetTarget: elsewhere })
    t.match(await bmcFailure(client.power({ ...target, port: hostile.port, username: hostile.username, password: hostile.password }, 'on', signal())), { code: 'BMC_PROTOCOL', message: /outside its own Redfish service/ }, elsewhere)
    t.equal(hostile.machine.power, 'Off')
    await hostile.close()
  }
})
