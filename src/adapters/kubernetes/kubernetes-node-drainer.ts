import { STATUS_CODES, type RequestOptions } from 'node:http'
import type { LookupFunction } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  Observable,
  PatchStrategy,
  setHeaderOptions,
  type ConfigurationOptions,
  type ObservableMiddleware,
  type RequestContext,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node'
import { Agent, type buildConnector } from 'undici'
import { SlipwayError, conflict, invalid, misconfigured, notFound, unavailable } from '../../core/errors.ts'
import type { DrainOptions, DrainReport, NodeDrainer } from '../../core/lifecycle/ports.ts'
import { ConcurrencyLimiter } from '../../lib/concurrency-limiter.ts'
import { isStatus, networkCause, parseStatus, refusalReason, truncate } from './api-answers.ts'

export interface KubernetesNodeDrainerOptions {
  /** How often an evicted pod is checked for being gone (kubectl: 1 s). */
  deletePollIntervalMs?: number
  /** Pods per page when listing a node's pods (kubectl's --chunk-size: 500). */
  listPageSize?: number
  /** A request the API server has not answered within this long fails. */
  requestTimeoutMs?: number
  /** Requests in flight at once during a drain (kubectl has no bound; 250 pods polled at once is rude). */
  maxRequestsInFlight?: number
  /**
   * How the server's host name is resolved (a provisioned cluster's endpoint by the engine itself, see
   * engine-names.ts). Used for kubeconfigs with a static credential; the system resolver otherwise.
   */
  lookup?: LookupFunction
}

const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror'
/** At most this many pod names in a message; `details` carries them all. */
const NAMES_IN_MESSAGE = 20
const DEFAULT_RETRY_AFTER_SECONDS = 5

/** `namespace/name`, the way kubectl names pods. */
const podKey = (pod: V1Pod) => `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`

function nameList(names: string[]): string {
  const shown = names.slice(0, NAMES_IN_MESSAGE).join(', ')
  return names.length > NAMES_IN_MESSAGE ? `${shown} and ${names.length - NAMES_IN_MESSAGE} more` : shown
}

type PodProgress =
  | { state: 'waiting' }
  | { state: 'refused'; refusals: number; reason: string }
  | { state: 'evicted' }
  | { state: 'gone' }

/** Thrown inside a drain's tasks once the drain stopped (timeout or another pod's failure). */
class DrainStopped extends Error {}

/**
 * The NodeDrainer port over a cluster's API server, doing what `kubectl drain` does: cordon, list the
 * node's pods, refuse before evicting anything when a pod would be lost, evict through the Eviction
 * API (so PodDisruptionBudgets are honoured, 429 = "not now"), then wait until each pod is gone.
 *
 * One instance per cluster; `close()` releases its connections.
 */
export class KubernetesNodeDrainer implements NodeDrainer {
  private readonly core: CoreV1Api
  /** The API server's URL without user info, safe to put in messages. */
  readonly server: string
  private readonly requestOptions: ConfigurationOptions
  private readonly strategicMergePatchOptions: ConfigurationOptions
  private readonly deletePollIntervalMs: number
  private readonly listPageSize: number
  private readonly requestTimeoutMs: number
  private readonly maxRequestsInFlight: number
  private sharedDispatcher: ReturnType<RequestContext['getDispatcher']>
  private readonly reuseDispatcher: boolean
  /** With a `lookup`: the one pool every request goes through, built from the kubeconfig's TLS material. */
  private ownDispatcher?: Promise<Agent>

