import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { BootService } from '../../../../core/boot/boot-service.ts'
import { labelsFromQuery } from '../../../../core/selection/labels.ts'
import { adminErrors } from '../../schemas/common.ts'
import { LabelsQuery, SelectionResponse } from '../../schemas/selection.ts'
import { read } from '../../../../core/access/route-policy.ts'

/** Answers "what would a machine with these labels boot?" without booting one. */
export const selectionRoutes: FastifyPluginAsyncTypebox<{ boot: BootService }> = async (app, { boot }) => {
  app.get(
    '/selection',
    {
      config: { access: read() },
      schema: {
        tags: ['groups'],
        summary: 'Which group and profile labels select',
        description: 'Every query parameter is a label, as on /ipxe and /ignition (e.g. ?mac=52:54:00:00:00:01&os=installed).',
        querystring: LabelsQuery,
        response: { 200: SelectionResponse, ...adminErrors },
      },
    },
    async (request) => {
      const queryStart = request.url.indexOf('?')
      const labels = labelsFromQuery(new URLSearchParams(queryStart === -1 ? '' : request.url.slice(queryStart + 1)))
      const { group, profile } = boot.match(labels)
      return { labels, group, profile }
    },
  )
}
