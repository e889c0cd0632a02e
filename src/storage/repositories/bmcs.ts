import type { BmcProtocol, BmcSettings, BmcView, IpmiOptions, PowerState, RedfishOptions } from '../../core/power/bmc.ts'
import type { PowerStore } from '../../core/power/power-service.ts'
import type { BmcsTable, Db } from '../database.ts'
import type { SecretBox } from '../secret-box.ts'
import type { Selectable } from 'kysely'

/** A sealed password opens only in its own row: one copied to another machine's row does not. */
export const bmcPasswordContext = (uuid: string): string => `bmcs:${uuid}`

type BmcRow = Selectable<BmcsTable>

/** A row's settings (the inventory export reads them as this repository does). */
export function bmcSettingsOf(row: Pick<BmcRow, 'protocol' | 'host' | 'port' | 'username' | 'options'>): BmcSettings {
  const options = JSON.parse(row.options) as { ipmi?: IpmiOptions; redfish?: RedfishOptions }
  return { protocol: row.protocol as BmcProtocol, host: row.host, port: row.port, username: row.username, ipmi: options.ipmi ?? null, redfish: options.redfish ?? null }
}

/** The `options` column of these settings: only the protocol's own options. */
export const bmcOptionsColumn = (settings: BmcSettings): string => JSON.stringify(settings.protocol === 'ipmi' ? { ipmi: settings.ipmi } : { redfish: settings.redfish })

/** A BMC at another address is another BMC: what was seen of the old one no longer holds. */
export const isAnotherBmc = (stored: Pick<BmcRow, 'protocol' | 'host' | 'port'>, settings: BmcSettings): boolean =>
  stored.host !== settings.host || stored.port !== settings.port || stored.protocol !== settings.protocol
/** The observation columns of a BMC nothing has been asked of yet. */
export const UNSEEN_BMC = { power: 'unknown', power_checked_at: null, last_error_code: null, last_error_message: null, last_error_at: null } as const

function viewOf(row: BmcRow): BmcView {
  return {
    machineUuid: row.machine_uuid,
    ...bmcSettingsOf(row),
    power: row.power as PowerState,
    powerCheckedAt: row.power_checked_at,
    lastError: row.last_error_code ? { code: row.last_error_code, message: row.last_error_message ?? '', at: row.last_error_at ?? '' } : null,
    updatedAt: row.updated_at,
  }
}

/** The core's power store over kysely; the password is sealed on the way in and opened only by targetOf. */
export function bmcRepository(db: Db, secrets: SecretBox): PowerStore {
  const rows = () => db.selectFrom('bmcs').selectAll()
  return {
    find: async (uuid) => {
      const row = await rows().where('machine_uuid', '=', uuid).executeTakeFirst()
      return row ? viewOf(row) : undefined
    },
    list: async () => (await rows().orderBy('machine_uuid').execute()).map(viewOf),
    targetOf: async (uuid) => {
      const row = await rows().where('machine_uuid', '=', uuid).executeTakeFirst()
      if (!row) return undefined
      return { ...bmcSettingsOf(row), password: secrets.open(Buffer.from(row.password_sealed), bmcPasswordContext(uuid)) }
    },
    save: async (uuid, settings, password, at) => {
      const columns = { protocol: settings.protocol, host: settings.host, port: settings.port, username: settings.username, options: bmcOptionsColumn(settings), updated_at: at }
      await db.transaction().execute(async (tx) => {
        const existing = await tx.selectFrom('bmcs').select(['machine_uuid', 'host', 'port', 'protocol']).where('machine_uuid', '=', uuid).executeTakeFirst()
        const seen = existing !== undefined && isAnotherBmc(existing, settings) ? UNSEEN_BMC : {}
        if (existing) {
          await tx
            .updateTable('bmcs')
            .set({ ...columns, ...seen, ...(password !== undefined ? { password_sealed: secrets.seal(password, bmcPasswordContext(uuid)) } : {}) })
            .where('machine_uuid', '=', uuid)
            .execute()
        } else {
          if (password === undefined) throw new Error('a new BMC record needs its password')
          await tx.insertInto('bmcs').values({ machine_uuid: uuid, ...columns, password_sealed: secrets.seal(password, bmcPasswordContext(uuid)) }).execute()
        }
      })
    },
    remove: async (uuid) => Number((await db.deleteFrom('bmcs').where('machine_uuid', '=', uuid).executeTakeFirst()).numDeletedRows) > 0,
    recordObservation: async (uuid, observation) => {
      await db
        .updateTable('bmcs')
        .set({
          ...(observation.power !== undefined ? { power: observation.power } : {}),
          power_checked_at: observation.checkedAt,
          last_error_code: observation.error?.code ?? null,
          last_error_message: observation.error?.message ?? null,
          last_error_at: observation.error ? observation.checkedAt : null,
        })
        .where('machine_uuid', '=', uuid)
        .execute()
    },
  }
}