  /**
   * @param kubeconfig a kubeconfig YAML document, e.g. what `adminKubeconfig()` builds (https with
   * certificate-authority-data and a client certificate). Plain `http://` is accepted for a loopback
   * server only (tests, `kubectl proxy`): anything else would send credentials in clear.
   */
  constructor(kubeconfig: string, options: KubernetesNodeDrainerOptions = {}) {
    const config = new KubeConfig()
    try {
      config.loadFromString(kubeconfig)
    } catch {
      // The parser's message may quote the document, keys included: never pass it on.
      throw invalid('KUBECONFIG_INVALID', 'The kubeconfig is not a valid YAML kubeconfig document.')
    }
    const cluster = config.getCurrentCluster()
    if (!cluster?.server) {
      throw invalid('KUBECONFIG_INVALID', `The kubeconfig has no current context with a cluster server (current-context: ${config.getCurrentContext() || 'unset'}).`)
    }
    let url: URL
    try {
      url = new URL(cluster.server)
    } catch {
      throw invalid('KUBECONFIG_INVALID', 'The kubeconfig\'s cluster server is not a URL.')
    }
    this.server = `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`
    if (url.protocol === 'http:') {
      if (!isLoopback(url.hostname)) {
        throw invalid('KUBECONFIG_INSECURE_SERVER', `The kubeconfig's server ${this.server} is plain http on a non-loopback address: credentials would cross the network in clear. Use https.`)
      }
      // client-node 2.x refuses http:// unless insecure-skip-tls-verify is set (it means nothing without TLS).
      config.loadFromOptions({
        clusters: config.clusters.map((c) => (c.name === cluster.name ? { ...c, skipTLSVerify: true } : c)),
        contexts: config.contexts,
        users: config.users,
        currentContext: config.currentContext,
      })
    } else if (url.protocol !== 'https:') {
      throw invalid('KUBECONFIG_INVALID', `The kubeconfig's server ${this.server} is neither https nor http.`)
    }
    const user = config.getCurrentUser()
    // Static client certificates (adminKubeconfig's) never change, so one connection pool serves every
    // request; exec/auth-provider credentials may rotate certificates, so those keep the library's way.
    this.reuseDispatcher = !user?.exec && !user?.authProvider

    this.deletePollIntervalMs = options.deletePollIntervalMs ?? 1000
    this.listPageSize = options.listPageSize ?? 500
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000
    this.maxRequestsInFlight = options.maxRequestsInFlight ?? 20

    this.core = config.makeApiClient(CoreV1Api)
    const lookup = options.lookup
    if (lookup && this.reuseDispatcher && url.protocol === 'https:') {
      this.ownDispatcher = (async () => {
        const tls: RequestOptions & { ca?: unknown; cert?: unknown; key?: unknown; servername?: string; rejectUnauthorized?: boolean } = {}
        await config.applyToHTTPSOptions(tls)
        const connect = { ca: tls.ca, cert: tls.cert, key: tls.key, ...(tls.servername ? { servername: tls.servername } : {}), ...(tls.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}), lookup }
        return new Agent({ connect: connect as buildConnector.BuildOptions })
      })()
    }
    const requestMiddleware: ObservableMiddleware = {
      pre: (context) => {
        context.setSignal(AbortSignal.timeout(this.requestTimeoutMs))
        if (this.ownDispatcher) {
          return new Observable(
            this.ownDispatcher.then((agent) => {
              const made = context.getDispatcher()
              context.setDispatcher(agent)
              if (made && made !== agent) made.close().catch(() => undefined)
              return context
            }),
          )
        }
        this.shareDispatcher(context)
        return new Observable(Promise.resolve(context))
      },
      post: (response) => new Observable(Promise.resolve(response)),
    }
    // 'append' keeps the library's own middleware (User-Agent) in front of ours.
    this.requestOptions = { middleware: [requestMiddleware], middlewareMergeStrategy: 'append' }
    // The generated patchNode sends the first patch type of the OpenAPI list, application/json-patch+json,
    // which a JSON object body is not: the Content-Type must be replaced per call (after the request is built).
    this.strategicMergePatchOptions = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch, this.requestOptions)
  }

  /**
   * client-node 2.x builds a new undici Agent for every request of a TLS kubeconfig, so every call would
   * open a new connection and TLS handshake (a drain polls each pod every second). The first Agent is
   * kept and the later, unused ones are closed.
   */
  private shareDispatcher(context: RequestContext): void {
    const dispatcher = context.getDispatcher()
    if (!this.reuseDispatcher || !dispatcher) return
    if (!this.sharedDispatcher) {
      this.sharedDispatcher = dispatcher
    } else if (dispatcher !== this.sharedDispatcher) {
      context.setDispatcher(this.sharedDispatcher)
      dispatcher.close().catch(() => undefined)
    }
  }

  /** Closes the kept connections (TLS kubeconfigs); the drainer must not be used afterwards. */
  async close(): Promise<void> {
    const dispatcher = this.sharedDispatcher
    this.sharedDispatcher = undefined
    await dispatcher?.close()
    const own = this.ownDispatcher
    this.ownDispatcher = undefined
    await (await own?.catch(() => undefined))?.close()
  }

  async cordon(node: string): Promise<void> {
    await this.setUnschedulable(node, true)
  }

  async uncordon(node: string): Promise<void> {
    await this.setUnschedulable(node, false)
  }

  /**
   * A node object that does not exist is not ready (a rebooting machine's kubelet may re-register it);
   * an API server that does not answer is an error (kind `unavailable`), so that callers can retry.
   */
  async isReady(node: string): Promise<boolean> {
    let current: V1Node
    try {
      current = await this.core.readNode({ name: node }, this.requestOptions)
    } catch (error) {
      if (isStatus(error, 404)) return false
      throw this.apiError(error, `read node ${node}`)
    }
    return current.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false
  }

  /** Like kubectl: reads the node and patches only when the flag must change. Answers whether it changed. */
  private async setUnschedulable(node: string, unschedulable: boolean): Promise<boolean> {
    const action = `${unschedulable ? 'cordon' : 'uncordon'} node ${node}`
    const current = await this.readNode(node, action)
    if ((current.spec?.unschedulable ?? false) === unschedulable) return false
    try {
      await this.core.patchNode({ name: node, body: { spec: { unschedulable } } }, this.strategicMergePatchOptions)
    } catch (error) {
      if (isStatus(error, 404)) throw this.nodeNotFound(node)
      throw this.apiError(error, action)
    }
    return true
  }

  private async readNode(node: string, action: string): Promise<V1Node> {
    try {
      return await this.core.readNode({ name: node }, this.requestOptions)
    } catch (error) {
      if (isStatus(error, 404)) throw this.nodeNotFound(node)
      throw this.apiError(error, action)
    }
  }

  async drain(node: string, options: DrainOptions, progress: (message: string) => void = () => undefined): Promise<DrainReport> {
    if (!(options.timeoutMs > 0) || !(options.evictionRetryMs >= 0)) {
      throw invalid('DRAIN_OPTIONS_INVALID', `Drain options need timeoutMs > 0 and evictionRetryMs >= 0 (got ${options.timeoutMs} and ${options.evictionRetryMs}).`)
    }
    if (options.gracePeriodSeconds !== undefined && !(Number.isInteger(options.gracePeriodSeconds) && options.gracePeriodSeconds >= 0)) {
      throw invalid('DRAIN_OPTIONS_INVALID', `gracePeriodSeconds must be a whole number of seconds >= 0 (got ${options.gracePeriodSeconds}).`)
    }
    const startedAt = Date.now()
    const stop = new AbortController()
    // One slot per request, not per pod: a pod waiting between retries or polls holds none.
    const slots = new ConcurrencyLimiter(this.maxRequestsInFlight)
    const pods = new Map<string, PodProgress>()
    const timedOut = Symbol('timed out')

    const work = async (): Promise<DrainReport> => {
      const cordoned = await this.setUnschedulable(node, true)
      progress(cordoned ? `cordoned node ${node}` : `node ${node} was already cordoned`)
      const plan = classifyPods(await this.listPods(node, slots, stop.signal), options)
      if (plan.unmanaged.length > 0 || plan.emptyDir.length > 0) throw refusal(node, plan)
      progress(`node ${node}: ${plan.evict.length} pod(s) to evict, ${plan.skipped.length} skipped (DaemonSet and mirror pods)${plan.skipped.length > 0 ? `: ${nameList(plan.skipped)}` : ''}`)
      for (const pod of plan.evict) pods.set(podKey(pod), { state: 'waiting' })
      const tasks = plan.evict.map((pod) => this.evictAndWait(pod, options, pods, slots, stop.signal, progress))
      try {
        await Promise.all(tasks)
      } catch (error) {
        // One pod failed for good: stop the others rather than leave them running past the answer.
        stop.abort()
        await Promise.allSettled(tasks)
        throw error
      }
      progress(`drained node ${node}: ${plan.evict.length} pod(s) evicted`)
      return { evicted: plan.evict.map(podKey), skipped: plan.skipped }
    }

    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<typeof timedOut>((resolve) => {
      timer = setTimeout(() => resolve(timedOut), options.timeoutMs)
    })
    const running = work()
    try {
      const outcome = await Promise.race([running, deadline])
      if (outcome !== timedOut) return outcome
    } finally {
      clearTimeout(timer)
    }
    // Timed out: stop every task and say what was left. No task starts another request or retry; one
    // already in flight finishes on its own (bounded by requestTimeoutMs).
    stop.abort()
    running.catch(() => undefined)
    throw drainTimeout(node, Date.now() - startedAt, pods)
  }

  /** Every pod bound to the node, page by page (`limit` and `continue`), as kubectl lists them. */
  private async listPods(node: string, slots: ConcurrencyLimiter, stop: AbortSignal): Promise<V1Pod[]> {
    const pods: V1Pod[] = []
    let next: string | undefined
    do {
      if (stop.aborted) throw new DrainStopped()
      const continueToken = next
      const page = await slots
        .run(() =>
          this.core.listPodForAllNamespaces(
            { fieldSelector: `spec.nodeName=${node}`, limit: this.listPageSize, ...(continueToken ? { _continue: continueToken } : {}) },
            this.requestOptions,
          ),
        )
        .catch((error: unknown) => {
          throw this.apiError(error, `list the pods of node ${node}`)
        })
      pods.push(...page.items)
      next = page.metadata?._continue || undefined
    } while (next)
    return pods
  }

  /**
   * Evicts one pod, retrying 429s (a PodDisruptionBudget, or the server's rate limit, said "not now"),
   * then polls it until it is gone: 404, or a pod of the same name with another UID (a StatefulSet's
   * replacement). Updates `pods` as it goes so that a timeout can say where each pod was.
   */
  private async evictAndWait(
    pod: V1Pod,
    options: DrainOptions,
    pods: Map<string, PodProgress>,
    slots: ConcurrencyLimiter,
    stop: AbortSignal,
    progress: (message: string) => void,
  ): Promise<void> {
    const key = podKey(pod)
    const name = pod.metadata?.name ?? ''
    const namespace = pod.metadata?.namespace ?? ''
    const uid = pod.metadata?.uid
    const request = <T>(call: () => Promise<T>) => {
      if (stop.aborted) throw new DrainStopped()
      return slots.run(() => {
        if (stop.aborted) throw new DrainStopped()
        return call()
      })
    }
    const pause = async (ms: number) => {
      try {
        await sleep(ms, undefined, { signal: stop })
      } catch {
        throw new DrainStopped()
      }
    }

    for (let refusals = 0; ; ) {
      try {
        await request(() =>
          this.core.createNamespacedPodEviction(
            {
              name,
              namespace,
              body: {
                apiVersion: 'policy/v1',
                kind: 'Eviction',
                metadata: { name, namespace },
                ...(options.gracePeriodSeconds !== undefined ? { deleteOptions: { gracePeriodSeconds: options.gracePeriodSeconds } } : {}),
              },
            },
            this.requestOptions,
          ),
        )
        pods.set(key, { state: 'evicted' })
        progress(`evicted pod ${key}`)
        break
      } catch (error) {
        if (error instanceof DrainStopped) throw error
        if (isStatus(error, 404)) {
          pods.set(key, { state: 'gone' })
          progress(`pod ${key} was already gone`)
          return
        }
        if (isStatus(error, 429)) {
          refusals++
          const { byBudget, text } = refusalReason(error)
          pods.set(key, { state: 'refused', refusals, reason: text })
          progress(
            byBudget
              ? `pod ${key}: a disruption budget refused the eviction (${text}); retrying in ${options.evictionRetryMs} ms`
              : `pod ${key}: the API server refused the eviction for now (429 ${text}); retrying in ${options.evictionRetryMs} ms`,
          )
          await pause(options.evictionRetryMs)
          continue
        }
        throw this.apiError(error, `evict pod ${key}`)
      }
    }

    for (;;) {
      try {
        const current = await request(() => this.core.readNamespacedPod({ name, namespace }, this.requestOptions))
        if (current.metadata?.uid !== uid) break
      } catch (error) {
        if (error instanceof DrainStopped) throw error
        if (isStatus(error, 404)) break
        throw this.apiError(error, `check whether pod ${key} is gone`)
      }
      await pause(this.deletePollIntervalMs)
    }
    pods.set(key, { state: 'gone' })
    progress(`pod ${key} is gone`)
  }

  private nodeNotFound(node: string): SlipwayError {
    return notFound('KUBERNETES_NODE_NOT_FOUND', `The Kubernetes API at ${this.server} has no node named ${node} (kubectl get nodes lists their names).`, {
      node,
      server: this.server,
    })
  }

  /**
   * A failure talking to the API server, as a person can act on it: what was attempted, the server, the
   * HTTP status and the server's own reason. Credentials never appear (the kubeconfig's server URL is
   * stripped of user info; request headers are not part of any message).
   */
  private apiError(error: unknown, action: string): SlipwayError {
    if (error instanceof SlipwayError) return error
    const code = 'KUBERNETES_API_ERROR'
    if (error instanceof ApiException) {
      const status = parseStatus(error.body)
      const statusCode: number = error.code
      // Some generated operations drop the body of a 401: fall back on the HTTP reason phrase.
      const reason = status?.reason ?? STATUS_CODES[statusCode]
      const answer = `${statusCode}${reason ? ` ${reason}` : ''}${status?.message ? `: ${truncate(status.message, 300)}` : ''}`
      const details = { server: this.server, status: statusCode, reason, action }
      if (statusCode === 401) {
        return misconfigured(
          code,
          `The Kubernetes API at ${this.server} did not accept the engine's credentials to ${action} (${answer}): the client certificate in the cluster's kubeconfig is not trusted or has expired.`,
          details,
        )
      }
      if (statusCode === 403) {
        return misconfigured(
          code,
          `The Kubernetes API at ${this.server} forbade the engine to ${action} (${answer}): its identity needs get/patch on nodes, list/get on pods and create on pods/eviction.`,
          details,
        )
      }
      if (statusCode === 429 || statusCode >= 500) {
        const retryAfter = Number(error.headers?.['retry-after']) || status?.details?.retryAfterSeconds || DEFAULT_RETRY_AFTER_SECONDS
        return unavailable(code, `The Kubernetes API at ${this.server} failed to ${action} (${answer}); try again once the API server is healthy.`, retryAfter, details)
      }
      if (statusCode === 409) {
        return conflict(code, `The Kubernetes API at ${this.server} refused to ${action} because of a conflict (${answer}); try again.`, details)
      }
      return misconfigured(code, `The Kubernetes API at ${this.server} rejected the request to ${action} (${answer}).`, details)
    }
    const cause = networkCause(error)
    const details = { server: this.server, action, cause: cause.code }
    if (cause.tls) {
      return misconfigured(
        code,
        `The Kubernetes API at ${this.server} presented a TLS certificate the engine does not trust (${cause.text}) when trying to ${action}: it must be signed by the cluster CA of the kubeconfig and name the server's address.`,
        details,
      )
    }
    return unavailable(
      code,
      `Cannot reach the Kubernetes API at ${this.server} to ${action}: ${cause.text}. Check that the API server is up and reachable from the engine.`,
      DEFAULT_RETRY_AFTER_SECONDS,
      details,
    )
  }
}


