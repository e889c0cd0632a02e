import { createHash } from 'node:crypto'
import { canonicalJson } from '../lifecycle/drift.ts'
import { parseLabelSelector } from '../selection/label-selector.ts'
import type { ChartService } from './chart-service.ts'
import { planFanout, retryDelayMs } from './fanout-plan.ts'
import type { ReleaseApplier, ReleaseCluster, ReleaseRenderer, ReleaseRepository, Rendered } from './ports.ts'
import { releaseKey, type ClusterRelease, type Release } from './release.ts'
import { valuesFor, type ReleaseService } from './release-service.ts'

export interface ReleaseExecutorPorts {
  repository: ReleaseRepository
  charts: ChartService
  renderer: ReleaseRenderer
  applier: ReleaseApplier
  service: ReleaseService
  clock(): Date
  log(event: { release: string; cluster?: string; message: string; level: 'info' | 'warn' | 'error' }): void
  /** Told each time helm is asked to render for a fan-out (a render cache miss), for the metrics. */
  rendered?(): void
}

/** Renders kept for reuse: enough for every distinct set of values of a large fan-out. */
const RENDER_CACHE_SIZE = 256

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error))

/**
 * The release reconciler: each tick brings every release a step closer to its clusters (planFanout),
 * with one worker per cluster in flight. A cluster's phase is stored before its work starts, and
 * applying is server-side apply (safe to repeat), so after a restart a cluster left `applying` or
 * `removing` is simply done again. Renders are shared between clusters whose values are equal.
 */
export class ReleaseExecutor {
  /** How many times helm rendered (for the benchmark and the metrics). */
  renders = 0
  private readonly renderCache = new Map<string, Promise<Rendered>>()
  private readonly workers = new Map<string, Promise<void>>()
  private stopping = false

  constructor(
    private readonly ports: ReleaseExecutorPorts,
    /** Asks for a tick soon: a cluster finished, the next may start. */
    private readonly wake: () => void = () => {},
  ) {}

