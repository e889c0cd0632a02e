import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { MachineService } from '../../../../core/machines/machine-service.ts'
import { administer, machineChangeOwner, operate, read } from '../../../../core/access/route-policy.ts'
import { adminErrors } from '../../schemas/common.ts'
import {
  ConflictListQuery,
  ConflictParams,
  ConflictResponse,
  CredentialResponse,
  RotateBody,
  toConflictResponse,
  toCredentialResponse,
  toWindowResponse,
  UuidParams,
  WindowBody,
  WindowResponse,
} from '../../schemas/machines.ts'

export interface MachineIdentityRouteOptions {
  machines: MachineService
  /** How long a rotated credential keeps counting when the request names no grace. */
  credentialGraceSeconds: number
  /** How long a re-provision window stays open when the request names no length. */
  reprovisionWindowSeconds: number
}

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
        querystring: ConflictListQuery,
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

  app.post(
    '/machines/:uuid/credential/rotate',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: {
        tags,
        summary: "Rotate a machine's credential: its configs now carry a new one (the machine is outdated until it applies it); the previous one counts for grace_seconds",
        params: UuidParams,
        body: RotateBody,
        response: { 200: CredentialResponse, ...adminErrors },
      },
    },
    async (request) => toCredentialResponse(await machines.renewCredential(request.params.uuid, request.body?.grace_seconds ?? credentialGraceSeconds, `credential rotated by ${request.principal!.name}`)),
  )
  app.post(
    '/machines/:uuid/credential/revoke',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: { tags, summary: "Revoke a machine's credential at once (FleetLock, lifecycle calls and config fetches with it are refused)", params: UuidParams, response: { 200: CredentialResponse, ...adminErrors } },
    },
    async (request) => toCredentialResponse(await machines.renewCredential(request.params.uuid, 0, `credential revoked by ${request.principal!.name}`)),
  )

  app.post(
    '/machines/:uuid/reprovision',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: {
        tags,
        summary: 'Open a re-provision window: until it closes, the machine is served its secret-bearing config (from its own address) without an install slot',
        params: UuidParams,
        body: WindowBody,
        response: { 200: WindowResponse, ...adminErrors },
      },
    },
    async (request) => toWindowResponse(await machines.setReprovisionWindow(request.params.uuid, request.body?.window_seconds ?? reprovisionWindowSeconds, request.principal!.name)),
  )
  app.delete(
    '/machines/:uuid/reprovision',
    { config: { access: operate('tenant', machineChangeOwner) }, schema: { tags, summary: 'Close the re-provision window', params: UuidParams, response: { 200: WindowResponse, ...adminErrors } } },
    async (request) => toWindowResponse(await machines.setReprovisionWindow(request.params.uuid, 0, request.principal!.name)),
  )
}
