import t from 'tap'
import { SlipwayError } from '../../../src/core/errors.ts'
import { mayAccess, requireLevel, ROLES, type Role } from '../../../src/core/access/roles.ts'
import { administer, isAudited, machineAccess, operate, optikonReleaseOwner, publicAccess, read, releaseOwner } from '../../../src/core/access/route-policy.ts'
import { absent, TenantView, type OwnedObject, type TenantDirectory } from '../../../src/core/access/tenancy.ts'

/** An in-memory directory: clusters a-1 (tenant a), b-1 (tenant b), f-1 (the fleet); machine m-a in a-1; m-free in no cluster. */
function directory(): TenantDirectory & { reads: number } {
  const clusters = new Map<string, string | null>([
    ['a-1', 'a'],
    ['b-1', 'b'],
    ['f-1', null],
  ])
  const machines = new Map<string, string | null>([['m-a', 'a']])
  const fake = {
    reads: 0,
    tenantOf: async (object: OwnedObject) => {
      fake.reads++
      if (object.kind === 'cluster') return clusters.has(object.name) ? clusters.get(object.name)! : undefined
      if (object.kind === 'machine') return object.uuid === 'm-free' ? null : machines.get(object.uuid)
      return undefined
    },
    clusterTenants: async () => {
      fake.reads++
      return clusters
    },
    machineTenants: async () => {
      fake.reads++
      return machines
    },
    stampCluster: async (name: string, tenant: string | null) => void clusters.set(name, tenant),
  }
  return fake
}

t.test('roles hold levels cumulatively; a denial names the role needed', async (t) => {
  const expected: Record<Role, string[]> = { viewer: ['read'], operator: ['read', 'operate'], admin: ['read', 'operate', 'administer'] }
  for (const role of ROLES) t.same((['read', 'operate', 'administer'] as const).filter((level) => mayAccess(role, level)), expected[role], role)
  const error = t.throws(() => requireLevel({ name: 'ci', role: 'viewer', tenant: null }, 'operate')) as SlipwayError
  t.match(error, { kind: 'forbidden', code: 'FORBIDDEN', message: /needs the operator role or higher; token "ci" has the viewer role/ })
  t.match(t.throws(() => requireLevel({ name: 'ops', role: 'operator', tenant: null }, 'administer')), { message: /needs the admin role;/ })
})

t.test('route policies: declarations, the objects they name, what is audited', async (t) => {
  t.same(read(), { access: 'read', scope: 'fleet' })
  t.same(operate('tenant'), { access: 'operate', scope: 'tenant' })
  t.same(machineAccess('path'), { access: 'machine', credentialIn: 'path' })
  t.match(administer('tenant', releaseOwner).owner!({ namespace: 'shop', name: 'web' }, {}), { kind: 'release', namespace: 'shop', name: 'web' })
  t.match(optikonReleaseOwner({ name: 'web' }, {}), { kind: 'release', namespace: 'default', name: 'web' }, "optikon's default namespace")
  t.match(optikonReleaseOwner({ name: 'web' }, { namespace: 'shop' }), { kind: 'release', namespace: 'shop', name: 'web' })
  t.ok(isAudited('POST', operate()), 'a change needing a token is audited')
  t.notOk(isAudited('GET', administer()), 'reads are not')
  t.notOk(isAudited('POST', publicAccess()), 'machine traffic on public routes is not (its URLs carry identities)')
  t.ok(isAudited('POST', publicAccess({ audited: true })), 'unless the route asks (the UI login)')
  t.notOk(isAudited('POST', machineAccess('authorization')), 'nor machine-credential calls')
})

t.test('a tenant view filters to its own tenant, answers 404 for the others, and a fleet view reads nothing', async (t) => {
  const store = directory()
  const fleet = new TenantView(null, store)
  const items = [{ name: 'a-1' }, { name: 'b-1' }, { name: 'f-1' }, { name: 'new' }]
  t.same(await fleet.clusters(items), items)
  await fleet.require({ kind: 'cluster', name: 'b-1' })
  t.same(fleet.releases([{ tenant: 'a' }, { tenant: null }]), [{ tenant: 'a' }, { tenant: null }])
  t.equal(store.reads, 0, 'a fleet token costs no lookup')

  const a = new TenantView('a', store)
  t.same(await a.clusters(items), [{ name: 'a-1' }])
  t.same(await a.machines([{ uuid: 'm-a' }, { uuid: 'm-free' }], (machine) => machine.uuid), [{ uuid: 'm-a' }], 'a machine in no cluster is the fleet\'s')
  t.same(a.releases([{ tenant: 'a' }, { tenant: 'b' }, { tenant: null }, {}]), [{ tenant: 'a' }])
  await a.require({ kind: 'cluster', name: 'a-1' })
  await a.require({ kind: 'cluster', name: 'missing' })
  for (const other of ['b-1', 'f-1']) {
    const error = (await a.require({ kind: 'cluster', name: other }).catch((caught: unknown) => caught)) as SlipwayError
    t.same({ kind: error.kind, code: error.code, message: error.message }, { kind: 'not_found', code: 'CLUSTER_NOT_FOUND', message: `cluster "${other}" does not exist` }, `${other}: as if absent`)
  }
  await t.rejects(a.require({ kind: 'machine', uuid: 'm-free' }), absent({ kind: 'machine', uuid: 'm-free' }))
})

t.test('what a created object belongs to', async (t) => {
  const store = directory()
  const fleet = new TenantView(null, store)
  const a = new TenantView('a', store)
  t.equal(fleet.ownerForCreate(undefined), null)
  t.equal(fleet.ownerForCreate('b'), 'b', 'a fleet token may create for a tenant')
  t.equal(a.ownerForCreate(undefined), 'a')
  t.equal(a.ownerForCreate('a'), 'a')
  t.match(t.throws(() => a.ownerForCreate('b')), { kind: 'forbidden', code: 'FORBIDDEN' })
  t.match(t.throws(() => fleet.ownerForCreate('Not A Tenant')), { kind: 'invalid', code: 'INVALID_TENANT' })
  t.match(t.throws(() => fleet.ownerForCreate(7)), { code: 'INVALID_TENANT' })
  t.same(a.claim({ name: 'x', tenant: 'a', labels: {} }), { body: { name: 'x', labels: {} }, tenant: 'a' }, 'the tenant field is taken out of the body')
  t.same(fleet.claim({ name: 'x' }), { body: { name: 'x' }, tenant: null })
  t.same(fleet.claim('not an object'), { body: 'not an object', tenant: null })
  await a.stampCluster('new', 'a')
  t.same(await a.clusters([{ name: 'new' }]), [{ name: 'new' }])
})
