/**
 * The inventory at the size of a large fleet, on a real SQLite file: 1,000 machines with 128 disks
 * each (128,000 disk rows) list, load and restart. Rows were once appended with `push(...rows)`,
 * which passes every row as an argument and overflowed the stack at about 120,000.
 */
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { MachineService } from '../../src/core/machines/machine-service.ts'
import { migrateToLatest, openStore } from '../../src/storage/db.ts'
import { machineRepository } from '../../src/storage/repositories/machines.ts'
import { MachineDirectory } from '../../src/storage/directories/machine-directory.ts'
import { removeTree } from '../helpers/engine.ts'

t.test('1,000 machines with 128 disks each list and load', async (t) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-scale-'))
  t.teardown(() => removeTree(scratch))
  const store = openStore(path.join(scratch, 'slipway.db'))
  t.teardown(() => store.destroy())
  await migrateToLatest(store)
  const machines = new MachineService(machineRepository(store))
  const disks = Array.from({ length: 128 }, (_, index) => ({ path: `/dev/sd${index}`, 'size-bytes': 1e12 }))
  for (let n = 0; n < 1000; n++) {
    const mac = `52:54:00:5c:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`
    await machines.discover({ 'boot-info': { uuid: `5ca1e000-0000-4000-8000-${String(n).padStart(12, '0')}`, mac }, interfaces: [{ name: 'eth0', mac }], disks })
  }
  const listed = await machines.list()
  t.equal(listed.length, 1000)
  t.equal(listed.reduce((sum, machine) => sum + machine.disks.length, 0), 128_000, 'every disk of every machine')
  const directory = new MachineDirectory(machineRepository(store))
  await directory.load()
  t.ok(directory.lookup({ uuid: '5ca1e000-0000-4000-8000-000000000999' }), 'the boot directory loads them (as at every start)')
})
