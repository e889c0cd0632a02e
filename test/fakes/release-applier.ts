import type { ApplyInput, ReleaseApplier } from '../../src/core/releases/ports.ts'
import { releaseKey, type ObjectRef } from '../../src/core/releases/release.ts'
import { failing } from './intentional-error.ts'
import { ScriptedFake, type CallJournal } from './scripted-fake.ts'

/**
 * The clusters' API servers as releases reach them, with the given objects on each (by cluster, then
 * namespace/release): an apply replaces the release's objects with the rendered ones, an uninstall
 * takes them off. Workloads are ready at once except on `unready` clusters, whose waitReady fails as
 * a readiness timeout would. Calls are written "apply <cluster> <namespace>/<release>#<revision>",
 * "waitReady <cluster>", "uninstall <cluster> <namespace>/<release>" and can be scripted (ScriptedFake).
 */
export class FixedReleaseApplier extends ScriptedFake implements ReleaseApplier {
  readonly unready = new Set<string>()
  /** Every apply, in order, with the objects it was told to prune. */
  readonly applied: Array<{ cluster: string; input: ApplyInput; previous: ObjectRef[] }> = []
  private readonly clusters = new Map<string, Map<string, ObjectRef[]>>()

  constructor(content: Record<string, Record<string, ObjectRef[]>> = {}, calls: CallJournal = []) {
    super(calls)
    for (const [cluster, releases] of Object.entries(content)) this.clusters.set(cluster, new Map(Object.entries(structuredClone(releases))))
  }

  async apply(cluster: string, input: ApplyInput, previous: ObjectRef[]): Promise<ObjectRef[]> {
    await this.called(`apply ${cluster} ${input.namespace}/${input.releaseName}#${input.revision}`)
    this.applied.push({ cluster, input, previous })
    const refs = input.rendered.objects.map((object): ObjectRef => {
      const metadata = (object.metadata ?? {}) as { name?: string; namespace?: string }
      return { apiVersion: String(object.apiVersion), kind: String(object.kind), namespace: metadata.namespace ?? input.namespace, name: metadata.name ?? '' }
    })
    this.releasesOn(cluster).set(releaseKey(input.namespace, input.releaseName), refs)
    return structuredClone(refs)
  }

  async waitReady(cluster: string, objects: ObjectRef[], timeoutMs: number): Promise<void> {
    await this.called(`waitReady ${cluster}`)
    if (this.unready.has(cluster)) {
      const workloads = objects.filter((object) => object.kind === 'Deployment').map((object) => `${object.kind} ${object.namespace}/${object.name}`)
      throw new Error(`not ready after ${timeoutMs} ms: ${workloads.join(', ') || 'nothing to wait for'}`)
    }
  }

  async uninstall(cluster: string, release: { name: string; namespace: string }): Promise<void> {
    await this.called(`uninstall ${cluster} ${release.namespace}/${release.name}`)
    this.releasesOn(cluster).delete(releaseKey(release.namespace, release.name))
  }

  /** What the release has on `cluster` now (undefined: nothing). */
  objectsOn(cluster: string, namespace: string, name: string): ObjectRef[] | undefined {
    const refs = this.clusters.get(cluster)?.get(releaseKey(namespace, name))
    return refs && structuredClone(refs)
  }

  private releasesOn(cluster: string): Map<string, ObjectRef[]> {
    let releases = this.clusters.get(cluster)
    if (!releases) this.clusters.set(cluster, (releases = new Map()))
    return releases
  }
}

/** Clusters with nothing of any release on them yet. */
export class EmptyReleaseApplier extends FixedReleaseApplier {
  constructor(calls: CallJournal = []) {
    super({}, calls)
  }
}

/** API servers failing every call. */
export class BrokenReleaseApplier implements ReleaseApplier {
  apply(): Promise<ObjectRef[]> {
    return failing('ReleaseApplier.apply')
  }
  waitReady(): Promise<void> {
    return failing('ReleaseApplier.waitReady')
  }
  uninstall(): Promise<void> {
    return failing('ReleaseApplier.uninstall')
  }
}
