/** The cluster routes (flavors, clusters, scheduling passes, destroy) tests again, on PostgreSQL: startTestEngine reads SLIPWAY_TEST_BACKEND. */
import t from 'tap'
import { postgresAvailable } from '../../helpers/postgres.ts'

if (postgresAvailable()) {
  process.env.SLIPWAY_TEST_BACKEND = 'postgres'
  await import('../../transports/http/clusters.test.ts')
} else {
  t.plan(0, 'PostgreSQL is not installed and SLIPWAY_TEST_POSTGRES_URL is not set')
}
