import type { RoutePolicy } from '../../core/access/route-policy.ts'

/**
 * What the OpenAPI document (/apidocs/json) says beyond each route's own schema, decided in one place:
 * an operationId per operation, the security each route really has (from its access declaration: no
 * token for what firmware and installers call, the machine credential for the lifecycle routes, the
 * bearer token for the rest), the routes machines call documented with what they answer, and a
 * description for every response that would otherwise read "Default Response".
 */

type JsonSchema = Record<string, unknown>
interface RouteSchema extends JsonSchema {
  hide?: boolean
  security?: Record<string, string[]>[]
  operationId?: string
  params?: unknown
}

/** The security schemes beside the admin bearer token. */
export const SECURITY_SCHEMES = {
  bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API token (the admin token the engine generated, or one made with POST /api/v1/tokens).' },
  machineCredential: {
    type: 'http',
    scheme: 'bearer',
    description: "A machine's own credential, from the role config it installed (/etc/slipway/lifecycle.env, SLIPWAY_MACHINE_CREDENTIAL).",
  },
} as const

const text = (description: string) => ({ description, content: { 'text/plain': { schema: { type: 'string' } } } })
const binary = (description: string) => ({ description, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } })
const json = (description: string, schema: JsonSchema = { type: 'object' }) => ({ description, content: { 'application/json': { schema } } })
const ERROR = { type: 'object', properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] }
const LABELS_QUERY = {
  type: 'object',
  properties: {
    mac: { type: 'string', description: 'The boot MAC (52:54:00:00:00:01 or 52-54-00-00-00-01).' },
    uuid: { type: 'string', description: 'The SMBIOS uuid.' },
    os: { type: 'string', description: '`installed` once the machine runs its installed OS.' },
  },
  additionalProperties: { type: 'string' },
}
const labelled = 'Every query parameter is a label groups select by (matchbox: mac, uuid, os, and any other).'

/** The routes machines and probes call: hidden by their own declarations, documented here. */
const MACHINE_ROUTES: Record<string, JsonSchema> = {
  'GET /boot.ipxe': { summary: 'The iPXE chain script every machine gets first (it chains to /ipxe with its identity)', response: { 200: text('An iPXE script.') } },
  'GET /boot.ipxe.0': { summary: 'The same chain script, under the name some PXE firmware asks for', response: { 200: text('An iPXE script.') } },
  'GET /ipxe': { summary: "The machine's iPXE script, from the group its labels select", description: labelled, querystring: LABELS_QUERY, response: { 200: text('An iPXE script.'), 404: json('No group matches the labels.', ERROR), 503: json('Not yet (e.g. the scheduler has not given the machine a role); retry after Retry-After.', ERROR) } },
  'GET /ignition': { summary: "The machine's Ignition config, validated against the spec version it declares", description: `${labelled} Configs that carry secrets are served only inside an install slot, a re-provision window, or with the machine's credential, from its own address.`, querystring: LABELS_QUERY, response: { 200: json('An Ignition config.'), 403: json('A config that carries secrets, asked for outside a slot or window.', ERROR), 404: json('No group matches the labels.', ERROR), 503: json('Not yet: waiting for a role or for certificates; retry after Retry-After.', ERROR) } },
  'GET /metadata': { summary: "The machine's group metadata and labels as KEY=value lines (matchbox)", description: labelled, querystring: LABELS_QUERY, response: { 200: text('KEY=value lines.'), 404: json('No group matches the labels.', ERROR) } },
  'GET /generic': { summary: "The machine's generic config (a script such as the discovery agent)", description: labelled, querystring: LABELS_QUERY, response: { 200: text('The rendered file.'), 404: json('No group matches, or its profile has no generic config.', ERROR) } },
  'GET /assets/*': { summary: 'A file under the assets folder (kernels, initrds, OS images); Range requests resume', params: { type: 'object', properties: { path: { type: 'string', description: 'The path under the folder.' } }, required: ['path'] }, response: { 200: binary('The file.'), 206: binary('The range asked for.'), 404: json('No such file, or a path that climbs out of the folder.', ERROR) } },
  'GET /pxe/*': { summary: 'An iPXE binary for UEFI HTTP boot', params: { type: 'object', properties: { path: { type: 'string', description: 'The binary, e.g. ipxe.efi.' } }, required: ['path'] }, response: { 200: binary('The binary.'), 206: binary('The range asked for.'), 404: json('No such binary.', ERROR) } },
  'GET /healthz': { summary: 'Readiness: 200 once every listener is open and the database answers', response: { 200: json('Ready.', { type: 'object', properties: { status: { type: 'string' } } }), 503: json('STARTING (listeners still opening) or NOT_READY (the database does not answer).', ERROR) } },
  'GET /metrics': { summary: 'Prometheus metrics', response: { 200: text('The Prometheus text exposition format.') } },
  'GET /': { summary: "The engine's index: a browser is sent to the web UI, a program gets links", response: { 200: json('Name, version and links.', { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, links: { type: 'object', additionalProperties: { type: 'string' } } } }), 303: { description: 'To the web UI (for a browser).' } } },
}

