import { BmcError } from '../../src/core/power/bmc-client.ts'

/** The BmcError a BMC client's call fails with; a call that succeeds, or fails otherwise, fails the test. */
export async function bmcFailure(call: Promise<unknown>): Promise<BmcError> {
  try {
    await call
  } catch (error) {
    if (error instanceof BmcError) return error
    throw error
  }
  throw new Error('the call succeeded')
}
