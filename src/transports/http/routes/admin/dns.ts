import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { LocationsDocument, type DnsLocations } from '../../../../core/dns/dns-locations.ts'
import type { DnsZone } from '../../../../core/dns/dns-zone.ts'
import { adminErrors } from '../../schemas/common.ts'
import { ZoneNamesResponse } from '../../schemas/dns.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

/** The DNS location table and what the zone answers now. */
export const dnsRoutes: FastifyPluginAsyncTypebox<{ locations: DnsLocations; zone: DnsZone }> = async (app, { locations, zone }) => {
  const tags = ['dns']
  app.get('/dns/locations', { config: { access: read() }, schema: { tags, summary: 'Where clients are: subnet -> site and coordinates', response: { 200: LocationsDocument, ...adminErrors } } }, () => locations.list())
  app.put(
    '/dns/locations',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: "Replace the location table (clients are placed by their EDNS Client Subnet, else their resolver's address; the longest prefix wins)",
        body: Type.Unknown({ description: 'LocationsDocument: [{subnet, site, latitude, longitude}].' }),
        response: { 200: LocationsDocument, ...adminErrors },
      },
    },
    (request) => locations.replace(request.body),
  )
  app.get(
    '/dns/names',
    {
      config: { access: read() },
      schema: {
        tags,
        summary: 'Every name the zone answers now, with the clusters behind each app name',
        response: { 200: ZoneNamesResponse, ...adminErrors },
      },
    },
    () => zone.describe(),
  )
}
