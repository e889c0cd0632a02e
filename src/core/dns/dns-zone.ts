import { addressBytes, greatCircleKm, longestMatch, type Subnet } from './geo.ts'

/**
 * The authoritative zone: app names answered with the clusters where the app is ready and the
 * cluster is healthy (nearest, round robin, weighted or failover), machine hostnames, and the zone's
 * SOA and NS. Pure: the transport (transports/dns) parses packets and encodes what this answers; the
 * snapshot is rebuilt by the DNS directory whenever releases, health or machines change.
 */
export const RECORD_TYPES = { A: 1, NS: 2, SOA: 6, AAAA: 28, ANY: 255 } as const
export const DNS_POLICIES = ['nearest', 'round_robin', 'weighted', 'failover'] as const
export type DnsPolicy = (typeof DNS_POLICIES)[number]

export interface ZoneSettings {
  /** Lower case, no trailing dot, e.g. apps.example.com. */
  zone: string
  ttlSeconds: number
  /** SOA minimum: how long resolvers keep a "no such name" (RFC 2308). */
  negativeTtlSeconds: number
  nameservers: { name: string; addresses: string[] }[]
  /** The SOA RNAME as a name (hostmaster.<zone>). */
  hostmaster: string
}

/** A cluster where an app may be answered from. */
export interface AppEndpoint {
  cluster: string
  latitude: number | null
  longitude: number | null
  addresses: string[]
  weight: number
}

export interface AppName {
  policy: DnsPolicy
  ttlSeconds: number | null
  /** failover: the clusters in order of preference (the first eligible one is answered). */
  failover: string[]
  /** Only clusters where the release is ready and the cluster healthy. */
  endpoints: AppEndpoint[]
}

export interface LocatedSubnet {
  subnet: Subnet
  site: string
  latitude: number
  longitude: number
}

export interface DnsSnapshot {
  /** By fully qualified name (lower case, no trailing dot). */
  apps: ReadonlyMap<string, AppName>
  hosts: ReadonlyMap<string, string[]>
  locations: readonly LocatedSubnet[]
  /** Changes whenever the snapshot does (the SOA serial). */
  serial: number
}

export interface DnsQuestion {
  name: string
  type: number
}

export interface DnsClient {
  /** The resolver's (or client's) source address. */
  source: string
  /** EDNS Client Subnet, when the query carried one. */
  subnet?: { address: string; sourcePrefixLength: number }
}

export type DnsRecord =
  | { name: string; type: 1 | 28 | 2; ttl: number; data: string }
  | { name: string; type: 6; ttl: number; data: { primary: string; admin: string; serial: number; refresh: number; retry: number; expiration: number; minimum: number } }

export interface DnsAnswer {
  rcode: 'NOERROR' | 'NXDOMAIN' | 'REFUSED'
  authoritative: boolean
  answers: DnsRecord[]
  authority: DnsRecord[]
  additional: DnsRecord[]
  /** ECS scope prefix length: how widely the answer holds for the client's subnet (0: for everyone). */
  scopePrefixLength: number
}

const isV6 = (address: string) => address.includes(':')

export class DnsZone {
  private rotation = new Map<string, number>()
  /** Every proper ancestor of an answered name, within the zone: the empty non-terminals. */
  private ancestors = new Set<string>()

  constructor(
    readonly settings: ZoneSettings,
    private snapshot: DnsSnapshot,
    private readonly random: () => number = Math.random,
  ) {
    this.update(snapshot)
  }

