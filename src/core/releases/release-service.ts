import { conflict, invalid, notFound } from '../errors.ts'
import { parseLabelSelector } from '../selection/label-selector.ts'
import type { ChartService } from './chart-service.ts'
import type { ReleaseCluster, ReleaseClusters, ReleaseEvent, ReleaseRenderer, ReleaseRepository } from './ports.ts'
import {
  dnsSettingsOf,
  mergeValues,
  parseReleaseDocument,
  parseUpgradeDocument,
  rolloutSettingsOf,
  type ClusterRelease,
  type Release,
  type ReleaseRevision,
} from './release.ts'

export interface ReleaseView extends Release {
  current: ReleaseRevision
  clusters: ClusterRelease[]
}

export interface ReleaseDetail extends ReleaseView {
  revisions: ReleaseRevision[]
  events: ReleaseEvent[]
}

/** A tenant's release goes to its own tenant's clusters only; a fleet release (no tenant) to any. */
const ownedBy = (cluster: ReleaseCluster, tenant: string | null | undefined) => !tenant || cluster.tenant === tenant

/** The values a cluster's render gets: the release's, plus the cluster's own facts when asked for. */
export function valuesFor(revision: Pick<ReleaseRevision, 'values' | 'clusterValues'>, cluster: ReleaseCluster): Record<string, unknown> {
  if (!revision.clusterValues) return revision.values
  const { name, labels, latitude, longitude, region, site } = cluster
  return mergeValues(revision.values, { slipway: { cluster: { name, labels, latitude, longitude, region, site } } })
}

/**
 * Releases: install, upgrade and rollback make revisions (checked by rendering with helm first:
 * a chart that does not render is refused with helm's message and nothing is stored); delete takes
 * the release off every cluster, or off the clusters a selector names. The fan-out itself is the
 * reconciler's (release-executor.ts).
 */
export class ReleaseService {
  constructor(
    private readonly repository: ReleaseRepository,
    private readonly charts: ChartService,
    private readonly renderer: ReleaseRenderer,
    private readonly clusters: ReleaseClusters,
    private readonly clock: () => Date = () => new Date(),
    /** Told after a change, so that the reconciler looks at once. */
    private readonly changed: () => void = () => {},
  ) {}

  async list(selector?: string): Promise<ReleaseView[]> {
    const matcher = selector ? parseLabelSelector(selector) : undefined
    const labelsOf = matcher ? new Map((await this.clusters.list()).map((cluster) => [cluster.name, cluster.labels])) : undefined
    const views: ReleaseView[] = []
    for (const release of await this.repository.list()) {
      const view = await this.view(release)
      // optikon's ?labels=: the releases present on a cluster the selector matches.
      if (matcher && !view.clusters.some((status) => matcher.matches(labelsOf!.get(status.cluster) ?? {}))) continue
      views.push(view)
    }
    return views
  }

  async get(namespace: string, name: string, eventLimit = 200): Promise<ReleaseDetail> {
    const release = await this.release(namespace, name)
    return { ...(await this.view(release)), revisions: await this.repository.listRevisions(namespace, name), events: await this.repository.listEvents(namespace, name, eventLimit) }
  }

  /** `tenant`: who owns the release (set at creation, never changed); null: the fleet. */
  async install(input: unknown, tenant: string | null = null, now: Date = this.clock()): Promise<ReleaseDetail> {
    const document = parseReleaseDocument(input)
    if (await this.repository.find(document.namespace, document.name)) throw conflict('RELEASE_EXISTS', `release ${document.namespace}/${document.name} already exists; upgrade it (PUT) or delete it first`)
    const chart = await this.charts.find(document.chart.name, document.chart.version)
    const revision: ReleaseRevision = { revision: 1, chartName: chart.name, chartVersion: chart.version, values: document.values, clusterValues: document.cluster_values, description: 'Install', createdAt: now.toISOString() }
    await this.checkRenders(document.name, document.namespace, revision, document.selector, tenant)
    const at = now.toISOString()
    const release: Release = {
      name: document.name,
      namespace: document.namespace,
      selector: document.selector,
      dns: dnsSettingsOf(document.dns),
      excludedClusters: [],
      revision: 1,
      state: 'active',
      rollout: rolloutSettingsOf(document.rollout),
      createdAt: at,
      updatedAt: at,
      tenant,
    }
    await this.repository.transaction(async (repository) => {
      await repository.insert(release, revision)
      await repository.appendEvent(release.namespace, release.name, { at, cluster: null, message: `revision 1: install ${chart.name} ${chart.version} on clusters matching "${release.selector}"` })
    })
    this.changed()
    return this.get(release.namespace, release.name)
  }

