import Type, { type Static } from 'typebox'
import { invalid } from '../errors.ts'
import { LABEL_KEY_PATTERN } from '../machines/machine-service.ts'
import { checkDocument } from '../selection/documents.ts'

/**
 * The cluster registry, after optikon's "eye in the sky" and shaped like SIG-Multicluster's
 * ClusterProfile where it fits: every Kubernetes cluster the engine knows, provisioned here (joined
 * automatically once its API server answers) or registered by hand, with labels (what release
 * selectors match), a location (what DNS's nearest-cluster answers use), how to reach its API server,
 * and its last health.
 */
export const REGISTRY_NAME_PATTERN = '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$'
export const HEALTH_STATUSES = ['Healthy', 'Degraded', 'Unreachable'] as const
export type HealthStatus = (typeof HEALTH_STATUSES)[number]
export type ClusterSource = 'manual' | 'provisioned'
/** How the credential was given; `cluster_pki` is a provisioned cluster's admin certificate. */
export const CREDENTIAL_KINDS = ['cluster_pki', 'token', 'client_certificate', 'kubeconfig'] as const
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number]

/** What authenticates the engine to an API server. Never returned, never logged, sealed at rest. */
export type Credential = { type: 'token'; token: string } | { type: 'client_certificate'; certificatePem: string; keyPem: string }

/** Everything needed to talk to a cluster's API server; lives only in memory. */
export interface ClusterConnection {
  name: string
  server: string
  /** PEM bundle the server's certificate must chain to; null trusts the system's roots. */
  caBundle: string | null
  credential: Credential
}

export interface Location {
  latitude: number | null
  longitude: number | null
  region: string | null
  site: string | null
}

export interface RegisteredCluster {
  name: string
  displayName: string
  labels: Record<string, string>
  location: Location
  source: ClusterSource
  /** Null for a provisioned cluster that has not joined yet. */
  server: string | null
  caBundle: string | null
  credentialKind: CredentialKind
  properties: Record<string, string>
  joinedAt: string | null
  /** Why a provisioned cluster has not joined yet (what the last attempt saw). */
  joinMessage: string | null
  createdAt: string
  updatedAt: string
  /** Where the cluster's ingress answers: the addresses DNS hands out for apps running there. */
  ingressAddresses: string[]
}

export interface HealthRecord {
  status: HealthStatus
  /** A CamelCase reason, as Kubernetes conditions have: AllReady, NodesNotReady, Unauthorized, Timeout... */
  reason: string
  message: string
  apiReady: boolean
  nodesReady: number | null
  nodesTotal: number | null
  podsRunning: number | null
  podsTotal: number | null
  kubernetesVersion: string | null
  checkedAt: string
  durationMs: number
  /** When the status last changed. */
  statusSince: string
}

export interface HealthTransition {
  at: string
  from: HealthStatus | null
  to: HealthStatus
  reason: string
  message: string
}

const Labels = Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN }), Type.String({ maxLength: 63, pattern: '^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$' }), {
  maxProperties: 64,
  // A key pattern alone checks only the keys that match it: every other key is refused.
  additionalProperties: false,
  description: 'Kubernetes-style labels: what release selectors and `?labels=` match.',
})
const LocationDocument = Type.Object(
  {
    latitude: Type.Optional(Type.Number({ minimum: -90, maximum: 90 })),
    longitude: Type.Optional(Type.Number({ minimum: -180, maximum: 180 })),
    region: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    site: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
  },
  { additionalProperties: false, description: 'Where the cluster is: DNS answers with the nearest healthy cluster.' },
)
const Pem = (description: string) => Type.String({ minLength: 1, maxLength: 65_536, description })
export const CredentialsDocument = Type.Object(
  {
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, description: 'A bearer token (e.g. a ServiceAccount token).' })),
    client_certificate: Type.Optional(Pem('Client certificate (PEM); with client_key.')),
    client_key: Type.Optional(Pem('Its private key (PEM).')),
    kubeconfig: Type.Optional(
      Type.String({ minLength: 1, maxLength: 262_144, description: 'A kubeconfig (YAML); its current context gives the server, CA and user (token or embedded client certificate).' }),
    ),
  },
  { additionalProperties: false, description: 'Exactly one of: token, client_certificate + client_key, kubeconfig. Encrypted at rest, never returned.' },
)
export type CredentialsDocument = Static<typeof CredentialsDocument>