function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '')
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}


interface PodPlan {
  evict: V1Pod[]
  skipped: string[]
  unmanaged: string[]
  emptyDir: string[]
}

/**
 * kubectl drain's filters, in its order: DaemonSet pods and mirror (static) pods are left alone;
 * finished pods are deleted whatever they are; a running pod that no controller would recreate needs
 * `force`, one with emptyDir needs `deleteEmptyDirData`. A pod already terminating goes anyway, so it
 * blocks nothing.
 */
function classifyPods(pods: V1Pod[], options: DrainOptions): PodPlan {
  const plan: PodPlan = { evict: [], skipped: [], unmanaged: [], emptyDir: [] }
  for (const pod of pods) {
    const key = podKey(pod)
    const finished = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed'
    const controller = pod.metadata?.ownerReferences?.find((owner) => owner.controller === true)
    if (controller?.kind === 'DaemonSet' && !finished) {
      plan.skipped.push(key)
      continue
    }
    if (pod.metadata?.annotations?.[MIRROR_POD_ANNOTATION] !== undefined) {
      plan.skipped.push(key)
      continue
    }
    const terminating = pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null
    if (!finished && !terminating) {
      if (!options.deleteEmptyDirData && pod.spec?.volumes?.some((volume) => volume.emptyDir)) plan.emptyDir.push(key)
      if (!options.force && !controller) plan.unmanaged.push(key)
    }
    plan.evict.push(pod)
  }
  return plan
}

