import { createHash, createPrivateKey, X509Certificate } from 'node:crypto'
import { ApiException, CoreV1Api, KubeConfig, VersionApi, type ConfigurationOptions, type V1Node, type V1Pod } from '@kubernetes/client-node'
import { request } from 'undici'
import { invalid, unavailable } from '../../core/errors.ts'
import type { HealthSample, ProbeFailureKind } from '../../core/registry/cluster-health.ts'
import type { ClusterConnection, Credential, CredentialsDocument } from '../../core/registry/registered-cluster.ts'
import type { ClusterApi, LiveDetails } from '../../core/registry/registry-service.ts'
import { isStatus, networkCause, parseStatus, truncate } from './api-answers.ts'
import { kubeConfigOf, SharedConnectionPool, type ConnectionPoolOptions } from './cluster-connection.ts'

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g
const LIST_PAGE = 500

/** Each PEM certificate of a bundle, parsed; 400 INVALID_CA_BUNDLE (or `code`) naming the bad one. */
function certificatesOf(pem: string, what: string, code = 'INVALID_CA_BUNDLE'): X509Certificate[] {
  const blocks = [...pem.matchAll(PEM_BLOCK)]
  if (blocks.length === 0) throw invalid(code, `${what}: no PEM certificate found (expected -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)`)
  return blocks.map((block, index) => {
    if (block[1] !== 'CERTIFICATE') throw invalid(code, `${what}: block ${index + 1} is a ${block[1]}, not a CERTIFICATE`)
    try {
      return new X509Certificate(block[0])
    } catch {
      throw invalid(code, `${what}: block ${index + 1} is not a valid X.509 certificate`)
    }
  })
}

function clientCertificate(certificatePem: string, keyPem: string, where: string): Credential {
  const [certificate] = certificatesOf(certificatePem, `${where} client certificate`, 'INVALID_CREDENTIALS')
  let key
  try {
    key = createPrivateKey(keyPem)
  } catch {
    // The parser's message could quote the key: never pass it on.
    throw invalid('INVALID_CREDENTIALS', `${where} client key is not a PEM private key`)
  }
  if (!certificate!.checkPrivateKey(key)) throw invalid('INVALID_CREDENTIALS', `${where} client key does not belong to the client certificate (${certificate!.subject.replaceAll('\n', ', ')})`)
  if (Date.parse(certificate!.validTo) < Date.now()) throw invalid('INVALID_CREDENTIALS', `${where} client certificate expired on ${certificate!.validTo}`)
  return { type: 'client_certificate', certificatePem, keyPem }
}

const decode = (base64: string) => Buffer.from(base64, 'base64').toString('utf8')

/** What the engine accepts from a kubeconfig: its current context, embedded data only, static credentials only. */
function readKubeconfig(text: string): { credential: Credential; server: string; caBundle: string | null } {
  const config = new KubeConfig()
  try {
    config.loadFromString(text)
  } catch {
    // The parser's message may quote the document, keys included.
    throw invalid('INVALID_KUBECONFIG', 'kubeconfig: not a valid kubeconfig YAML document')
  }
  const cluster = config.getCurrentCluster()
  const user = config.getCurrentUser()
  if (!cluster?.server || !user) throw invalid('INVALID_KUBECONFIG', `kubeconfig: current-context "${config.getCurrentContext() || 'unset'}" does not name a cluster with a server and a user`)
  if (cluster.caFile || user.certFile || user.keyFile) throw invalid('INVALID_KUBECONFIG', 'kubeconfig: refers to files on another machine; embed them (certificate-authority-data, client-certificate-data, client-key-data)')
  if (cluster.skipTLSVerify) throw invalid('INVALID_KUBECONFIG', 'kubeconfig: insecure-skip-tls-verify is not accepted; give the cluster CA (certificate-authority-data)')
  if (user.exec || user.authProvider) throw invalid('INVALID_KUBECONFIG', 'kubeconfig: exec and auth-provider plugins are not run by the engine; use a token (e.g. a ServiceAccount token) or an embedded client certificate')
  const caBundle = cluster.caData ? decode(cluster.caData) : null
  if (caBundle) certificatesOf(caBundle, 'kubeconfig certificate-authority-data')
  let credential: Credential
  if (user.token) credential = { type: 'token', token: user.token }
  else if (user.certData && user.keyData) credential = clientCertificate(decode(user.certData), decode(user.keyData), 'kubeconfig')
  else throw invalid('INVALID_KUBECONFIG', `kubeconfig: user "${user.name}" has no token and no embedded client certificate and key`)
  return { credential, server: cluster.server, caBundle }
}

