import type { Generated, Insertable, Selectable, Updateable } from 'kysely'

/** The single source of the store's row types. JSON columns hold text; repositories parse them. */
export interface Database {
  profiles: ProfilesTable
  groups: GroupsTable
  templates: TemplatesTable
  api_tokens: ApiTokensTable
  dhcp_leases: DhcpLeasesTable
  dhcp_reservations: DhcpReservationsTable
}

/** Whether a row came from a content folder at start-up or was written through the API. */
export type ContentSource = 'file' | 'api'

export interface ProfilesTable {
  id: string
  name: string
  ignition_id: string | null
  generic_id: string | null
  boot: string | null
  source: ContentSource
  created_at: string
  updated_at: string
}

export interface GroupsTable {
  id: string
  name: string
  profile: string
  selector: string
  metadata: string
  source: ContentSource
  created_at: string
  updated_at: string
}

export interface TemplatesTable {
  kind: 'ignition' | 'generic' | 'ipxe'
  id: string
  body: string
  source: ContentSource
  created_at: string
  updated_at: string
}

export interface ApiTokensTable {
  id: Generated<number>
  name: string
  token_sha256: string
  role: 'admin' | 'operator' | 'viewer'
  created_at: string
}

export type ProfileRow = Selectable<ProfilesTable>
export type GroupRow = Selectable<GroupsTable>
export type TemplateRow = Selectable<TemplatesTable>
export type ApiTokenRow = Selectable<ApiTokensTable>
export type NewApiToken = Insertable<ApiTokensTable>
export type GroupUpdate = Updateable<GroupsTable>

/** One row per IPv4 address ever handed out; `ip` is the key, so an address never has two holders. */
export interface DhcpLeasesTable {
  ip: string
  mac: string
  /** Option 61 as hex (binary in the protocol). */
  client_id: string | null
  hostname: string | null
  state: 'offered' | 'bound' | 'released' | 'declined'
  /** ISO 8601 UTC. */
  expires_at: string
  updated_at: string
}

export interface DhcpReservationsTable {
  mac: string
  ip: string
  hostname: string | null
  created_at: string
  updated_at: string
}

export type DhcpLeaseRow = Selectable<DhcpLeasesTable>
export type DhcpReservationRow = Selectable<DhcpReservationsTable>
