import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'

/**
 * A machine's credential as the engine issues it, computed from the engine's key file the way its
 * templates get it (core/lifecycle/machine-credentials.ts), for tests that play the machine: generation 0
 * until the machine is granted an install slot or an operator rotates its credential.
 * Written here from the documented format, not by calling the engine's code, so a change of format
 * fails the tests instead of following along.
 */
export function machineCredentials(keyFile: string) {
  const key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64')
  const tag = (data: string) => createHmac('sha256', key).update(`machine-credential:v1\0${data}`).digest('base64url')
  return {
    issue: (uuid: string, generation = 0) => (generation === 0 ? `${uuid}.${tag(uuid)}` : `${uuid}.g${generation}.${tag(`${uuid}:${generation}`)}`),
  }
}
