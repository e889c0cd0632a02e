/** The FleetLock and lock-semaphore routes (40 machines racing for 3 slots) tests again, on PostgreSQL: startTestEngine reads SLIPWAY_TEST_BACKEND. */
import t from 'tap'
import { postgresAvailable } from '../../helpers/postgres.ts'

if (postgresAvailable()) {
  process.env.SLIPWAY_TEST_BACKEND = 'postgres'
  await import('../../transports/http/fleetlock.test.ts')
} else {
  t.plan(0, 'PostgreSQL is not installed and SLIPWAY_TEST_POSTGRES_URL is not set')
}
