import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { SlipwayError } from '../../../../core/errors.ts'
import type { LockService } from '../../../../core/lifecycle/lock-service.ts'
import type { MachineRollingGate } from '../../../../core/lifecycle/machine-rolling-gate.ts'
import { machineOf } from '../../auth.ts'
import { GROUP_NAME_PATTERN } from '../../../../core/lifecycle/semaphore.ts'
import { machineAccess, publicAccess } from '../../../../core/access/route-policy.ts'
import { ClientParams, CredentialParams, FleetLockError, type FleetLockErrorKind } from '../../schemas/fleetlock.ts'

class FleetLockFailure extends Error {
  constructor(
    readonly status: number,
    readonly kind: FleetLockErrorKind,
    message: string,
  ) {
    super(message)
  }
}

const fail = (reply: FastifyReply, status: number, kind: FleetLockErrorKind, value: string) => reply.status(status).type('application/json').send({ kind, value })

export interface FleetLockRouteOptions {
  locks: LockService
  /** The lock group of a machine: its cluster's, else `default`. A machine locks there only. */
  lockGroupOf: (machineUuid: string) => string
  /** etcd's quorum for control-plane members: when they may take a slot, and give it back. */
  rollingGate: MachineRollingGate
}

/** Zincati's group when none is configured: accepted as "this machine's own group". */
const ZINCATI_DEFAULT_GROUP = 'default'

/**
 * The FleetLock protocol (Zincati's `fleet_lock` strategy) over the lock semaphore. Each machine gets
 * its own base URL, `<engine>/fleetlock/<machine credential>/`, in its Ignition: the credential says
 * which machine is asking, and the slot is held in that machine's name (its uuid), so a machine can
 * only ever take or release its own slot whatever `client_params.id` it sends. Errors use FleetLock's
 * `{kind, value}` body with a small, fixed set of kinds.
 */
export const fleetLockRoutes: FastifyPluginAsyncTypebox<FleetLockRouteOptions> = async (app, { locks, lockGroupOf, rollingGate }) => {
  // Every failure, including fastify's own (malformed JSON, wrong content type), in FleetLock's shape.
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    if (error instanceof FleetLockFailure) return fail(reply, error.status, error.kind, error.message)
    if (error instanceof SlipwayError && error.code === 'MACHINE_CREDENTIAL_REQUIRED') return fail(reply, 403, 'invalid_machine_credential', error.message)
    if (error instanceof SlipwayError && error.code === 'SEMAPHORE_FULL') return fail(reply, 409, 'failed_lock_semaphore_full', error.message)
    if (error instanceof SlipwayError && error.code === 'ETCD_QUORUM_AT_RISK') return fail(reply, 409, 'failed_lock_etcd_quorum', error.message)
    if (error instanceof SlipwayError && error.code === 'ETCD_MEMBER_NOT_READY') return fail(reply, 409, 'failed_unlock_etcd_member_not_ready', error.message)
    if (error instanceof SlipwayError && error.code.startsWith('ETCD_')) return fail(reply, 503, 'failed_etcd_unreachable', error.message)
    if (error instanceof SlipwayError && error.kind === 'invalid') return fail(reply, 400, 'invalid_client_params', error.message)
    const status = (error as FastifyError).statusCode
    if (status && status >= 400 && status < 500) return fail(reply, status, 'invalid_client_params', `malformed request: ${error.message}`)
    request.log.error({ err: error }, 'fleetlock request failed')
    return fail(reply, 500, 'internal_error', `internal error; see the engine log for request ${request.id}`)
  })

  /**
   * The credential (checked before anything else, see auth.ts) names the machine; the slot is taken in
   * that machine's own lock group, which the engine decides: a machine can neither take another
   * cluster's slot nor create a group by naming one.
   */
  const holderOf = (request: FastifyRequest & { body: { client_params: { id: string; group: string } } }) => {
    if (request.headers['fleet-lock-protocol'] !== 'true') {
      throw new FleetLockFailure(400, 'missing_fleet_lock_header', 'the request lacks the header "fleet-lock-protocol: true"')
    }
    const uuid = machineOf(request)
    const { id, group: asked } = request.body.client_params
    if (!id) throw new FleetLockFailure(400, 'invalid_client_params', 'client_params.id must not be empty')
    if (!GROUP_NAME_PATTERN.test(asked)) throw new FleetLockFailure(400, 'invalid_client_params', `client_params.group "${asked.slice(0, 80)}" must match ^[a-zA-Z0-9.-]+$ (at most 64 characters)`)
    const group = lockGroupOf(uuid)
    if (asked !== group && asked !== ZINCATI_DEFAULT_GROUP) {
      throw new FleetLockFailure(400, 'invalid_client_params', `client_params.group "${asked}" is not this machine's lock group "${group}"; set Zincati's group to "${group}" (or leave it "default")`)
    }
    return { uuid, group }
  }

  const schema = (summary: string) => ({
    tags: ['lifecycle'],
    summary,
    security: [],
    params: CredentialParams,
    body: ClientParams,
    response: { 200: Type.Object({}), 400: FleetLockError, 403: FleetLockError, 409: FleetLockError, 500: FleetLockError, 503: FleetLockError },
  })

  app.post('/fleetlock/:credential/v1/pre-reboot', { config: { access: machineAccess('path') }, bodyLimit: 4096, schema: schema('FleetLock RecursiveLock: take (or keep) a reboot slot') }, async (request) => {
    const { uuid, group } = holderOf(request)
    const { alreadyHeld } = await rollingGate.lock(uuid, () => locks.lock(group, uuid), () => locks.unlockIfHeld(group, uuid))
    request.log.info({ component: 'fleetlock', group, holder: uuid, clientId: request.body.client_params.id, alreadyHeld }, 'reboot slot locked')
    return {}
  })

  app.post('/fleetlock/:credential/v1/steady-state', { config: { access: machineAccess('path') }, bodyLimit: 4096, schema: schema('FleetLock UnlockIfHeld: release the reboot slot if held') }, async (request) => {
    const { uuid, group } = holderOf(request)
    await rollingGate.mayUnlock(uuid)
    const released = await locks.unlockIfHeld(group, uuid)
    request.log.info({ component: 'fleetlock', group, holder: uuid, released }, released ? 'reboot slot released' : 'steady state (no slot held)')
    return {}
  })

  // Zincati configured with the engine's bare URL: say what is missing instead of a 404.
  for (const operation of ['pre-reboot', 'steady-state']) {
    app.post(`/fleetlock/v1/${operation}`, { config: { access: publicAccess() }, schema: { hide: true } }, async (_request, reply) =>
      fail(reply, 403, 'invalid_machine_credential', 'FleetLock needs the per-machine base URL <engine>/fleetlock/<machine credential>/ written into the machine\'s Ignition'),
    )
  }
}