/** One cluster's clients, sharing one connection pool. */
class ClusterClient {
  readonly core: CoreV1Api
  readonly version: VersionApi
  private readonly pool: SharedConnectionPool

  constructor(
    readonly fingerprint: string,
    private readonly connection: ClusterConnection,
    pool: ConnectionPoolOptions,
  ) {
    const config = kubeConfigOf(connection)
    this.pool = new SharedConnectionPool(connection, pool)
    this.core = config.makeApiClient(CoreV1Api)
    this.version = config.makeApiClient(VersionApi)
  }

  options(timeoutMs: number): ConfigurationOptions {
    return { middleware: [this.pool.middleware(timeoutMs)], middlewareMergeStrategy: 'append' }
  }

  /**
   * GET /readyz through the kept pool (client-node's Health builds a new connection per call). As
   * Health does: 200 is ready; an API server without /readyz (404) is asked /healthz.
   */
  async readyz(timeoutMs: number): Promise<{ ready: boolean; message?: string }> {
    for (const path of ['/readyz', '/healthz']) {
      const answer = await request(`${this.connection.server}${path}`, { dispatcher: this.pool.agent, headers: SharedConnectionPool.authorization(this.connection), signal: AbortSignal.timeout(timeoutMs) })
      const text = truncate((await answer.body.text()).trim(), 300)
      if (answer.statusCode === 200) return { ready: true }
      if (answer.statusCode === 401) throw new ApiException(401, 'Unauthorized', text, {})
      if (answer.statusCode !== 404) return { ready: false, message: `${answer.statusCode} ${text}` }
    }
    return { ready: true }
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}

/** Why a request failed, as the registry classifies it; the message never includes credentials. */
export function failureOf(error: unknown, timeoutMs: number): { kind: ProbeFailureKind; message: string } {
  if (isStatus(error, 401)) return { kind: 'unauthorized', message: '401 Unauthorized' }
  if (isStatus(error, 403)) return { kind: 'forbidden', message: `403 Forbidden: ${truncate(parseStatus((error as { body?: unknown }).body)?.message ?? 'the credentials may not list nodes and pods', 300)}` }
  const code = (error as { code?: unknown }).code
  if (typeof code === 'number' && code >= 400) return { kind: 'server_error', message: `${code}: ${truncate(parseStatus((error as { body?: unknown }).body)?.message ?? 'error', 300)}` }
  const cause = networkCause(error)
  if (cause.code === 'TIMEOUT' || cause.code === 'ETIMEDOUT' || cause.code === 'UND_ERR_CONNECT_TIMEOUT') return { kind: 'timeout', message: `no answer within ${timeoutMs} ms` }
  if (cause.tls) return { kind: 'tls', message: `TLS: ${cause.text} (does the CA bundle match the API server's certificate?)` }
  return { kind: 'connection', message: cause.text }
}

const isNodeReady = (node: V1Node) => node.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True') ?? false

/**
 * The registry's view of Kubernetes API servers through @kubernetes/client-node: credential checks at
 * registration, health probes (version, /readyz, nodes, pods) with a timeout per request, and live
 * details on demand. Clients are kept per cluster (and rebuilt when its connection changes) so that
 * sweeps reuse connections.
 */
export class KubernetesClusterApi implements ClusterApi {
  private readonly clients = new Map<string, ClusterClient>()

  /** `keepAliveMs`: keep idle connections longer than the sweep interval, so that sweeps reuse them. */
  constructor(private readonly pool: ConnectionPoolOptions = { keepAliveMs: 60_000 }) {}

  readCredentials(credentials: CredentialsDocument): { credential: Credential; server?: string; caBundle?: string | null } {
    if (credentials.kubeconfig !== undefined) return readKubeconfig(credentials.kubeconfig)
    if (credentials.token !== undefined) {
      if (/\s/.test(credentials.token.trim()) || credentials.token.trim() === '') throw invalid('INVALID_CREDENTIALS', 'credentials.token: a bearer token has no spaces')
      return { credential: { type: 'token', token: credentials.token.trim() } }
    }
    return { credential: clientCertificate(credentials.client_certificate ?? '', credentials.client_key ?? '', 'credentials:') }
  }

  checkCaBundle(pem: string): string {
    certificatesOf(pem, 'ca_bundle')
    return pem.trim() + '\n'
  }

