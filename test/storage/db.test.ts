import { mkdtempSync, readdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import t from 'tap'
import { MIGRATIONS_DIR, migrateToLatest, openStore } from '../../src/storage/db.ts'
import { removeTree } from '../helpers/engine.ts'

t.test('the store is a WAL SQLite file with foreign keys on, migrated once', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-store-'))
  t.teardown(() => removeTree(dir))
  const file = path.join(dir, 'nested', 'slipway.db')
  const store = openStore(file)
  t.teardown(() => store.destroy())
  const expected = readdirSync(MIGRATIONS_DIR).filter((name) => name.endsWith('.ts')).map((name) => name.replace(/\.ts$/, '')).sort()
  t.ok(expected.includes('20261121T0001_foundation'))
  t.same(await migrateToLatest(store), expected, 'every migration in migrations/, in order')
  t.same(await migrateToLatest(store), [], 'a second run applies nothing')
  const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(store)
  t.equal(journal.rows[0]?.journal_mode, 'wal')
  const foreignKeys = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(store)
  t.equal(foreignKeys.rows[0]?.foreign_keys, 1)
  const now = new Date().toISOString()
  await t.rejects(
    store.insertInto('groups').values({ id: 'g', name: 'g', profile: 'missing', selector: '{}', metadata: '{}', source: 'api', created_at: now, updated_at: now }).execute(),
    /FOREIGN KEY/,
    'a group cannot name a profile that does not exist',
  )
})
