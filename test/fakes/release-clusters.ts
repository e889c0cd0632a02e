import type { ReleaseCluster, ReleaseClusters } from '../../src/core/releases/ports.ts'
import { failing } from './intentional-error.ts'

/** A joined cluster with the given labels, as the registry lists it to releases. */
export const releaseCluster = (name: string, labels: Record<string, string> = {}, extra: Partial<ReleaseCluster> = {}): ReleaseCluster => ({
  name,
  labels,
  latitude: null,
  longitude: null,
  region: null,
  site: null,
  joined: true,
  kubernetesVersion: 'v1.33.4',
  tenant: null,
  ...extra,
})

/** The registry with the given clusters; `set` replaces them (a cluster joins, leaves or is relabelled). */
export class FixedReleaseClusters implements ReleaseClusters {
  private clusters: ReleaseCluster[]

  constructor(clusters: ReleaseCluster[] = []) {
    this.clusters = structuredClone(clusters)
  }

  async list(): Promise<ReleaseCluster[]> {
    return structuredClone(this.clusters)
  }

  set(clusters: ReleaseCluster[]): void {
    this.clusters = structuredClone(clusters)
  }
}

/** A registry with no cluster. */
export class EmptyReleaseClusters extends FixedReleaseClusters {
  constructor() {
    super([])
  }
}

/** A registry whose every call fails. */
export class BrokenReleaseClusters implements ReleaseClusters {
  list(): Promise<ReleaseCluster[]> {
    return failing('ReleaseClusters.list')
  }
}
