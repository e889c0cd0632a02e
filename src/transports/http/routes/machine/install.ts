import type { FastifyReply } from 'fastify'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { InstallAuthorization, InstallOutcome, MachineIdentity } from '../../../../core/machines/install-authorization.ts'
import type { MachineFlows } from '../../../../core/power/machine-flows.ts'
import { ErrorResponse } from '../../schemas/common.ts'
import { Nullable } from '../../../../lib/nullable.ts'
import { InstallDenied, InstallGranted, InstallIdentity, InstallReportAnswer, InstallReportBody, WipeReportAnswer } from '../../schemas/install.ts'
import { publicAccess } from '../../../../core/access/route-policy.ts'

/** An install report carries at most a short message (the tail of a log); more is a broken installer. */
export const INSTALL_REPORT_BODY_LIMIT = 16 * 1024

const errors = { 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse, 413: ErrorResponse, 415: ErrorResponse }

/** Repeated query keys arrive as arrays; as on the boot routes, the first value counts. */
const first = (value: unknown): string | undefined => (Array.isArray(value) ? (value[0] as string | undefined) : (value as string | undefined))
const identityOf = (query: Record<string, unknown>): MachineIdentity => ({ uuid: first(query.uuid), mac: first(query.mac) })

/**
 * Machine-facing, like /discovery: no token (the installer in the live image has none), but both
 * halves of the machine's identity (uuid and boot MAC) must match the inventory. Enjoliver's answers
 * are kept: 200 when granted, 403 when every slot is taken (the installer waits and asks again). The
 * reports release the slot; without them a slot is only freed by install.timeoutSeconds.
 *
 * Asking for a slot changes the machine's state, so it is a POST; Enjoliver's agent asks with GET,
 * which is kept for it (with the same two-part identity) and is the one machine-facing GET that
 * changes state.
 */
export const installRoutes: FastifyPluginAsyncTypebox<{ installs: InstallAuthorization; flows: MachineFlows }> = async (app, { installs, flows }) => {
  const authorize = async (identity: MachineIdentity, reply: FastifyReply) => {
    const answer = await installs.authorizeInstall(identity)
    if (answer.authorized) return { authorized: true as const }
    return reply.status(403).send({ authorized: false as const, code: 'INSTALL_SLOTS_FULL' as const, message: answer.message })
  }
  app.post(
    '/install-authorization',
    {
      bodyLimit: INSTALL_REPORT_BODY_LIMIT,
      config: { access: publicAccess() },
      schema: {
        tags: ['install'],
        summary: 'A scheduled machine asks for an install slot, naming its uuid and boot MAC (200 granted, 403 all slots taken; no token)',
        security: [],
        querystring: InstallIdentity,
        body: Nullable(InstallIdentity),
        response: { 200: InstallGranted, 403: InstallDenied, ...errors },
      },
    },
    async (request, reply) => {
      const query = identityOf(request.query)
      const body = request.body ? identityOf(request.body) : {}
      return authorize({ uuid: query.uuid ?? body.uuid, mac: query.mac ?? body.mac }, reply)
    },
  )
  app.get(
    '/install-authorization',
    {
      config: { access: publicAccess() },
      schema: {
        tags: ['install'],
        summary: "Enjoliver's form of POST /install-authorization, for its agent: the same answer, the same two-part identity (no token)",
        security: [],
        querystring: InstallIdentity,
        response: { 200: InstallGranted, 403: InstallDenied, ...errors },
      },
    },
    async (request, reply) => authorize(identityOf(request.query), reply),
  )

  for (const outcome of ['success', 'fail'] as const satisfies readonly InstallOutcome[]) {
    app.post(
      `/lifecycle/install/${outcome}`,
      {
        bodyLimit: INSTALL_REPORT_BODY_LIMIT,
        config: { access: publicAccess() },
        schema: {
          tags: ['install'],
          summary: `The installer reports ${outcome === 'success' ? 'a finished' : 'a failed'} install, naming its uuid and boot MAC, and frees its slot (no token)`,
          security: [],
          querystring: InstallIdentity,
          body: InstallReportBody,
          response: { 200: InstallReportAnswer, ...errors },
        },
      },
      async (request) => {
        const machine = await installs.reportInstall(identityOf(request.query), outcome, request.body?.message)
        return { uuid: machine.uuid, state: machine.state }
      },
    )
  }

  // The deprovision's wipe report, like the install reports: the discovery agent names the machine by
  // uuid and boot MAC; only a machine told to wipe (its discovery answer said so) can report one.
  for (const outcome of ['success', 'fail'] as const) {
    app.post(
      `/lifecycle/wipe/${outcome}`,
      {
        bodyLimit: INSTALL_REPORT_BODY_LIMIT,
        config: { access: publicAccess() },
        schema: {
          tags: ['install'],
          summary: `The discovery agent of a machine being deprovisioned reports ${outcome === 'success' ? 'its disks wiped (the engine then powers it off)' : 'that its wipe failed'}, naming its uuid and boot MAC (no token)`,
          security: [],
          querystring: InstallIdentity,
          body: InstallReportBody,
          response: { 200: WipeReportAnswer, ...errors },
        },
      },
      async (request) => {
        const deprovision = await flows.reportWipe(identityOf(request.query), outcome, request.body?.message)
        return { uuid: deprovision.machineUuid, deprovision: deprovision.state }
      },
    )
  }
}
