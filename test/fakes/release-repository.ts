import { conflict } from '../../src/core/errors.ts'
import type { ReleaseEvent, ReleaseRepository } from '../../src/core/releases/ports.ts'
import { releaseKey, type ClusterRelease, type Release, type ReleaseRevision } from '../../src/core/releases/release.ts'
import { failing } from './intentional-error.ts'
import { JournaledStore } from './journaled-store.ts'

interface ReleaseState {
  releases: Map<string, Release>
  /** By release key, oldest first. */
  revisions: Map<string, ReleaseRevision[]>
  /** By release key, in cluster order (as the real table returns them). */
  clusters: Map<string, ClusterRelease[]>
  events: Map<string, ReleaseEvent[]>
}

export interface ReleaseContent {
  releases?: Release[]
  revisions?: Array<ReleaseRevision & { namespace: string; name: string }>
  clusters?: Array<ClusterRelease & { namespace: string; name: string }>
}

/**
 * The release store with the given releases, revisions and cluster statuses, in memory. It keeps the
 * real tables' rules: a second release or revision of one key is refused, save writes what the kysely
 * repository writes (never the tenant or createdAt), halt only the state and updatedAt of a release
 * still active at the revision given, deleting a release deletes its revisions, statuses and events;
 * reads return copies.
 */
export class FixedReleaseRepository extends JournaledStore<ReleaseState> implements ReleaseRepository {
  constructor(content: ReleaseContent = {}) {
    super({ releases: new Map(), revisions: new Map(), clusters: new Map(), events: new Map() })
    for (const release of content.releases ?? []) this.state.releases.set(releaseKey(release.namespace, release.name), structuredClone(release))
    for (const { namespace, name, ...revision } of content.revisions ?? []) listOf(this.state.revisions, releaseKey(namespace, name)).push(structuredClone(revision))
    for (const { namespace, name, ...status } of content.clusters ?? []) upsertStatus(this.state, releaseKey(namespace, name), structuredClone(status))
  }

  protected snapshot(): FixedReleaseRepository {
    // Stored objects are replaced, never changed in place: copying the containers is enough.
    const draft = new FixedReleaseRepository()
    for (const [key, release] of this.state.releases) draft.state.releases.set(key, release)
    for (const [key, revisions] of this.state.revisions) draft.state.revisions.set(key, [...revisions])
    for (const [key, statuses] of this.state.clusters) draft.state.clusters.set(key, [...statuses])
    for (const [key, events] of this.state.events) draft.state.events.set(key, [...events])
    return draft
  }

  async list(): Promise<Release[]> {
    return structuredClone([...this.state.releases.values()].sort((a, b) => compare(a.namespace, b.namespace) || compare(a.name, b.name)))
  }

  async find(namespace: string, name: string): Promise<Release | undefined> {
    const release = this.state.releases.get(releaseKey(namespace, name))
    return release && structuredClone(release)
  }

  async insert(release: Release, revision: ReleaseRevision): Promise<void> {
    const key = releaseKey(release.namespace, release.name)
    if (this.state.releases.has(key)) throw conflict('RELEASE_EXISTS', `release ${key} already exists`)
    const copies = structuredClone({ release, revision })
    this.write((state) => {
      state.releases.set(key, copies.release)
      listOf(state.revisions, key).push(copies.revision)
    })
  }

  async save(release: Release): Promise<void> {
    const key = releaseKey(release.namespace, release.name)
    const { selector, dns, excludedClusters, revision, state, rollout, updatedAt } = structuredClone(release)
    this.write((stored) => {
      const existing = stored.releases.get(key)
      if (existing) stored.releases.set(key, { ...existing, selector, dns, excludedClusters, revision, state, rollout, updatedAt })
    })
  }

  async halt(namespace: string, name: string, revision: number, at: string): Promise<boolean> {
    const key = releaseKey(namespace, name)
    // No await between the check and the write, as the real one is a single conditional update.
    const existing = this.state.releases.get(key)
    if (!existing || existing.state !== 'active' || existing.revision !== revision) return false
    this.write((stored) => {
      const current = stored.releases.get(key)
      if (current?.state === 'active' && current.revision === revision) stored.releases.set(key, { ...current, state: 'halted', updatedAt: at })
    })
    return true
  }

  async delete(namespace: string, name: string): Promise<void> {
    const key = releaseKey(namespace, name)
    this.write((state) => {
      state.releases.delete(key)
      state.revisions.delete(key)
      state.clusters.delete(key)
      state.events.delete(key)
    })
  }

