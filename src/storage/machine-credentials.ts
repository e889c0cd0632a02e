import { timingSafeEqual } from 'node:crypto'
import type { Kysely } from 'kysely'
import { generationCounts, type MachineCredentials } from '../core/lifecycle/machine-credentials.ts'
import type { Database } from './database.ts'
import type { SecretBox } from './secret-box.ts'

const PURPOSE = 'machine-credential:v1'
// Generation 0 keeps the form engines issued before generations existed (`<uuid>.<tag>`), so that
// machines installed by them keep their credential until it is rotated or revoked.
const FORMAT = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(?:g([1-9][0-9]{0,8})\.)?([A-Za-z0-9_-]{43})$/

const signed = (uuid: string, generation: number) => (generation === 0 ? uuid : `${uuid}:${generation}`)

/**
 * `<uuid>.g<generation>.<HMAC-SHA256(key, uuid:generation)>`: the uuid says who, the tag proves the
 * engine issued it, and the machine's row says whether its generation still counts.
 */
export function keyedMachineCredentials(secrets: SecretBox, db: Kysely<Database>, clock: () => Date = () => new Date()): MachineCredentials {
  return {
    issue: (machineUuid, generation) => `${machineUuid}.${generation === 0 ? '' : `g${generation}.`}${secrets.tag(PURPOSE, signed(machineUuid, generation))}`,
    verify: async (credential) => {
      const match = FORMAT.exec(credential)
      if (!match) return undefined
      const [, uuid, generationText, tag] = match
      const generation = generationText === undefined ? 0 : Number(generationText)
      const expected = Buffer.from(secrets.tag(PURPOSE, signed(uuid!, generation)))
      const presented = Buffer.from(tag!)
      if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return undefined
      const row = await db
        .selectFrom('machines')
        .select(['credential_generation', 'credential_previous_generation', 'credential_previous_valid_until'])
        .where('uuid', '=', uuid!)
        .executeTakeFirst()
      // A credential of a machine that is not (or no longer) in the inventory counts for nothing.
      if (!row) return undefined
      const state = { generation: row.credential_generation, previousGeneration: row.credential_previous_generation, previousValidUntil: row.credential_previous_valid_until }
      return generationCounts(state, generation, clock()) ? uuid : undefined
    },
  }
}