  async tick(): Promise<void> {
    if (this.stopping) return
    const releases = await this.ports.repository.list()
    if (releases.length === 0) return
    // The registry (with health) is read once per pass, not once per release.
    const clusters = await this.ports.service.clusterFacts()
    for (const release of releases) await this.advance(release, clusters)
  }

  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true
    await Promise.race([Promise.allSettled([...this.workers.values()]), new Promise((resolve) => setTimeout(resolve, graceMs).unref())])
  }

  private async advance(release: Release, clusters: readonly ReleaseCluster[]): Promise<void> {
    const key = releaseKey(release.namespace, release.name)
    const targets = await this.ports.service.targets(release, clusters)
    const canary = release.rollout.canarySelector ? parseLabelSelector(release.rollout.canarySelector) : undefined
    const statuses = await this.ports.repository.listClusters(release.namespace, release.name)
    const facts = new Map(targets.map((cluster) => [cluster.name, cluster]))
    // Work left in flight by a crash or a stop is picked up again.
    for (const status of statuses) {
      if (status.phase === 'applying' && facts.has(status.cluster)) this.startWorker(key, status.cluster, () => this.applyTo(release, facts.get(status.cluster)!))
      if (status.phase === 'removing') this.startWorker(key, status.cluster, () => this.removeFrom(release, status))
    }
    const now = this.ports.clock()
    const plan = planFanout(
      release,
      targets.map((cluster) => ({ cluster: cluster.name, canary: canary?.matches(cluster.labels) ?? false })),
      statuses,
      now,
    )
    if (plan.waiting?.startsWith('halted') && release.state === 'active') {
      // Only the state, and only if the release is still active at the revision this pass read: saving
      // the whole copy read at the start of the pass would undo an upgrade committed meanwhile.
      const halted = await this.ports.repository.transaction(async (repository) => {
        if (!(await repository.halt(release.namespace, release.name, release.revision, now.toISOString()))) return false
        await repository.appendEvent(release.namespace, release.name, { at: now.toISOString(), cluster: null, message: `rollout ${plan.waiting}; retry or resume to go on` })
        return true
      })
      if (halted) this.ports.log({ release: key, message: `rollout ${plan.waiting}`, level: 'warn' })
    }
    for (const cluster of plan.apply) {
      const previous = statuses.find((status) => status.cluster === cluster)
      const status: ClusterRelease = {
        cluster,
        revision: release.revision,
        phase: 'applying',
        error: null,
        attempts: previous?.revision === release.revision ? previous.attempts : 0,
        retryAt: null,
        objects: previous?.objects ?? [],
        updatedAt: now.toISOString(),
        readyAt: previous?.readyAt ?? null,
      }
      await this.ports.repository.saveCluster(release.namespace, release.name, status)
      await this.event(release, cluster, `applying revision ${release.revision}`)
      this.startWorker(key, cluster, () => this.applyTo(release, facts.get(cluster)!))
    }
    for (const cluster of plan.remove) {
      const status = statuses.find((candidate) => candidate.cluster === cluster)!
      const removing: ClusterRelease = { ...status, phase: 'removing', updatedAt: now.toISOString() }
      await this.ports.repository.saveCluster(release.namespace, release.name, removing)
      await this.event(release, cluster, release.state === 'deleting' ? 'removing (release deleted)' : 'removing (no longer selected)')
      this.startWorker(key, cluster, () => this.removeFrom(release, removing))
    }
    if (release.state === 'deleting' && statuses.length === 0 && !this.hasWorkers(key)) {
      await this.ports.repository.delete(release.namespace, release.name)
      this.ports.log({ release: key, message: 'release deleted from every cluster', level: 'info' })
    }
  }

  private hasWorkers(key: string): boolean {
    return [...this.workers.keys()].some((worker) => worker.startsWith(`${key}@`))
  }

  private startWorker(key: string, cluster: string, work: () => Promise<void>): void {
    const id = `${key}@${cluster}`
    if (this.workers.has(id) || this.stopping) return
    const worker = work()
      .catch((error: unknown) => this.ports.log({ release: key, cluster, message: `worker stopped: ${errorText(error)}`, level: 'warn' }))
      .finally(() => {
        this.workers.delete(id)
        this.wake()
      })
    this.workers.set(id, worker)
  }

  private async applyTo(release: Release, cluster: ReleaseCluster): Promise<void> {
    const { namespace, name } = release
    const revision = (await this.ports.repository.listRevisions(namespace, name)).find((candidate) => candidate.revision === release.revision)!
    let status = (await this.ports.repository.listClusters(namespace, name)).find((candidate) => candidate.cluster === cluster.name)!
    try {
      const chart = await this.ports.charts.find(revision.chartName, revision.chartVersion)
      const values = valuesFor(revision, cluster)
      const rendered = await this.render(release, chart.digest, values, cluster.kubernetesVersion, async () =>
        this.ports.renderer.render({ chart, archive: await this.ports.charts.archive(chart.name, chart.version), releaseName: name, namespace, values, kubeVersion: cluster.kubernetesVersion }),
      )
      const objects = await this.ports.applier.apply(
        cluster.name,
        { releaseName: name, namespace, revision: revision.revision, description: revision.description, chart, values, rendered, firstDeployedAt: status.readyAt ?? release.createdAt },
        status.objects,
      )
      status = { ...status, objects, updatedAt: this.ports.clock().toISOString() }
      await this.ports.repository.saveCluster(namespace, name, status)
      await this.ports.applier.waitReady(cluster.name, objects, release.rollout.readyTimeoutSeconds * 1000)
      const at = this.ports.clock().toISOString()
      await this.ports.repository.saveCluster(namespace, name, { ...status, phase: 'ready', error: null, attempts: 0, retryAt: null, updatedAt: at, readyAt: at })
      await this.event(release, cluster.name, `revision ${revision.revision} ready (${objects.length} object(s))`)
    } catch (error) {
      if (this.stopping) return
      const at = this.ports.clock()
      const attempts = status.attempts + 1
      const retryAt = new Date(at.getTime() + retryDelayMs(attempts)).toISOString()
      await this.ports.repository.saveCluster(namespace, name, { ...status, phase: 'failed', error: errorText(error), attempts, retryAt, updatedAt: at.toISOString() })
      await this.event(release, cluster.name, `revision ${revision.revision} failed (attempt ${attempts}, next try at ${retryAt}): ${errorText(error)}`)
      this.ports.log({ release: releaseKey(namespace, name), cluster: cluster.name, message: `failed: ${errorText(error)}`, level: 'warn' })
    }
  }

  private async removeFrom(release: Release, status: ClusterRelease): Promise<void> {
    const { namespace, name } = release
    try {
      await this.ports.applier.uninstall(status.cluster, { name, namespace }, status.objects)
      await this.ports.repository.deleteCluster(namespace, name, status.cluster)
      await this.event(release, status.cluster, `removed (${status.objects.length} object(s) deleted)`)
    } catch (error) {
      if (this.stopping) return
      const at = this.ports.clock()
      const attempts = status.attempts + 1
      const retryAt = new Date(at.getTime() + retryDelayMs(attempts)).toISOString()
      await this.ports.repository.saveCluster(namespace, name, { ...status, phase: 'failed', error: `removal failed: ${errorText(error)}`, attempts, retryAt, updatedAt: at.toISOString() })
      await this.event(release, status.cluster, `removal failed (next try at ${retryAt}): ${errorText(error)}`)
    }
  }

  /** One helm render per distinct (chart, release, values, Kubernetes version); failures are not kept. */
  private render(release: Release, digest: string, values: Record<string, unknown>, kubeVersion: string | null, work: () => Promise<Rendered>): Promise<Rendered> {
    const key = createHash('sha256').update(canonicalJson([digest, release.namespace, release.name, values, kubeVersion])).digest('hex')
    let rendered = this.renderCache.get(key)
    if (!rendered) {
      this.renders++
      this.ports.rendered?.()
      rendered = work()
      rendered.catch(() => this.renderCache.delete(key))
      this.renderCache.set(key, rendered)
      if (this.renderCache.size > RENDER_CACHE_SIZE) this.renderCache.delete(this.renderCache.keys().next().value!)
    }
    return rendered
  }

  private async event(release: Release, cluster: string, message: string): Promise<void> {
    await this.ports.repository.appendEvent(release.namespace, release.name, { at: this.ports.clock().toISOString(), cluster, message })
    this.ports.log({ release: releaseKey(release.namespace, release.name), cluster, message, level: 'info' })
  }
}
