import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { MachineService } from '../../../../core/machines/machine-service.ts'
import { CONFLICT_KINDS, CONFLICT_STATES, type MachineConflict } from '../../../../core/machines/machine-identity.ts'
import { administer, machineChangeOwner, operate, read } from '../../../../core/access/route-policy.ts'
import { adminErrors } from '../../schemas/common.ts'

export interface MachineIdentityRouteOptions {
  machines: MachineService
  /** How long a rotated credential keeps counting when the request names no grace. */
  credentialGraceSeconds: number
  /** How long a re-provision window stays open when the request names no length. */
  reprovisionWindowSeconds: number
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const ConflictResponse = Type.Object({
  id: Type.Integer(),
  kind: Type.Enum([...CONFLICT_KINDS]),
  machine_uuid: Type.String({ description: 'The known machine whose identity the report claimed.' }),
  claimed_uuid: Type.String(),
  claimed_mac: Type.String(),
  claimed_ipv4: Nullable(Type.String()),
  source_ip: Type.String({ description: 'Where the last report of this claim came from.' }),
  reports: Type.Integer({ description: 'How many reports made this claim.' }),
  first_seen_at: Type.String(),
  last_seen_at: Type.String(),
  state: Type.Enum([...CONFLICT_STATES]),
  resolved_at: Nullable(Type.String()),
  resolved_by: Nullable(Type.String()),
})
const toConflictResponse = (conflict: MachineConflict) => ({
  id: conflict.id,
  kind: conflict.kind,
  machine_uuid: conflict.machineUuid,
  claimed_uuid: conflict.claimedUuid,
  claimed_mac: conflict.claimedMac,
  claimed_ipv4: conflict.claimedIpv4,
  source_ip: conflict.sourceIp,
  reports: conflict.reports,
  first_seen_at: conflict.firstSeenAt,
  last_seen_at: conflict.lastSeenAt,
  state: conflict.state,
  resolved_at: conflict.resolvedAt,
  resolved_by: conflict.resolvedBy,
})
// Path parameters are text (types are never coerced): a decimal id, read as a number by the handler.
const ConflictParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,9}$' }) })
const UuidParams = Type.Object({ uuid: Type.String({ minLength: 36, maxLength: 36 }) })
const CredentialResponse = Type.Object({
  uuid: Type.String(),
  generation: Type.Integer(),
  previous_valid_until: Nullable(Type.String({ description: 'Until when the previous credential still counts; null: it no longer does.' })),
})
const tags = ['machines']

/**
 * The operator's side of machine identity: conflicts raised by discovery reports that claimed a
 * known machine's uuid, MAC or address (accept applies the report, dismiss keeps the inventory);
 * machine credentials (rotate with a grace period, revoke at once); re-provision windows, during
 * which a machine is served its secret-bearing config again without an install slot.
 */
export const machineIdentityRoutes: FastifyPluginAsyncTypebox<MachineIdentityRouteOptions> = async (app, { machines, credentialGraceSeconds, reprovisionWindowSeconds }) => {
  app.get(
    '/machines/conflicts',
    {
      config: { access: read() },
      schema: {
        tags,
        summary: "Discovery reports that claimed a known machine's identity, newest first (?state=open|accepted|dismissed)",
        querystring: Type.Object({ state: Type.Optional(Type.Enum([...CONFLICT_STATES])) }, { additionalProperties: false }),
        response: { 200: Type.Array(ConflictResponse), ...adminErrors },
      },
    },
    async (request) => (await machines.conflicts(request.query)).map(toConflictResponse),
  )
  // Accepting moves a machine's identity to whoever made the claim: an admin's decision.
  app.post(
    '/machines/conflicts/:id/accept',
    {
      config: { access: administer() },
      schema: { tags, summary: 'Accept a conflict: apply the claiming report (the machine takes the claimed MAC or address, or the claiming machine is added)', params: ConflictParams, response: { 200: ConflictResponse, ...adminErrors } },
    },
    async (request) => toConflictResponse(await machines.resolveConflict(Number(request.params.id), 'accept', request.principal!.name)),
  )
  app.post(
    '/machines/conflicts/:id/dismiss',
    {
      config: { access: operate() },
      schema: { tags, summary: 'Dismiss a conflict: the inventory stays as it is', params: ConflictParams, response: { 200: ConflictResponse, ...adminErrors } },
    },
    async (request) => toConflictResponse(await machines.resolveConflict(Number(request.params.id), 'dismiss', request.principal!.name)),
  )

  const credentialAnswer = (machine: { uuid: string; credential: { generation: number; previousValidUntil: string | null } }) => ({
    uuid: machine.uuid,
    generation: machine.credential.generation,
    previous_valid_until: machine.credential.previousValidUntil,
  })
  app.post(
    '/machines/:uuid/credential/rotate',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: {
        tags,
        summary: "Rotate a machine's credential: its configs now carry a new one (the machine is outdated until it applies it); the previous one counts for grace_seconds",
        params: UuidParams,
        body: Type.Union([Type.Object({ grace_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 31_536_000 })) }, { additionalProperties: false }), Type.Null()]),
        response: { 200: CredentialResponse, ...adminErrors },
      },
    },
    async (request) => credentialAnswer(await machines.renewCredential(request.params.uuid, request.body?.grace_seconds ?? credentialGraceSeconds, `credential rotated by ${request.principal!.name}`)),
  )
  app.post(
    '/machines/:uuid/credential/revoke',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: { tags, summary: "Revoke a machine's credential at once (FleetLock, lifecycle calls and config fetches with it are refused)", params: UuidParams, response: { 200: CredentialResponse, ...adminErrors } },
    },
    async (request) => credentialAnswer(await machines.renewCredential(request.params.uuid, 0, `credential revoked by ${request.principal!.name}`)),
  )

  const WindowResponse = Type.Object({ uuid: Type.String(), reprovision_until: Nullable(Type.String()) })
  app.post(
    '/machines/:uuid/reprovision',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: {
        tags,
        summary: 'Open a re-provision window: until it closes, the machine is served its secret-bearing config (from its own address) without an install slot',
        params: UuidParams,
        body: Type.Union([Type.Object({ window_seconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 604_800 })) }, { additionalProperties: false }), Type.Null()]),
        response: { 200: WindowResponse, ...adminErrors },
      },
    },
    async (request) => {
      const machine = await machines.setReprovisionWindow(request.params.uuid, request.body?.window_seconds ?? reprovisionWindowSeconds, request.principal!.name)
      return { uuid: machine.uuid, reprovision_until: machine.reprovisionUntil }
    },
  )
  app.delete(
    '/machines/:uuid/reprovision',
    { config: { access: operate('tenant', machineChangeOwner) }, schema: { tags, summary: 'Close the re-provision window', params: UuidParams, response: { 200: WindowResponse, ...adminErrors } } },
    async (request) => {
      const machine = await machines.setReprovisionWindow(request.params.uuid, 0, request.principal!.name)
      return { uuid: machine.uuid, reprovision_until: machine.reprovisionUntil }
    },
  )
}
