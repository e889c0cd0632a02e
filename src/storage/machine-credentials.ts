import { timingSafeEqual } from 'node:crypto'
import type { MachineCredentials } from '../core/lifecycle/machine-credentials.ts'
import type { SecretBox } from './secret-box.ts'

const PURPOSE = 'machine-credential:v1'
const FORMAT = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/

/** `<uuid>.<HMAC-SHA256(key, uuid)>`: the uuid says who, the tag proves the engine issued it. */
export function keyedMachineCredentials(secrets: SecretBox): MachineCredentials {
  return {
    issue: (machineUuid) => `${machineUuid}.${secrets.tag(PURPOSE, machineUuid)}`,
    verify: (credential) => {
      const match = FORMAT.exec(credential)
      if (!match) return undefined
      const [, uuid, tag] = match
      const expected = Buffer.from(secrets.tag(PURPOSE, uuid!))
      const presented = Buffer.from(tag!)
      return presented.length === expected.length && timingSafeEqual(presented, expected) ? uuid : undefined
    },
  }
}