  async upgrade(namespace: string, name: string, input: unknown, now: Date = this.clock()): Promise<ReleaseDetail> {
    const document = parseUpgradeDocument(input)
    const release = await this.release(namespace, name)
    const current = await this.currentRevision(release)
    const chart = await this.charts.find(document.chart?.name ?? current.chartName, document.chart?.version ?? (document.chart ? undefined : current.chartVersion))
    const values = document.values === undefined ? current.values : document.reuse_values ? mergeValues(current.values, document.values) : document.values
    const revision: ReleaseRevision = {
      revision: release.revision + 1,
      chartName: chart.name,
      chartVersion: chart.version,
      values,
      clusterValues: document.cluster_values ?? current.clusterValues,
      description: 'Upgrade',
      createdAt: now.toISOString(),
    }
    const selector = document.selector ?? release.selector
    await this.checkRenders(name, namespace, revision, selector, release.tenant ?? null)
    const rollout = { ...release.rollout }
    if (document.rollout?.max_parallel !== undefined) rollout.maxParallel = document.rollout.max_parallel
    if (document.rollout?.max_failures !== undefined) rollout.maxFailures = document.rollout.max_failures
    if (document.rollout?.ready_timeout_seconds !== undefined) rollout.readyTimeoutSeconds = document.rollout.ready_timeout_seconds
    if (document.rollout?.canary_selector !== undefined) rollout.canarySelector = document.rollout.canary_selector || null
    // A new revision is a new rollout: a halt of the previous one does not carry over; a pause does.
    const next: Release = { ...release, selector, rollout, ...(document.dns ? { dns: dnsSettingsOf(document.dns) } : {}), revision: revision.revision, state: release.state === 'halted' ? 'active' : release.state, updatedAt: now.toISOString() }
    await this.commitRevision(next, revision, `revision ${revision.revision}: upgrade to ${chart.name} ${chart.version}${selector !== release.selector ? `, selector "${selector}"` : ''}`)
    return this.get(namespace, name)
  }

  /** Helm's rollback: a new revision with an earlier revision's chart and values. */
  async rollback(namespace: string, name: string, to: number, now: Date = this.clock()): Promise<ReleaseDetail> {
    const release = await this.release(namespace, name)
    const revisions = await this.repository.listRevisions(namespace, name)
    const target = revisions.find((revision) => revision.revision === to)
    if (!target) throw notFound('REVISION_NOT_FOUND', `release ${namespace}/${name} has no revision ${to} (revisions: ${revisions.map((revision) => revision.revision).join(', ')})`)
    if (to === release.revision) throw invalid('INVALID_ROLLBACK', `revision ${to} is the current revision of ${namespace}/${name}`)
    await this.charts.find(target.chartName, target.chartVersion)
    const revision: ReleaseRevision = { ...target, revision: release.revision + 1, description: `Rollback to ${to}`, createdAt: now.toISOString() }
    const next: Release = { ...release, revision: revision.revision, state: release.state === 'halted' ? 'active' : release.state, updatedAt: now.toISOString() }
    await this.commitRevision(next, revision, `revision ${revision.revision}: rollback to revision ${to} (${target.chartName} ${target.chartVersion})`)
    return this.get(namespace, name)
  }