const mutableFields = {
  display_name: Type.Optional(Type.String({ maxLength: 256 })),
  labels: Type.Optional(Labels),
  location: Type.Optional(LocationDocument),
  server: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'The API server URL, https://host:port[/path].' })),
  ca_bundle: Type.Optional(Pem('PEM certificates the API server chains to; leave out to trust the system roots.')),
  credentials: Type.Optional(CredentialsDocument),
  properties: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 253 }), Type.String({ maxLength: 1024 }), { maxProperties: 64, description: 'ClusterProfile properties (name -> value).' })),
  ingress_addresses: Type.Optional(
    Type.Array(Type.String({ minLength: 2, maxLength: 45 }), { maxItems: 16, uniqueItems: true, description: "IPv4/IPv6 addresses of the cluster's ingress: what DNS answers for apps running there." }),
  ),
}

export const RegistrationDocument = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: REGISTRY_NAME_PATTERN, description: 'Unique name (a DNS label: lowercase letters, digits, "-").' }),
    ...mutableFields,
  },
  { additionalProperties: false },
)
export type RegistrationDocument = Static<typeof RegistrationDocument>
export const RegistrationUpdateDocument = Type.Object(mutableFields, {
  additionalProperties: false,
  description: 'Fields left out keep their value (credentials are never returned, so they are kept unless given); labels and properties are replaced as a whole.',
})
export type RegistrationUpdateDocument = Static<typeof RegistrationUpdateDocument>

export const parseRegistration = (input: unknown) => checkDocument(RegistrationDocument, input, 'cluster', 'INVALID_CLUSTER')
export const parseRegistrationUpdate = (input: unknown) => checkDocument(RegistrationUpdateDocument, input, 'cluster', 'INVALID_CLUSTER')

/** Which credential form a document gives; exactly one is allowed. */
export function credentialFormOf(credentials: CredentialsDocument): 'token' | 'client_certificate' | 'kubeconfig' {
  const forms = [
    credentials.token !== undefined && 'token',
    (credentials.client_certificate !== undefined || credentials.client_key !== undefined) && 'client_certificate',
    credentials.kubeconfig !== undefined && 'kubeconfig',
  ].filter((form): form is 'token' | 'client_certificate' | 'kubeconfig' => Boolean(form))
  if (forms.length !== 1) throw invalid('INVALID_CREDENTIALS', `credentials: give exactly one of token, client_certificate + client_key, kubeconfig (got ${forms.length ? forms.join(' and ') : 'none'})`)
  if (forms[0] === 'client_certificate' && (credentials.client_certificate === undefined || credentials.client_key === undefined)) {
    throw invalid('INVALID_CREDENTIALS', 'credentials: client_certificate and client_key go together')
  }
  return forms[0]!
}

/** Checks an API server URL: https, a host, no credentials or query in it. */
export function checkServerUrl(server: string): string {
  let url: URL
  try {
    url = new URL(server)
  } catch {
    throw invalid('INVALID_SERVER_URL', `server "${server}" is not a URL; use https://host:port (e.g. https://10.0.0.10:6443)`)
  }
  if (url.protocol !== 'https:') throw invalid('INVALID_SERVER_URL', `server "${server}": Kubernetes API servers are reached over https, not ${url.protocol.replace(':', '')}`)
  if (!url.hostname) throw invalid('INVALID_SERVER_URL', `server "${server}" has no host`)
  if (url.username || url.password) throw invalid('INVALID_SERVER_URL', `server "${server}": put credentials in "credentials", not in the URL`)
  if (url.search || url.hash) throw invalid('INVALID_SERVER_URL', `server "${server}": a query or fragment has no meaning here`)
  return server.replace(/\/+$/, '')
}

/** Checks ingress addresses: IPv4 or IPv6 literals. */
export function checkIngressAddresses(addresses: string[], isAddress: (text: string) => boolean): string[] {
  const bad = addresses.find((address) => !isAddress(address))
  if (bad !== undefined) throw invalid('INVALID_CLUSTER', `ingress_addresses: "${bad}" is not an IPv4 or IPv6 address`)
  return addresses
}

export const locationOf = (document: RegistrationUpdateDocument['location'] | undefined): Location => ({
  latitude: document?.latitude ?? null,
  longitude: document?.longitude ?? null,
  region: document?.region ?? null,
  site: document?.site ?? null,
})
