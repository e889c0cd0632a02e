import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { RolloutDocument } from '../../../../core/lifecycle/rollout-plan.ts'
import type { RolloutService } from '../../../../core/lifecycle/rollout-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import { RunDetail, RunIdParams, RunSummary, toRunDetail, toRunSummary } from '../../schemas/rollouts.ts'
import { operate, read } from '../../../../core/access/route-policy.ts'

/** Rolling-update runs: create, watch, pause, resume, cancel. */
export const rolloutRoutes: FastifyPluginAsyncTypebox<{ rollouts: RolloutService }> = async (app, { rollouts }) => {
  const tags = ['lifecycle']
  app.post(
    '/rollouts',
    {
      config: { access: operate() },
      schema: {
        tags,
        summary: "Start a rolling update of the outdated machines of a cluster or label selector (409 NOTHING_TO_ROLL, ROLLOUT_ACTIVE)",
        body: Type.Unknown({ description: 'See RolloutDocument: cluster, selector, max_parallel, strategy, window, drain, ready_timeout_seconds, max_failures, ssh, kubernetes_api_server.' }),
        response: { 201: RunDetail, ...adminErrors },
      },
    },
    async (request, reply) => reply.status(201).send(toRunDetail(await rollouts.create(request.body))),
  )
  app.get('/rollouts', { config: { access: read() }, schema: { tags, summary: 'Every run, oldest first', response: { 200: Type.Array(RunSummary), ...adminErrors } } }, async () =>
    (await rollouts.list()).map(toRunSummary),
  )
  app.get('/rollouts/:id', { config: { access: read() }, schema: { tags, summary: 'A run with each machine\'s phase and the latest events', params: RunIdParams, response: { 200: RunDetail, ...adminErrors } } }, async (request) =>
    toRunDetail(await rollouts.get(request.params.id)),
  )
  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post(
      `/rollouts/:id/${action}`,
      { config: { access: operate() }, schema: { tags, summary: `${action[0]!.toUpperCase()}${action.slice(1)} a run (machines in flight always finish)`, params: RunIdParams, response: { 200: RunDetail, ...adminErrors } } },
      async (request) => toRunDetail(await rollouts[action](request.params.id)),
    )
  }
}
// The document the POST body follows, for readers of this file.
export { RolloutDocument }
