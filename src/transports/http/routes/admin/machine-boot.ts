import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { BootService } from '../../../../core/boot/boot-service.ts'
import { SlipwayError } from '../../../../core/errors.ts'
import type { MachineCredentials } from '../../../../core/lifecycle/machine-credentials.ts'
import type { MachineService } from '../../../../core/machines/machine-service.ts'
import { labelsFromQuery } from '../../../../core/selection/labels.ts'
import { adminErrors } from '../../schemas/common.ts'
import { BootResponse, UuidParams } from '../../schemas/machines.ts'
import { machineOwner, read } from '../../../../core/access/route-policy.ts'

const STATUS_OF_KIND: Record<string, number> = { invalid: 400, unauthorized: 401, forbidden: 403, not_found: 404, conflict: 409, unavailable: 503, configuration: 500 }

/**
 * PEM private keys, kubeconfigs' client keys (base64 of a PEM key), kubeadm bootstrap tokens
 * ([a-z0-9]{6}.[a-z0-9]{16}) and the machine's own credential.
 */
function secretRedactor(credential: string) {
  return (text: string): string =>
    text
      .replace(/(-----BEGIN ([A-Z ]*)PRIVATE KEY-----)[\s\S]*?(-----END \2PRIVATE KEY-----)/g, '$1\nREDACTED-PRIVATE-KEY\n$3')
      .replace(/^(\s*client-key-data:\s*)\S+$/gm, '$1REDACTED-PRIVATE-KEY')
      .replace(/\b[a-z0-9]{6}\.[a-z0-9]{16}\b/g, 'REDACTED-BOOTSTRAP-TOKEN')
      .replaceAll(credential, 'REDACTED-MACHINE-CREDENTIAL')
}

/** Redacts inside every string of an Ignition config, `data:` URLs decoded first; returns the paths it changed. */
function redactIgnition(config: unknown, redact: (text: string) => string): { config: unknown; paths: string[] } {
  const paths: string[] = []
  const visit = (value: unknown, at: string): unknown => {
    if (typeof value === 'string') {
      const data = /^data:([^,]*?)(;base64)?,(.*)$/s.exec(value)
      if (data) {
        const decoded = data[2] ? Buffer.from(data[3]!, 'base64').toString('utf8') : decodeURIComponentSafe(data[3]!)
        const redacted = decoded === undefined ? decoded : redact(decoded)
        if (decoded === undefined || redacted === decoded) return value
        paths.push(at)
        return `data:${data[1]},${encodeURIComponent(redacted!)}`
      }
      const redacted = redact(value)
      if (redacted !== value) paths.push(at)
      return redacted
    }
    if (Array.isArray(value)) return value.map((item, index) => visit(item, `${at}[${index}]`))
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, visit(child, at ? `${at}.${key}` : key)]))
    return value
  }
  return { config: visit(config, ''), paths }
}

function decodeURIComponentSafe(text: string): string | undefined {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

export interface MachineBootRouteOptions {
  machines: MachineService
  boot: BootService
  credentials: MachineCredentials
  /** Configured public base URL; empty means taken from each request (as on the boot routes). */
  publicUrl: string
}

/**
 * What a machine is served, rendered by the same core as `/ipxe` and `/ignition`, for the operator
 * who wants to see it. Secrets in it (cluster private keys, the bootstrap token, the machine's
 * credential) are redacted: nothing else differs from what the machine receives.
 */
export const machineBootRoutes: FastifyPluginAsyncTypebox<MachineBootRouteOptions> = async (app, { machines, boot, credentials, publicUrl }) => {
  app.get(
    '/machines/:uuid/boot',
    {
      config: { access: read('tenant', machineOwner) },
      schema: {
        tags: ['machines'],
        summary: 'The iPXE script and Ignition config the machine is served now (secrets redacted)',
        params: UuidParams,
        response: { 200: BootResponse, ...adminErrors },
      },
    },
    async (request) => {
      const machine = await machines.get(request.params.uuid)
      const engineUrl = publicUrl ? publicUrl.replace(/\/+$/, '') : `${request.protocol}://${request.host}`
      // A machine with a role fetches its role config (the installer asks with os=installed): show that one.
      const withRole = machine.state === 'scheduled' || machine.state === 'installing' || machine.state === 'install_failed'
      const query = `uuid=${machine.uuid}&mac=${machine.bootMac.replaceAll(':', '-')}${withRole ? '&os=installed' : ''}`
      const bootRequest = { labels: labelsFromQuery(new URLSearchParams(query)), rawQuery: query, engineUrl }
      const redact = secretRedactor(credentials.issue(machine.uuid, machine.credential.generation))
      const redacted: string[] = []
      const render = <T>(produce: () => T): { value?: T; error: { status: number; code: string; message: string } | null } => {
        try {
          return { value: produce(), error: null }
        } catch (error) {
          if (!(error instanceof SlipwayError)) throw error
          return { error: { status: STATUS_OF_KIND[error.kind] ?? 500, code: error.code, message: error.message } }
        }
      }
      const ipxe = render(() => boot.ipxeScript(bootRequest))
      const ipxeBody = ipxe.value === undefined ? null : redact(ipxe.value)
      if (ipxeBody !== null && ipxeBody !== ipxe.value) redacted.push('ipxe')
      const ignition = render(() => boot.ignition(bootRequest))
      let ignitionBody: string | null = null
      if (ignition.value) {
        const result = redactIgnition(JSON.parse(ignition.value.body), redact)
        redacted.push(...result.paths)
        // Byte for byte the served body when nothing was redacted (both are compact JSON in the same key order).
        ignitionBody = result.paths.length ? JSON.stringify(result.config) : ignition.value.body
      }
      return {
        ipxe: { url: `${engineUrl}/ipxe?${query}`, content_type: 'text/plain', body: ipxeBody, error: ipxe.error },
        ignition: { url: `${engineUrl}/ignition?${query}`, content_type: 'application/json', body: ignitionBody, error: ignition.error },
        redacted,
      }
    },
  )
}