  async probe(connection: ClusterConnection, timeoutMs: number): Promise<HealthSample> {
    const started = performance.now()
    const client = this.clientFor(connection)
    const options = client.options(timeoutMs)
    const sample: HealthSample = { apiReady: false, durationMs: 0 }
    // The four questions at once: a distant cluster costs one round trip, not four.
    const [version, ready, nodes, pods] = await Promise.allSettled([
      client.version.getCode({}, options),
      client.readyz(timeoutMs),
      this.listAll((_continue) => client.core.listNode({ limit: LIST_PAGE, ...(_continue ? { _continue } : {}) }, options)),
      this.listAll((_continue) => client.core.listPodForAllNamespaces({ limit: LIST_PAGE, ...(_continue ? { _continue } : {}) }, options)),
    ])
    if (version.status === 'fulfilled') sample.kubernetesVersion = version.value.gitVersion
    if (ready.status === 'fulfilled') {
      sample.apiReady = ready.value.ready
      if (ready.value.message) sample.apiMessage = ready.value.message
    }
    if (nodes.status === 'fulfilled') {
      const notReady = nodes.value.filter((node) => !isNodeReady(node)).map((node) => node.metadata?.name ?? '?')
      sample.nodes = { ready: nodes.value.length - notReady.length, total: nodes.value.length, notReady }
    }
    if (pods.status === 'fulfilled') sample.pods = { running: pods.value.filter((pod) => pod.status?.phase === 'Running').length, total: pods.value.length }
    // The first failure in question order says most (a rejected credential fails every question).
    const failed = [version, ready, nodes, pods].find((answer) => answer.status === 'rejected')
    if (failed) sample.failure = failureOf(failed.reason, timeoutMs)
    sample.durationMs = performance.now() - started
    return sample
  }

  async details(connection: ClusterConnection, timeoutMs: number): Promise<LiveDetails> {
    const client = this.clientFor(connection)
    const options = client.options(timeoutMs)
    let nodes: V1Node[]
    let pods: V1Pod[]
    try {
      nodes = await this.listAll((_continue) => client.core.listNode({ limit: LIST_PAGE, ...(_continue ? { _continue } : {}) }, options))
      pods = await this.listAll((_continue) => client.core.listPodForAllNamespaces({ limit: LIST_PAGE, ...(_continue ? { _continue } : {}) }, options))
    } catch (error) {
      const failure = failureOf(error, timeoutMs)
      throw unavailable('CLUSTER_API_FAILED', `cluster "${connection.name}" (${connection.server}): ${failure.message}`, 5)
    }
    const podsByNamespace: LiveDetails['podsByNamespace'] = {}
    for (const pod of pods) {
      const namespace = pod.metadata?.namespace ?? ''
      const counts = (podsByNamespace[namespace] ??= { running: 0, total: 0 })
      counts.total++
      if (pod.status?.phase === 'Running') counts.running++
    }
    return {
      fetchedAt: new Date().toISOString(),
      nodes: nodes.map((node) => ({
        name: node.metadata?.name ?? '',
        ready: isNodeReady(node),
        unschedulable: node.spec?.unschedulable === true,
        roles: Object.keys(node.metadata?.labels ?? {})
          .filter((label) => label.startsWith('node-role.kubernetes.io/'))
          .map((label) => label.slice('node-role.kubernetes.io/'.length)),
        kubeletVersion: node.status?.nodeInfo?.kubeletVersion ?? null,
        conditions: (node.status?.conditions ?? []).map((condition) => ({
          type: condition.type,
          status: condition.status,
          reason: condition.reason ?? null,
          message: condition.message ?? null,
          lastTransitionTime: condition.lastTransitionTime ? new Date(condition.lastTransitionTime).toISOString() : null,
        })),
      })),
      podsByNamespace,
    }
  }

  /** Forgets clusters no longer in the registry (and closes their connections). */
  async retain(names: ReadonlySet<string>): Promise<void> {
    for (const [name, client] of this.clients) {
      if (names.has(name)) continue
      this.clients.delete(name)
      await client.close()
    }
  }

  async close(): Promise<void> {
    await this.retain(new Set())
  }

  private clientFor(connection: ClusterConnection): ClusterClient {
    const fingerprint = createHash('sha256').update(JSON.stringify([connection.server, connection.caBundle, connection.credential])).digest('hex')
    const current = this.clients.get(connection.name)
    if (current?.fingerprint === fingerprint) return current
    void current?.close()
    const client = new ClusterClient(fingerprint, connection, this.pool)
    this.clients.set(connection.name, client)
    return client
  }

  private async listAll<T>(page: (_continue: string | undefined) => Promise<{ items: T[]; metadata?: { _continue?: string } }>): Promise<T[]> {
    const items: T[] = []
    let next: string | undefined
    do {
      const answer = await page(next)
      items.push(...answer.items)
      next = answer.metadata?._continue || undefined
    } while (next)
    return items
  }
}
