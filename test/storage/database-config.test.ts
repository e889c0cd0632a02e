import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.ts'

const load = (env: Record<string, string>) => loadConfig({ cwd: '/srv/slipway', env })

t.test('SQLite by default, PostgreSQL by configuration', async (t) => {
  const defaults = load({})
  t.same(defaults.database, { driver: 'sqlite', path: '/srv/slipway/var/slipway.db', url: '', poolSize: 10 })
  const postgres = load({ SLIPWAY_DATABASE_DRIVER: 'postgres', SLIPWAY_DATABASE_URL: 'postgres://slipway:secret@db:5432/slipway', SLIPWAY_DATABASE_POOL_SIZE: '4' })
  t.match(postgres.database, { driver: 'postgres', url: 'postgres://slipway:secret@db:5432/slipway', poolSize: 4 })
})

t.test('PostgreSQL settings that cannot work are refused, without quoting the URL', async (t) => {
  const problems = (env: Record<string, string>) => (t.throws(() => load(env), ConfigError) as ConfigError).problems.join('\n')
  t.match(problems({ SLIPWAY_DATABASE_DRIVER: 'postgres' }), /database\.url: required when database\.driver is postgres \(SLIPWAY_DATABASE_URL\)/)
  const wrongScheme = problems({ SLIPWAY_DATABASE_DRIVER: 'postgres', SLIPWAY_DATABASE_URL: 'mysql://root:hunter2@db/slipway' })
  t.match(wrongScheme, /must start with postgres:\/\/ or postgresql:\/\/, not mysql:\/\//)
  t.notMatch(wrongScheme, /hunter2/, 'the password is not repeated')
  t.notMatch(problems({ SLIPWAY_DATABASE_DRIVER: 'postgres', SLIPWAY_DATABASE_URL: 'hunter2 not a url' }), /hunter2/)
  t.match(problems({ SLIPWAY_DATABASE_URL: 'postgres://db/slipway' }), /is set but database\.driver is sqlite; set database\.driver to postgres/, 'a URL without the driver is a mistake, not a silent SQLite')
  t.match(problems({ SLIPWAY_DATABASE_DRIVER: 'mysql' }), /database\.driver: .*\(sqlite, postgres\)/)
  t.match(problems({ SLIPWAY_DATABASE_DRIVER: 'postgres', SLIPWAY_DATABASE_URL: 'postgres://db/slipway', SLIPWAY_DATABASE_POOL_SIZE: '0' }), /database\.poolSize: must be >= 1/)
})