  /**
   * Takes the release off every cluster (then forgets it), or, with a selector, off the clusters it
   * is on that the selector matches (they are excluded from then on; when none is left, as a whole).
   */
  async remove(namespace: string, name: string, selector?: string, now: Date = this.clock()): Promise<{ clusters: string[]; whole: boolean }> {
    const release = await this.release(namespace, name)
    const statuses = await this.repository.listClusters(namespace, name)
    let excluded: string[]
    if (selector === undefined || selector === '') {
      excluded = statuses.map((status) => status.cluster)
      await this.save({ ...release, state: 'deleting', updatedAt: now.toISOString() }, `delete requested: removing from ${excluded.length} cluster(s)`)
      return { clusters: excluded, whole: true }
    }
    const matcher = parseLabelSelector(selector)
    const labelsOf = new Map((await this.clusters.list()).map((cluster) => [cluster.name, cluster.labels]))
    excluded = statuses.filter((status) => matcher.matches(labelsOf.get(status.cluster) ?? {})).map((status) => status.cluster)
    const remaining = (await this.targets(release)).filter((cluster) => !excluded.includes(cluster.name))
    const whole = remaining.length === 0
    const next: Release = { ...release, excludedClusters: [...new Set([...release.excludedClusters, ...excluded])].sort(), state: whole ? 'deleting' : release.state, updatedAt: now.toISOString() }
    await this.save(next, `delete on clusters matching "${matcher.text}": ${excluded.join(', ') || 'none'}${whole ? '; no cluster left: the release is deleted' : ''}`)
    return { clusters: excluded, whole }
  }

  pause(namespace: string, name: string): Promise<ReleaseDetail> {
    return this.move(namespace, name, ['active', 'halted'], 'paused', 'paused by an operator: no new cluster starts')
  }

  /**
   * Resumes a paused or halted rollout. A rollout that reached `max_failures` (halted, or paused after
   * it halted) goes on past its failures: the clusters that failed the current revision stop counting
   * toward max_failures (back to pending) and are tried again at their next automatic retry, keeping
   * their attempts; the others go on now. Failures after that count again from zero. `retry` also
   * stops counting them, but tries them now. A paused rollout below max_failures keeps its count.
   */
  async resume(namespace: string, name: string, now: Date = this.clock()): Promise<ReleaseDetail> {
    const at = now.toISOString()
    // The registry is read before the transaction, never inside it: on SQLite the transaction holds the one connection.
    const clusters = await this.clusters.list()
    await this.repository.transaction(async (repository) => {
      const release = await repository.find(namespace, name)
      if (!release) throw notFound('RELEASE_NOT_FOUND', `release ${namespace}/${name} does not exist`)
      if (release.state !== 'paused' && release.state !== 'halted') {
        throw conflict('INVALID_RELEASE_TRANSITION', `release ${namespace}/${name} is ${release.state} and cannot become active (only from paused or halted)`)
      }
      // Counted as the reconciler counts them: clusters it targets that failed the current revision.
      const targets = new Set((await this.targets(release, clusters)).map((cluster) => cluster.name))
      const failed = (await repository.listClusters(namespace, name)).filter((status) => targets.has(status.cluster) && status.revision === release.revision && status.phase === 'failed')
      const forgiven = release.state === 'halted' || failed.length >= release.rollout.maxFailures ? failed : []
      for (const status of forgiven) await repository.saveCluster(namespace, name, { ...status, phase: 'pending', updatedAt: at })
      await repository.save({ ...release, state: 'active', updatedAt: at })
      const past = forgiven.length ? `; going on past ${forgiven.length} failed cluster(s), tried again at their next retry: ${forgiven.map((status) => status.cluster).join(', ')}` : ''
      await repository.appendEvent(namespace, name, { at, cluster: null, message: `resumed by an operator${past}` })
    })
    this.changed()
    return this.get(namespace, name)
  }

