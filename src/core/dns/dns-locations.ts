import Type, { type Static } from 'typebox'
import { invalid } from '../errors.ts'
import { checkDocument } from '../selection/documents.ts'
import { parseSubnet } from './geo.ts'

/** Where clients are: subnets (of ECS or of resolvers) placed on the map, for nearest-cluster answers. */
export const LocationsDocument = Type.Array(
  Type.Object(
    {
      subnet: Type.String({ minLength: 3, maxLength: 64, description: 'CIDR, IPv4 or IPv6, e.g. 10.1.0.0/16 or 2001:db8::/32.' }),
      site: Type.String({ minLength: 1, maxLength: 63 }),
      latitude: Type.Number({ minimum: -90, maximum: 90 }),
      longitude: Type.Number({ minimum: -180, maximum: 180 }),
    },
    { additionalProperties: false },
  ),
  { maxItems: 100_000 },
)
export type LocationsDocument = Static<typeof LocationsDocument>

export interface DnsLocation {
  subnet: string
  site: string
  latitude: number
  longitude: number
}

export interface DnsLocationRepository {
  list(): Promise<DnsLocation[]>
  /** Replaces the whole table at once. */
  replace(locations: DnsLocation[]): Promise<void>
}

/** The location table as a whole: replaced at once, so a client is never placed by half a table. */
export class DnsLocations {
  constructor(
    private readonly repository: DnsLocationRepository,
    private readonly changed: () => void = () => {},
  ) {}

  list(): Promise<DnsLocation[]> {
    return this.repository.list()
  }

  async replace(input: unknown): Promise<DnsLocation[]> {
    const document = checkDocument(LocationsDocument, input, 'locations', 'INVALID_LOCATION')
    const seen = new Set<string>()
    const locations = document.map((entry, index) => {
      const subnet = parseSubnet(entry.subnet)
      if (!subnet) throw invalid('INVALID_LOCATION', `locations[${index}].subnet "${entry.subnet}" is not a CIDR (e.g. 10.1.0.0/16, 2001:db8::/32)`)
      const key = `${[...subnet.bytes].join('.')}/${subnet.prefixLength}`
      if (seen.has(key)) throw invalid('INVALID_LOCATION', `locations[${index}].subnet ${entry.subnet} is listed twice`)
      seen.add(key)
      return { subnet: entry.subnet, site: entry.site, latitude: entry.latitude, longitude: entry.longitude }
    })
    await this.repository.replace(locations)
    this.changed()
    return locations
  }
}