  update(snapshot: DnsSnapshot): void {
    const ancestors = new Set<string>()
    for (const name of [...snapshot.apps.keys(), ...snapshot.hosts.keys(), ...this.settings.nameservers.map((server) => server.name)]) {
      for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) ancestors.add(name.slice(dot + 1))
    }
    this.snapshot = snapshot
    this.ancestors = ancestors
  }

  /** Every name answered now, for operators (GET /api/v1/dns/names). */
  describe(): { zone: string; serial: number; apps: { name: string; policy: DnsPolicy; clusters: { cluster: string; addresses: string[] }[] }[]; hosts: { name: string; addresses: string[] }[] } {
    const snapshot = this.snapshot
    return {
      zone: this.settings.zone,
      serial: snapshot.serial,
      apps: [...snapshot.apps].map(([name, app]) => ({ name, policy: app.policy, clusters: app.endpoints.map((endpoint) => ({ cluster: endpoint.cluster, addresses: endpoint.addresses })) })),
      hosts: [...snapshot.hosts].map(([name, addresses]) => ({ name, addresses })),
    }
  }

  /** Whether `name` is the zone or under it. */
  inZone(name: string): boolean {
    const zone = this.settings.zone
    return name === zone || name.endsWith(`.${zone}`)
  }

  answer(question: DnsQuestion, client: DnsClient): DnsAnswer {
    const name = question.name.toLowerCase().replace(/\.$/, '')
    const empty = (rcode: DnsAnswer['rcode']): DnsAnswer => ({ rcode, authoritative: rcode !== 'REFUSED', answers: [], authority: rcode === 'REFUSED' ? [] : [this.soa()], additional: [], scopePrefixLength: 0 })
    if (!this.inZone(name)) return empty('REFUSED')
    const { type } = question
    const wantsA = type === RECORD_TYPES.A || type === RECORD_TYPES.ANY
    const wantsAaaa = type === RECORD_TYPES.AAAA || type === RECORD_TYPES.ANY
    const records: DnsRecord[] = []
    let scopePrefixLength = 0
    let exists = false

    if (name === this.settings.zone) {
      exists = true
      if (type === RECORD_TYPES.SOA || type === RECORD_TYPES.ANY) records.push(this.soa())
      if (type === RECORD_TYPES.NS || type === RECORD_TYPES.ANY) for (const server of this.settings.nameservers) records.push({ name, type: 2, ttl: this.settings.ttlSeconds, data: server.name })
    }
    const server = this.settings.nameservers.find((candidate) => candidate.name === name)
    if (server) {
      exists = true
      records.push(...this.addressRecords(name, server.addresses, this.settings.ttlSeconds, wantsA, wantsAaaa))
    }
    const app = this.snapshot.apps.get(name)
    if (app) {
      exists = true
      const chosen = this.choose(name, app, client)
      scopePrefixLength = chosen.scopePrefixLength
      records.push(...this.addressRecords(name, chosen.addresses, app.ttlSeconds ?? this.settings.ttlSeconds, wantsA, wantsAaaa))
    }
    const host = this.snapshot.hosts.get(name)
    if (host) {
      exists = true
      records.push(...this.addressRecords(name, host, this.settings.ttlSeconds, wantsA, wantsAaaa))
    }
    if (!exists && !this.hasDescendant(name)) return { ...empty('NXDOMAIN'), scopePrefixLength }
    if (records.length === 0) return { ...empty('NOERROR'), scopePrefixLength }
    const additional: DnsRecord[] = []
    if (type === RECORD_TYPES.NS && name === this.settings.zone) {
      for (const each of this.settings.nameservers) additional.push(...this.addressRecords(each.name, each.addresses, this.settings.ttlSeconds, true, true))
    }
    return { rcode: 'NOERROR', authoritative: true, answers: records, authority: [], additional, scopePrefixLength }
  }

  private addressRecords(name: string, addresses: string[], ttl: number, wantsA: boolean, wantsAaaa: boolean): DnsRecord[] {
    return addresses.filter((address) => (isV6(address) ? wantsAaaa : wantsA)).map((address) => ({ name, type: isV6(address) ? 28 : 1, ttl, data: address }))
  }

  /** An empty non-terminal (RFC 8020): `shop.<zone>` exists when `web.shop.<zone>` does. */
  private hasDescendant(name: string): boolean {
    return this.ancestors.has(name)
  }

  private soa(): DnsRecord {
    const { zone, negativeTtlSeconds, nameservers, hostmaster } = this.settings
    return {
      name: zone,
      type: 6,
      ttl: negativeTtlSeconds,
      data: { primary: nameservers[0]?.name ?? zone, admin: hostmaster, serial: this.snapshot.serial, refresh: 3600, retry: 600, expiration: 604_800, minimum: negativeTtlSeconds },
    }
  }

  /** Which endpoints' addresses answer this client, by the name's policy. */
  private choose(name: string, app: AppName, client: DnsClient): { addresses: string[]; scopePrefixLength: number } {
    const endpoints = app.endpoints
    if (endpoints.length === 0) return { addresses: [], scopePrefixLength: 0 }
    switch (app.policy) {
      case 'nearest': {
        const located = this.locate(client)
        if (!located) return { addresses: endpoints.flatMap((endpoint) => endpoint.addresses), scopePrefixLength: 0 }
        const placed = endpoints.filter((endpoint) => endpoint.latitude !== null && endpoint.longitude !== null)
        if (placed.length === 0) return { addresses: endpoints.flatMap((endpoint) => endpoint.addresses), scopePrefixLength: 0 }
        const nearest = placed
          .map((endpoint) => ({ endpoint, km: greatCircleKm(located.location, { latitude: endpoint.latitude!, longitude: endpoint.longitude! }) }))
          .sort((a, b) => a.km - b.km || (a.endpoint.cluster < b.endpoint.cluster ? -1 : 1))[0]!
        return { addresses: nearest.endpoint.addresses, scopePrefixLength: located.scopePrefixLength }
      }
      case 'round_robin': {
        const turn = this.rotation.get(name) ?? 0
        this.rotation.set(name, (turn + 1) % endpoints.length)
        const order = [...endpoints.slice(turn % endpoints.length), ...endpoints.slice(0, turn % endpoints.length)]
        return { addresses: order.flatMap((endpoint) => endpoint.addresses), scopePrefixLength: 0 }
      }
      case 'weighted': {
        const total = endpoints.reduce((sum, endpoint) => sum + Math.max(0, endpoint.weight), 0)
        if (total <= 0) return { addresses: endpoints[0]!.addresses, scopePrefixLength: 0 }
        let pick = this.random() * total
        for (const endpoint of endpoints) {
          pick -= Math.max(0, endpoint.weight)
          if (pick < 0) return { addresses: endpoint.addresses, scopePrefixLength: 0 }
        }
        return { addresses: endpoints.at(-1)!.addresses, scopePrefixLength: 0 }
      }
      case 'failover': {
        const preferred = app.failover.map((cluster) => endpoints.find((endpoint) => endpoint.cluster === cluster)).find((endpoint) => endpoint !== undefined)
        return { addresses: (preferred ?? endpoints[0]!).addresses, scopePrefixLength: 0 }
      }
    }
  }

  /** The client's place: its ECS subnet if it sent one, else the resolver's address, in the location table. */
  private locate(client: DnsClient): { location: { latitude: number; longitude: number }; scopePrefixLength: number } | undefined {
    const address = client.subnet && client.subnet.sourcePrefixLength > 0 ? client.subnet.address : client.source
    const bytes = addressBytes(address)
    const match = bytes && longestMatch(this.snapshot.locations, bytes)
    if (!match) return undefined
    return { location: { latitude: match.latitude, longitude: match.longitude }, scopePrefixLength: client.subnet ? match.subnet.prefixLength : 0 }
  }
}