/** Routes whose answers are not JSON: what their own schemas cannot say (their runtime stays as it is). */
const NON_JSON_ANSWERS: Record<string, JsonSchema> = {
  'GET /charts/index.yaml': { 200: { description: "The repository index, in Helm's format.", content: { 'application/x-yaml': { schema: { type: 'string' } } } } },
  'GET /charts/:file': { 200: { description: 'The chart archive.', content: { 'application/gzip': { schema: { type: 'string', format: 'binary' } } } }, 404: json('No such archive in the repository.', ERROR) },
}

/** `GET /api/v1/clusters/:name/bootstrap` -> `getApiV1ClustersByNameBootstrap`: stable, unique per method and path. */
export function operationIdOf(method: string, url: string): string {
  const words = url
    .split('/')
    .filter(Boolean)
    .flatMap((segment) => (segment.startsWith(':') ? ['by', segment.slice(1)] : segment === '*' ? ['by', 'path'] : segment.split(/[^A-Za-z0-9]+/)))
    .filter(Boolean)
  return [method.toLowerCase(), ...words.map((word) => word[0]!.toUpperCase() + word.slice(1))].join('')
}

/** The security an access declaration means, in OpenAPI terms; undefined keeps the document's bearer token. */
function securityOf(policy: RoutePolicy | undefined): Record<string, string[]>[] | undefined {
  if (!policy) return undefined
  if (policy.access === 'public') return []
  // A FleetLock client puts its credential in the URL path (it cannot send headers): nothing for OpenAPI to describe.
  if (policy.access === 'machine') return policy.credentialIn === 'authorization' ? [{ machineCredential: [] }] : []
  return undefined
}

/** @fastify/swagger's per-route `transform`. */
export function transformRoute({ schema, url, route }: { schema: RouteSchema | undefined; url: string; route: { method: string | string[]; config?: { access?: RoutePolicy } } }): { schema: RouteSchema; url: string } {
  const method = Array.isArray(route.method) ? route.method[0]! : route.method
  const prefix = url.startsWith('/assets/') ? '/assets/*' : url.startsWith('/pxe/') ? '/pxe/*' : url
  const machineRoute = MACHINE_ROUTES[`${method} ${prefix}`]
  const answers = NON_JSON_ANSWERS[`${method} ${url}`]
  const base: RouteSchema = machineRoute ? { ...machineRoute, tags: ['machine-facing'] } : { ...(schema ?? {}), ...(answers ? { response: { ...((schema?.response as JsonSchema) ?? {}), ...answers } } : {}) }
  const documentedUrl = prefix.endsWith('/*') ? `${prefix.slice(0, -1)}:path` : url
  const security = securityOf(route.config?.access)
  return {
    url: documentedUrl,
    schema: {
      ...base,
      operationId: base.operationId ?? operationIdOf(method, documentedUrl),
      ...(security !== undefined ? { security } : {}),
    },
  }
}

const REASONS: Record<string, string> = {
  200: 'OK.',
  201: 'Created.',
  202: 'Accepted: the work goes on after the answer.',
  204: 'Done; nothing to answer.',
  206: 'The range asked for.',
  301: 'Moved.',
  302: 'Found elsewhere.',
  303: 'See the Location header.',
  304: 'Not modified since the ETag given.',
  400: 'The request is invalid: `code` and `message` say what to change.',
  401: 'No valid token (or credential) was sent.',
  403: "The token's role or tenant does not allow this.",
  404: 'Not found.',
  405: 'Method not allowed.',
  409: 'Conflicts with the current state: `code` says which.',
  413: 'The body is too large.',
  415: 'The content type is not accepted.',
  416: 'The range cannot be satisfied.',
  422: 'Understood but not acceptable.',
  429: 'Too many requests: retry after Retry-After.',
  500: 'The engine failed: the log has the request id.',
  502: 'An upstream (a cluster API server, helm) failed.',
  503: 'Not available now: retry after Retry-After.',
  504: 'An upstream did not answer in time.',
}

/** @fastify/swagger's `transformObject`: the security schemes, and no response left as "Default Response". */
export function transformDocument({ openapiObject }: { openapiObject: Record<string, unknown> }): Record<string, unknown> {
  const document = openapiObject as { components?: { securitySchemes?: Record<string, unknown> }; paths?: Record<string, Record<string, { responses?: Record<string, { description?: string }> }>> }
  document.components = { ...document.components, securitySchemes: { ...document.components?.securitySchemes, ...SECURITY_SCHEMES } }
  for (const item of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(item)) {
      for (const [code, response] of Object.entries(operation.responses ?? {})) {
        if (!response.description || response.description === 'Default Response') response.description = REASONS[code] ?? 'See the body.'
      }
    }
  }
  return openapiObject
}
