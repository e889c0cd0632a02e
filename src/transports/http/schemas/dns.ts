import Type from 'typebox'

/** Every name the zone answers now (DnsZone.describe()). */
export const ZoneNamesResponse = Type.Object({
  zone: Type.String(),
  serial: Type.Integer(),
  apps: Type.Array(Type.Object({ name: Type.String(), policy: Type.String(), clusters: Type.Array(Type.Object({ cluster: Type.String(), addresses: Type.Array(Type.String()) })) })),
  hosts: Type.Array(Type.Object({ name: Type.String(), addresses: Type.Array(Type.String()) })),
})
