import type { FastifyInstance, LightMyRequestResponse } from 'fastify'

/** A machine on the boot network as the engine knows it: both halves of its identity and its address. */
export interface MachineIdentity {
  uuid: string
  mac: string
  ip: string
}

const labelsOf = (machine: MachineIdentity) => `uuid=${machine.uuid}&mac=${machine.mac.replaceAll(':', '-')}`

/** A request from the machine itself: its own source address. */
export const asMachine = (app: FastifyInstance, machine: MachineIdentity, method: 'GET' | 'POST', url: string, payload?: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> =>
  app.inject({ method, url, remoteAddress: machine.ip, headers, ...(payload === undefined ? {} : { payload: payload as object }) })

/**
 * What the discovery agent does once the scheduler gave the machine a role: takes an install slot
 * (its role config carries secrets and is served only while it holds one) and fetches the config,
 * from its own address. Throws unless both succeed.
 */
export async function takeSlotAndFetchConfig(app: FastifyInstance, machine: MachineIdentity): ReturnType<typeof asMachine> {
  const granted = await asMachine(app, machine, 'POST', `/install-authorization?${labelsOf(machine)}`, {})
  if (granted.statusCode !== 200) throw new Error(`install-authorization for ${machine.uuid}: ${granted.statusCode} ${granted.body}`)
  return asMachine(app, machine, 'GET', `/ignition?${labelsOf(machine)}&os=installed`)
}

/** The rest of the install: the installer's success report. */
export async function reportInstalled(app: FastifyInstance, machine: MachineIdentity): Promise<void> {
  const reported = await asMachine(app, machine, 'POST', `/lifecycle/install/success?${labelsOf(machine)}`, {})
  if (reported.statusCode !== 200) throw new Error(`install report for ${machine.uuid}: ${reported.statusCode} ${reported.body}`)
}
