import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { MachineService } from '../../../../core/machines/machine-service.ts'
import { adminErrors } from '../../schemas/common.ts'
import {
  EventResponse,
  Labels,
  MachineDetail,
  MachineListQuery,
  MachineSummary,
  toEventResponse,
  toMachineSummary,
  TransitionBody,
  UuidParams,
  type Membership,
} from '../../schemas/machines.ts'
import { tenancyOf } from '../../auth.ts'
import { SlipwayError } from '../../../../core/errors.ts'
import type { DriftService } from '../../../../core/lifecycle/drift.ts'
import { machineChangeOwner, machineOwner, operate, read } from '../../../../core/access/route-policy.ts'

const tags = ['machines']

/** A machine's place in a cluster, as the route shows it (the membership's PKI never leaves the engine). */
export type MembershipOf = (uuid: string) => Membership | undefined

export const machineRoutes: FastifyPluginAsyncTypebox<{ machines: MachineService; membershipOf: MembershipOf; drift: DriftService }> = async (app, { machines, membershipOf, drift }) => {
  app.get(
    '/machines',
    { config: { access: read('tenant') }, schema: { tags, summary: 'List machines (filters combine with AND)', querystring: MachineListQuery, response: { 200: Type.Array(MachineSummary), ...adminErrors } } },
    async (request) => {
      const { state, mac, label, cluster } = request.query
      const labels = label === undefined ? [] : Array.isArray(label) ? label : [label]
      // A tenant sees the machines of its clusters only.
      const listed = await tenancyOf(request).machines(await machines.list({ ...(state ? { state } : {}), ...(mac !== undefined ? { mac } : {}), labels }), (machine) => machine.uuid)
      const driftOf = new Map((await drift.list()).map((record) => [record.uuid, record]))
      return listed.filter((machine) => cluster === undefined || membershipOf(machine.uuid)?.cluster === cluster).map((machine) => toMachineSummary(machine, membershipOf(machine.uuid), driftOf.get(machine.uuid)))
    },
  )

  app.get(
    '/machines/:uuid',
    { config: { access: read('tenant', machineOwner) }, schema: { tags, summary: 'Get a machine with its interfaces, disks, labels and state history', params: UuidParams, response: { 200: MachineDetail, ...adminErrors } } },
    async (request) => {
      const machine = await machines.get(request.params.uuid)
      const record = await drift.get(machine.uuid).catch((error: unknown) => {
        if (error instanceof SlipwayError && error.code === 'NO_IGNITION_REPORT') return undefined
        throw error
      })
      return { ...toMachineSummary(machine, membershipOf(machine.uuid), record), events: (await machines.events(machine.uuid)).map(toEventResponse) }
    },
  )

  app.put(
    '/machines/:uuid/labels',
    { config: { access: operate('tenant', machineChangeOwner) }, schema: { tags, summary: "Replace a machine's labels", params: UuidParams, body: Labels, response: { 200: Labels, ...adminErrors } } },
    async (request) => machines.replaceLabels(request.params.uuid, request.body),
  )

  app.post(
    '/machines/:uuid/transitions',
    {
      config: { access: operate('tenant', machineChangeOwner) },
      schema: {
        tags,
        summary: 'Move a machine to another state (409 INVALID_TRANSITION if the state machine forbids it)',
        params: UuidParams,
        body: TransitionBody,
        response: { 200: EventResponse, ...adminErrors },
      },
    },
    async (request) => toEventResponse((await machines.transition(request.params.uuid, request.body.to, request.body.reason)).event),
  )
}
