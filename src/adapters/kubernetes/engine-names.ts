import { lookup as systemLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns'
import type { LookupFunction } from 'node:net'

/**
 * The addresses of a name the engine answers itself (a cluster's control-plane endpoint,
 * `api.<cluster>.<zone>`), or undefined for any other name.
 */
export type EngineNames = (hostname: string) => Promise<string[] | undefined>

/**
 * A `lookup` for sockets (net/tls `connect`, undici's `connect` options) that resolves the engine's
 * own names from its own answers, and every other name through the system resolver. The engine's
 * clients then reach a provisioned cluster by its endpoint name (the name its API server
 * certificates carry) even where the host's resolver does not delegate the engine's zone to it.
 * Every address is given when asked for all: with Node's default autoSelectFamily a connection tries
 * them in turn, so a control-plane member that is down (restarting in a rolling update) costs one
 * attempt, not the request.
 */
export function lookupThrough(names: EngineNames): LookupFunction {
  return ((hostname: string, options: LookupOneOptions | LookupAllOptions, callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    names(hostname).then(
      (addresses) => {
        if (addresses === undefined) {
          systemLookup(hostname, options as LookupAllOptions, callback as (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void)
          return
        }
        if (addresses.length === 0) {
          const error: NodeJS.ErrnoException = Object.assign(new Error(`${hostname}: no control-plane member answers for this endpoint yet (none installed)`), { code: 'ENOTFOUND', hostname })
          callback(error, options.all ? [] : '', 4)
          return
        }
        if (options.all) callback(null, addresses.map((address) => ({ address, family: 4 })))
        else callback(null, addresses[0]!, 4)
      },
      (error: Error) => callback(Object.assign(error, { code: 'EAI_FAIL' }), options.all ? [] : '', 4),
    )
  }) as LookupFunction
}