  /** Failed clusters are tried again now (and a halted rollout goes on). */
  async retry(namespace: string, name: string, now: Date = this.clock()): Promise<ReleaseDetail> {
    const release = await this.release(namespace, name)
    if (release.state === 'deleting') throw conflict('RELEASE_DELETING', `release ${namespace}/${name} is being deleted`)
    const failed = (await this.repository.listClusters(namespace, name)).filter((status) => status.phase === 'failed')
    await this.repository.transaction(async (repository) => {
      // Back to pending: the failure no longer counts toward max_failures.
      for (const status of failed) await repository.saveCluster(namespace, name, { ...status, phase: 'pending', retryAt: null, updatedAt: now.toISOString() })
      await repository.save({ ...release, state: release.state === 'halted' ? 'active' : release.state, updatedAt: now.toISOString() })
      await repository.appendEvent(namespace, name, { at: now.toISOString(), cluster: null, message: `retry requested for ${failed.length} failed cluster(s)${failed.length ? `: ${failed.map((status) => status.cluster).join(', ')}` : ''}` })
    })
    this.changed()
    return this.get(namespace, name)
  }

  /** Every registered cluster as releases see it (one read for a whole reconciler pass). */
  clusterFacts(): Promise<ReleaseCluster[]> {
    return this.clusters.list()
  }

  /** The clusters the release's selector matches now (joined, not excluded, its tenant's if it has one), among `clusters` when given. */
  async targets(release: Release, clusters?: readonly ReleaseCluster[]): Promise<ReleaseCluster[]> {
    if (release.state === 'deleting') return []
    const matcher = parseLabelSelector(release.selector)
    return (clusters ?? (await this.clusters.list())).filter((cluster) => cluster.joined && ownedBy(cluster, release.tenant) && matcher.matches(cluster.labels) && !release.excludedClusters.includes(cluster.name))
  }

  private async checkRenders(name: string, namespace: string, revision: ReleaseRevision, selector: string, tenant: string | null): Promise<void> {
    const chart = await this.charts.find(revision.chartName, revision.chartVersion)
    const archive = await this.charts.archive(chart.name, chart.version)
    const matcher = parseLabelSelector(selector)
    // With per-cluster values, the first matching cluster stands for the others (or a made-up one).
    const sample = (await this.clusters.list()).find((cluster) => cluster.joined && ownedBy(cluster, tenant) && matcher.matches(cluster.labels)) ?? {
      name: 'example',
      labels: {},
      latitude: null,
      longitude: null,
      region: null,
      site: null,
      joined: true,
      kubernetesVersion: null,
    }
    await this.renderer.render({ chart, archive, releaseName: name, namespace, values: valuesFor(revision, sample), kubeVersion: sample.kubernetesVersion })
  }

  private async commitRevision(release: Release, revision: ReleaseRevision, message: string): Promise<void> {
    await this.repository.transaction(async (repository) => {
      await repository.insertRevision(release.namespace, release.name, revision)
      await repository.save(release)
      await repository.appendEvent(release.namespace, release.name, { at: revision.createdAt, cluster: null, message })
    })
    this.changed()
  }

  private async save(release: Release, message: string): Promise<void> {
    await this.repository.transaction(async (repository) => {
      await repository.save(release)
      await repository.appendEvent(release.namespace, release.name, { at: release.updatedAt, cluster: null, message })
    })
    this.changed()
  }

  private async move(namespace: string, name: string, from: Release['state'][], to: Release['state'], message: string, now: Date = this.clock()): Promise<ReleaseDetail> {
    const release = await this.release(namespace, name)
    if (!from.includes(release.state)) throw conflict('INVALID_RELEASE_TRANSITION', `release ${namespace}/${name} is ${release.state} and cannot become ${to} (only from ${from.join(' or ')})`)
    await this.save({ ...release, state: to, updatedAt: now.toISOString() }, message)
    return this.get(namespace, name)
  }

  private async release(namespace: string, name: string): Promise<Release> {
    const release = await this.repository.find(namespace, name)
    if (!release) throw notFound('RELEASE_NOT_FOUND', `release ${namespace}/${name} does not exist`)
    return release
  }

  private async currentRevision(release: Release): Promise<ReleaseRevision> {
    return (await this.repository.listRevisions(release.namespace, release.name)).find((revision) => revision.revision === release.revision)!
  }

  private async view(release: Release): Promise<ReleaseView> {
    return { ...release, current: await this.currentRevision(release), clusters: await this.repository.listClusters(release.namespace, release.name) }
  }
}