  async insertRevision(namespace: string, name: string, revision: ReleaseRevision): Promise<void> {
    const key = releaseKey(namespace, name)
    if (!this.state.releases.has(key)) throw new Error(`release ${key} does not exist (foreign key)`)
    if (this.state.revisions.get(key)?.some((candidate) => candidate.revision === revision.revision)) throw new Error(`release ${key} already has revision ${revision.revision} (primary key)`)
    const copy = structuredClone(revision)
    this.write((state) => void listOf(state.revisions, key).push(copy))
  }

  async listRevisions(namespace: string, name: string): Promise<ReleaseRevision[]> {
    return structuredClone(this.state.revisions.get(releaseKey(namespace, name)) ?? [])
  }

  async listClusters(namespace: string, name: string): Promise<ClusterRelease[]> {
    return structuredClone(this.state.clusters.get(releaseKey(namespace, name)) ?? [])
  }

  async saveCluster(namespace: string, name: string, status: ClusterRelease): Promise<void> {
    const key = releaseKey(namespace, name)
    // The real row has a foreign key to its release: a status of a deleted release is refused.
    if (!this.state.releases.has(key)) throw new Error(`release ${key} does not exist (foreign key)`)
    const copy = structuredClone(status)
    this.write((state) => upsertStatus(state, key, copy))
  }

  async deleteCluster(namespace: string, name: string, cluster: string): Promise<void> {
    const key = releaseKey(namespace, name)
    this.write((state) => {
      const statuses = state.clusters.get(key)
      if (statuses) state.clusters.set(key, statuses.filter((status) => status.cluster !== cluster))
    })
  }

  async appendEvent(namespace: string, name: string, event: ReleaseEvent): Promise<void> {
    const key = releaseKey(namespace, name)
    const copy = { ...event }
    this.write((state) => void listOf(state.events, key).push(copy))
  }

  async listEvents(namespace: string, name: string, limit: number): Promise<ReleaseEvent[]> {
    return structuredClone((this.state.events.get(releaseKey(namespace, name)) ?? []).slice(-limit))
  }

  transaction<T>(work: (repository: ReleaseRepository) => Promise<T>): Promise<T> {
    return this.serially(work)
  }

  // ----- for assertions -----

  /** The stored release, or undefined once it is deleted. */
  release(namespace: string, name: string): Release | undefined {
    const release = this.state.releases.get(releaseKey(namespace, name))
    return release && structuredClone(release)
  }

  /** The stored status of one cluster. */
  status(namespace: string, name: string, cluster: string): ClusterRelease | undefined {
    const status = this.state.clusters.get(releaseKey(namespace, name))?.find((candidate) => candidate.cluster === cluster)
    return status && structuredClone(status)
  }

  /** Every event of the release, oldest first. */
  events(namespace: string, name: string): ReleaseEvent[] {
    return structuredClone(this.state.events.get(releaseKey(namespace, name)) ?? [])
  }
}

/** The release store with nothing in it. */
export class EmptyReleaseRepository extends FixedReleaseRepository {
  constructor() {
    super({})
  }
}

/** A release store whose every call fails. */
export class BrokenReleaseRepository implements ReleaseRepository {
  list(): Promise<Release[]> {
    return failing('ReleaseRepository.list')
  }
  find(): Promise<Release | undefined> {
    return failing('ReleaseRepository.find')
  }
  insert(): Promise<void> {
    return failing('ReleaseRepository.insert')
  }
  save(): Promise<void> {
    return failing('ReleaseRepository.save')
  }
  halt(): Promise<boolean> {
    return failing('ReleaseRepository.halt')
  }
  delete(): Promise<void> {
    return failing('ReleaseRepository.delete')
  }
  insertRevision(): Promise<void> {
    return failing('ReleaseRepository.insertRevision')
  }
  listRevisions(): Promise<ReleaseRevision[]> {
    return failing('ReleaseRepository.listRevisions')
  }
  listClusters(): Promise<ClusterRelease[]> {
    return failing('ReleaseRepository.listClusters')
  }
  saveCluster(): Promise<void> {
    return failing('ReleaseRepository.saveCluster')
  }
  deleteCluster(): Promise<void> {
    return failing('ReleaseRepository.deleteCluster')
  }
  appendEvent(): Promise<void> {
    return failing('ReleaseRepository.appendEvent')
  }
  listEvents(): Promise<ReleaseEvent[]> {
    return failing('ReleaseRepository.listEvents')
  }
  transaction<T>(): Promise<T> {
    return failing('ReleaseRepository.transaction')
  }
}

function listOf<T>(map: Map<string, T[]>, key: string): T[] {
  let list = map.get(key)
  if (!list) map.set(key, (list = []))
  return list
}

function upsertStatus(state: ReleaseState, key: string, status: ClusterRelease): void {
  const statuses = listOf(state.clusters, key).filter((candidate) => candidate.cluster !== status.cluster)
  state.clusters.set(key, [...statuses, status].sort((a, b) => compare(a.cluster, b.cluster)))
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
