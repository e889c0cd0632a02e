/**
 * Read-then-write transactions on both backends: what SQLite gets from its single writer,
 * PostgreSQL must get from SERIALIZABLE and retries (storage/transactions.ts). On PostgreSQL each
 * race runs on separate stores (separate pools: what engine replicas are); a SQLite file belongs to
 * one engine, so there the "replicas" share its one store.
 */
import t from 'tap'
import { InstallAuthorization } from '../../src/core/machines/install-authorization.ts'
import { MachineService } from '../../src/core/machines/machine-service.ts'
import { migrateToLatest } from '../../src/storage/db.ts'
import { machineRepository } from '../../src/storage/repositories/machines.ts'
import { inTransaction, uniqueViolation } from '../../src/storage/transactions.ts'
import { forEachBackend, testDatabase, type BackendName } from '../helpers/backends.ts'
import type { Test } from 'tap'
import { sleep } from '../helpers/wait.ts'

async function replicaStores(t: Test, backend: BackendName, count: number) {
  const database = await testDatabase(t, backend)
  const first = database.open()
  await migrateToLatest(first)
  return [first, ...Array.from({ length: count - 1 }, () => (backend === 'postgres' ? database.open() : first))]
}

const uuidOf = (n: number) => `7b2f0000-0000-4000-8000-${String(n).padStart(12, '0')}`
const macOf = (n: number) => `52:54:00:00:0e:${n.toString(16).padStart(2, '0')}`

forEachBackend(t, 'a read-then-write counter loses no increment under concurrent replicas', async (t, backend) => {
  const replicas = await replicaStores(t, backend, 3)
  const now = new Date().toISOString()
  await replicas[0]!.insertInto('lock_groups').values({ name: 'counter', slots: 0, ttl_seconds: null, updated_at: now }).execute()
  const increment = (store: (typeof replicas)[number]) =>
    inTransaction(store, async (trx) => {
      const { slots } = await trx.selectFrom('lock_groups').select('slots').where('name', '=', 'counter').executeTakeFirstOrThrow()
      // A pause between the read and the write: where READ COMMITTED would lose updates.
      await sleep(2)
      await trx.updateTable('lock_groups').set({ slots: slots + 1 }).where('name', '=', 'counter').execute()
    })
  await Promise.all(Array.from({ length: 30 }, (_, index) => increment(replicas[index % replicas.length]!)))
  const { slots } = await replicas[1]!.selectFrom('lock_groups').select('slots').where('name', '=', 'counter').executeTakeFirstOrThrow()
  t.equal(slots, 30, 'every increment counted')
})

forEachBackend(t, 'install slots: machines racing on two replicas never exceed maxConcurrent', async (t, backend) => {
  const replicas = await replicaStores(t, backend, 2)
  const discovery = new MachineService(machineRepository(replicas[0]!))
  const uuids = Array.from({ length: 12 }, (_, index) => uuidOf(index + 1))
  for (const [index, uuid] of uuids.entries()) {
    await discovery.discover({ 'boot-info': { uuid, mac: macOf(index + 1) }, interfaces: [{ name: 'eth0', mac: macOf(index + 1) }] })
    await discovery.transition(uuid, 'scheduled', 'test')
  }
  const authorizations = replicas.map((store) => new InstallAuthorization(machineRepository(store), { maxConcurrent: 3, timeoutSeconds: 600 }))
  const answers = await Promise.all(uuids.map((uuid, index) => authorizations[index % 2]!.authorizeInstall({ uuid, mac: macOf(index + 1) })))
  t.equal(answers.filter((answer) => answer.authorized).length, 3, 'exactly 3 granted')
  t.equal((await machineRepository(replicas[1]!).listMachines({ state: 'installing' })).length, 3, 'and 3 installing in the store')
})

forEachBackend(t, 'the same new machine reported to two replicas at once is created once', async (t, backend) => {
  const replicas = await replicaStores(t, backend, 2)
  const services = replicas.map((store) => new MachineService(machineRepository(store)))
  const report = { 'boot-info': { uuid: uuidOf(99), mac: macOf(99) }, interfaces: [{ name: 'eth0', mac: macOf(99), ipv4: '10.9.0.9' }], disks: [{ path: '/dev/sda', 'size-bytes': 8_001_563_222_016 }] }
  const results = await Promise.all([services[0]!.discover(report), services[1]!.discover(report), services[0]!.discover(report)])
  t.equal(results.filter((result) => result.isNew).length, 1, 'one report created it, the others updated it')
  const events = await services[1]!.events(uuidOf(99))
  t.equal(events.filter((event) => event.fromState === null).length, 1, 'one creation event')
  const machine = await services[1]!.get(uuidOf(99))
  t.equal(machine.disks[0]?.sizeBytes, 8_001_563_222_016)
  t.equal(machine.interfaces.length, 1, 'interfaces replaced, not duplicated')
})

forEachBackend(t, 'a failed transaction changes nothing; a nested one joins its parent', async (t, backend) => {
  const database = await testDatabase(t, backend)
  const store = database.open()
  await migrateToLatest(store)
  const now = new Date().toISOString()
  await t.rejects(
    inTransaction(store, async (trx) => {
      await trx.insertInto('lock_groups').values({ name: 'a', slots: 1, ttl_seconds: null, updated_at: now }).execute()
      await inTransaction(trx, async (nested) => {
        t.equal(nested, trx, 'the nested transaction is the outer one')
        await nested.insertInto('lock_groups').values({ name: 'b', slots: 1, ttl_seconds: null, updated_at: now }).execute()
      })
      throw new Error('refused after writing')
    }),
    /refused after writing/,
  )
  t.same(await store.selectFrom('lock_groups').selectAll().execute(), [], 'both writes rolled back')

  await store.insertInto('lock_groups').values({ name: 'a', slots: 1, ttl_seconds: null, updated_at: now }).execute()
  const duplicateKey = await store.insertInto('lock_groups').values({ name: 'a', slots: 1, ttl_seconds: null, updated_at: now }).execute().catch((error: unknown) => error)
  t.equal(uniqueViolation(duplicateKey), 'primary-key')
  const token = { token_sha256: 'x', role: 'admin' as const, created_at: now }
  await store.insertInto('api_tokens').values({ name: 'one', ...token }).execute()
  const duplicateUnique = await store.insertInto('api_tokens').values({ name: 'two', ...token }).execute().catch((error: unknown) => error)
  t.equal(uniqueViolation(duplicateUnique), 'unique')
  t.equal(uniqueViolation(new Error('other')), undefined)
})