function refusal(node: string, plan: PodPlan): SlipwayError {
  const reasons: string[] = []
  if (plan.unmanaged.length > 0) {
    reasons.push(`pods without a controller, which nothing would recreate (set force to evict them anyway): ${nameList(plan.unmanaged)}`)
  }
  if (plan.emptyDir.length > 0) {
    reasons.push(`pods with emptyDir volumes, whose data would be lost (set deleteEmptyDirData to evict them anyway): ${nameList(plan.emptyDir)}`)
  }
  return conflict('DRAIN_REFUSED', `Refusing to drain node ${node}: ${reasons.join('; ')}. No pod was evicted; the node stays cordoned.`, {
    node,
    withoutController: plan.unmanaged,
    withEmptyDir: plan.emptyDir,
  })
}

function drainTimeout(node: string, elapsedMs: number, pods: Map<string, PodProgress>): SlipwayError {
  const left = [...pods].filter(([, progress]) => progress.state !== 'gone')
  const describe = ([key, progress]: [string, PodProgress]) => {
    switch (progress.state) {
      case 'refused':
        return `${key} (eviction refused ${progress.refusals} time(s): ${progress.reason})`
      case 'evicted':
        return `${key} (evicted, still terminating)`
      default:
        return `${key} (not evicted yet)`
    }
  }
  const shown = left.slice(0, NAMES_IN_MESSAGE).map(describe).join(', ')
  const more = left.length > NAMES_IN_MESSAGE ? ` and ${left.length - NAMES_IN_MESSAGE} more` : ''
  const what = pods.size === 0 ? 'before its pods were listed' : `with ${left.length} pod(s) left: ${shown}${more}`
  return conflict(
    'DRAIN_TIMEOUT',
    `Draining node ${node} timed out after ${(elapsedMs / 1000).toFixed(1)} s ${what}. The node stays cordoned; uncordon it to put it back in service.`,
    { node, left: left.map(([key]) => key), evicted: [...pods].filter(([, p]) => p.state === 'gone').map(([key]) => key) },
  )
}
