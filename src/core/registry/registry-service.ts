import { conflict, invalid, notFound } from '../errors.ts'
import { addressBytes } from '../dns/geo.ts'
import { parseLabelSelector } from '../selection/label-selector.ts'
import { classifyHealth, type HealthSample } from './cluster-health.ts'
import {
  checkIngressAddresses,
  checkServerUrl,
  credentialFormOf,
  locationOf,
  parseRegistration,
  parseRegistrationUpdate,
  type ClusterConnection,
  type Credential,
  type CredentialKind,
  type CredentialsDocument,
  type HealthRecord,
  type HealthTransition,
  type RegisteredCluster,
} from './registered-cluster.ts'

/** The registry's store; storage implements it and seals credentials. */
export interface RegistryRepository {
  list(): Promise<RegistryEntry[]>
  find(name: string): Promise<RegistryEntry | undefined>
  /** Refuses (409 CLUSTER_EXISTS) an existing name. */
  insert(cluster: RegisteredCluster, credential: Credential | null): Promise<void>
  /** `credential` undefined keeps the stored one. */
  update(cluster: RegisteredCluster, credential?: Credential): Promise<void>
  delete(name: string): Promise<void>
  credentialOf(name: string): Promise<Credential | undefined>
  listHealth(): Promise<Map<string, HealthRecord>>
  findHealth(name: string): Promise<HealthRecord | undefined>
  saveHealth(name: string, record: HealthRecord, transition: HealthTransition | undefined): Promise<void>
  /** The latest `limit` transitions, oldest first. */
  listTransitions(name: string, limit: number): Promise<HealthTransition[]>
  transaction<T>(work: (repository: RegistryRepository) => Promise<T>): Promise<T>
}

/** A registry entry with what the provisioning side knows of it (null for clusters added by hand). */
export interface RegistryEntry extends RegisteredCluster {
  provisioning: { flavor: string; state: string } | null
}

/** A node and pod view fetched from the API server on demand. */
export interface LiveDetails {
  fetchedAt: string
  nodes: {
    name: string
    ready: boolean
    unschedulable: boolean
    roles: string[]
    kubeletVersion: string | null
    conditions: { type: string; status: string; reason: string | null; message: string | null; lastTransitionTime: string | null }[]
  }[]
  podsByNamespace: Record<string, { running: number; total: number }>
}

/** Reads credentials as operators give them; talks to API servers. adapters/kubernetes implements it. */
export interface ClusterApi {
  /**
   * Checks credential material and a kubeconfig's current context; 400 INVALID_CREDENTIALS,
   * INVALID_KUBECONFIG or INVALID_CA_BUNDLE with what is wrong. A kubeconfig gives server and CA too.
   */
  readCredentials(credentials: CredentialsDocument): { credential: Credential; server?: string; caBundle?: string | null }
  /** Checks a PEM bundle of CA certificates; returns it normalised. */
  checkCaBundle(pem: string): string
  probe(connection: ClusterConnection, timeoutMs: number): Promise<HealthSample>
  details(connection: ClusterConnection, timeoutMs: number): Promise<LiveDetails>
}

/** What the registry needs from provisioning: ClusterService implements it. */
export interface ProvisionedClusters {
  /**
   * Whether a provisioned cluster can join: its whole control plane installed; then where its API
   * server is and the admin credential from its PKI.
   */
  joinTarget(name: string): Promise<{ ready: true; connection: ClusterConnection } | { ready: false; message: string }>
  /** Destroys a provisioned cluster (its registry entry goes with it); returns the machines it released. */
  destroy(name: string): Promise<{ released: string[] }>
}

/** What one health sweep did (jobs/cluster-health-loop.ts runs them). */
export interface SweepReport {
  checked: number
  joined: string[]
  durationMs: number
  statuses: Record<string, string>
}

export interface RegistryView extends RegistryEntry {
  health: HealthRecord | null
}

export interface RegistryDetail extends RegistryView {
  transitions: HealthTransition[]
}

/**
 * The cluster registry: registration by hand (credentials checked, sealed, never returned), the
 * automatic join of provisioned clusters, label-selector listing, and health recording with the
 * history of status changes. The sweep itself (when, how many at once) is the health job's.
 */
export class ClusterRegistry {
  constructor(
    private readonly repository: RegistryRepository,
    private readonly api: ClusterApi,
    private readonly provisioned: ProvisionedClusters,
    private readonly clock: () => Date = () => new Date(),
    /** Told after an operator added, changed or removed an entry (labels reach templates and release selectors). */
    private readonly changed: (name: string) => Promise<void> | void = () => {},
  ) {}

  /** Every cluster, or those whose labels match a Kubernetes label selector (`region=eu,tier!=test`). */
  async list(selector?: string): Promise<RegistryView[]> {
    const matcher = selector ? parseLabelSelector(selector) : undefined
    const health = await this.repository.listHealth()
    return (await this.repository.list()).filter((entry) => !matcher || matcher.matches(entry.labels)).map((entry) => ({ ...entry, health: health.get(entry.name) ?? null }))
  }

  async get(name: string, transitionLimit = 50): Promise<RegistryDetail> {
    const entry = await this.entry(name)
    return { ...entry, health: (await this.repository.findHealth(name)) ?? null, transitions: await this.repository.listTransitions(name, transitionLimit) }
  }

  /** Nodes with their conditions and pods per namespace, fetched now from the API server. */
  async live(name: string, timeoutMs: number): Promise<LiveDetails> {
    return this.api.details(await this.connection(name), timeoutMs)
  }

  async register(input: unknown, now: Date = this.clock()): Promise<RegistryView> {
    const document = parseRegistration(input)
    if (!document.credentials) throw invalid('INVALID_CREDENTIALS', 'credentials: a cluster registered by hand needs a token, a client certificate and key, or a kubeconfig')
    const { credential, server, caBundle, kind } = this.readConnection(document.credentials, document.server, document.ca_bundle)
    if (!server) throw invalid('INVALID_SERVER_URL', 'server: the API server URL is required (e.g. https://10.0.0.10:6443), unless the kubeconfig gives it')
    checkLocation(document.location)
    const at = now.toISOString()
    const cluster: RegisteredCluster = {
      name: document.name,
      displayName: document.display_name ?? document.name,
      labels: { ...(document.labels ?? {}) },
      location: locationOf(document.location),
      source: 'manual',
      server,
      caBundle: caBundle ?? null,
      credentialKind: kind,
      properties: { ...(document.properties ?? {}) },
      // A cluster added by hand is a member from the start; its health says whether it answers.
      joinedAt: at,
      joinMessage: null,
      createdAt: at,
      updatedAt: at,
      ingressAddresses: checkIngressAddresses(document.ingress_addresses ?? [], isAddress),
    }
    await this.repository.transaction(async (repository) => {
      // Provisioned clusters have their entry from creation: one look covers both kinds.
      if (await repository.find(cluster.name)) throw conflict('CLUSTER_EXISTS', `cluster "${cluster.name}" already exists`)
      await repository.insert(cluster, credential)
    })
    await this.changed(cluster.name)
    return { ...(await this.entry(cluster.name)), health: null }
  }

  async update(name: string, input: unknown, now: Date = this.clock()): Promise<RegistryView> {
    const document = parseRegistrationUpdate(input)
    checkLocation(document.location)
    const current = await this.entry(name)
    let credential: Credential | undefined
    let { server, caBundle, credentialKind } = current
    if (current.source === 'provisioned' && (document.credentials || document.ca_bundle !== undefined)) {
      throw invalid('PROVISIONED_CREDENTIALS', `cluster "${name}" was provisioned here: the engine reaches it with its own PKI (the admin certificate and the cluster CA), which cannot be replaced`)
    }
    if (document.credentials) {
      const read = this.readConnection(document.credentials, document.server ?? undefined, document.ca_bundle)
      credential = read.credential
      credentialKind = read.kind
      server = read.server ?? server
      caBundle = read.caBundle !== undefined ? read.caBundle : caBundle
    } else {
      if (document.server !== undefined) server = checkServerUrl(document.server)
      if (document.ca_bundle !== undefined) caBundle = this.api.checkCaBundle(document.ca_bundle)
    }
    const updated: RegisteredCluster = {
      ...current,
      displayName: document.display_name ?? current.displayName,
      labels: document.labels ? { ...document.labels } : current.labels,
      location: document.location ? locationOf(document.location) : current.location,
      properties: document.properties ? { ...document.properties } : current.properties,
      ingressAddresses: document.ingress_addresses ? checkIngressAddresses(document.ingress_addresses, isAddress) : current.ingressAddresses,
      server,
      caBundle,
      credentialKind,
      updatedAt: now.toISOString(),
    }
    await this.repository.update(updated, credential)
    await this.changed(name)
    return { ...(await this.entry(name)), health: (await this.repository.findHealth(name)) ?? null }
  }

  /** Removes a cluster added by hand; a provisioned cluster is destroyed (its machines return to discovered). */
  /** Returns the machines a provisioned cluster released (none for one added by hand). */
  async remove(name: string): Promise<{ released: string[] }> {
    const entry = await this.entry(name)
    let released: string[] = []
    if (entry.source === 'provisioned') released = (await this.provisioned.destroy(name)).released
    else await this.repository.delete(name)
    await this.changed(name)
    return { released }
  }

  /** How to reach a joined cluster, credentials unsealed (kept in memory only). */
  async connection(name: string): Promise<ClusterConnection> {
    const entry = await this.entry(name)
    if (entry.source === 'provisioned') {
      if (!entry.joinedAt || !entry.server) throw conflict('CLUSTER_NOT_JOINED', `cluster "${name}" has not joined yet: ${entry.joinMessage ?? 'its control plane is not installed'}`)
      const target = await this.provisioned.joinTarget(name)
      if (!target.ready) throw conflict('CLUSTER_NOT_JOINED', `cluster "${name}": ${target.message}`)
      // The operator may have pointed the registry at a load balancer: that address wins.
      return { ...target.connection, server: entry.server }
    }
    const credential = await this.repository.credentialOf(name)
    if (!credential || !entry.server) throw conflict('CLUSTER_NOT_JOINED', `cluster "${name}" has no credentials stored`)
    return { name, server: entry.server, caBundle: entry.caBundle, credential }
  }

  /** Clusters the health job looks at: those that joined, and provisioned ones that may join now. */
  async sweepTargets(): Promise<{ joined: string[]; joining: string[] }> {
    const entries = await this.repository.list()
    return {
      joined: entries.filter((entry) => entry.joinedAt !== null).map((entry) => entry.name),
      joining: entries.filter((entry) => entry.joinedAt === null && entry.source === 'provisioned').map((entry) => entry.name),
    }
  }

  /**
   * Registers a provisioned cluster once its control plane is installed and its API server answers
   * with the admin credential; until then records why not. Returns whether it joined.
   */
  async tryJoin(name: string, timeoutMs: number): Promise<boolean> {
    const entry = await this.repository.find(name)
    if (!entry || entry.joinedAt) return false
    const target = await this.provisioned.joinTarget(name)
    let joinMessage: string
    if (!target.ready) {
      joinMessage = target.message
    } else {
      const sample = await this.api.probe(target.connection, timeoutMs)
      const verdict = classifyHealth(sample)
      if (verdict.status !== 'Unreachable') {
        const at = this.clock().toISOString()
        const joined: RegisteredCluster = { ...entry, server: entry.server ?? target.connection.server, caBundle: target.connection.caBundle, joinedAt: at, joinMessage: null, updatedAt: at }
        await this.repository.update(joined)
        await this.recordHealth(name, sample, this.clock())
        await this.changed(name)
        return true
      }
      joinMessage = `its API server ${target.connection.server} does not answer yet: ${verdict.message}`
    }
    if (joinMessage !== entry.joinMessage) await this.repository.update({ ...entry, joinMessage })
    return false
  }

  /** Looks at a joined cluster now and records the result, with the status it had before. */
  async check(name: string, timeoutMs: number): Promise<{ record: HealthRecord; previous: HealthRecord['status'] | null }> {
    let sample: HealthSample
    try {
      sample = await this.api.probe(await this.connection(name), timeoutMs)
    } catch (error) {
      // A provisioned cluster whose control plane was taken away, credentials that no longer open.
      sample = { apiReady: false, failure: { kind: 'connection', message: error instanceof Error ? error.message : String(error) }, durationMs: 0 }
    }
    return this.recordHealth(name, sample, this.clock())
  }

  async recordHealth(name: string, sample: HealthSample, now: Date): Promise<{ record: HealthRecord; previous: HealthRecord['status'] | null }> {
    const verdict = classifyHealth(sample)
    const at = now.toISOString()
    return this.repository.transaction(async (repository) => {
      const previous = await repository.findHealth(name)
      const changed = previous?.status !== verdict.status
      const record: HealthRecord = {
        ...verdict,
        apiReady: sample.apiReady,
        nodesReady: sample.nodes?.ready ?? null,
        nodesTotal: sample.nodes?.total ?? null,
        podsRunning: sample.pods?.running ?? null,
        podsTotal: sample.pods?.total ?? null,
        kubernetesVersion: sample.kubernetesVersion ?? previous?.kubernetesVersion ?? null,
        checkedAt: at,
        durationMs: Math.round(sample.durationMs),
        statusSince: changed ? at : previous.statusSince,
      }
      const transition: HealthTransition | undefined = changed ? { at, from: previous?.status ?? null, to: verdict.status, reason: verdict.reason, message: verdict.message } : undefined
      // The entry may have gone while its API server was being asked.
      if (await repository.find(name)) await repository.saveHealth(name, record, transition)
      return { record, previous: previous?.status ?? null }
    })
  }

  private async entry(name: string): Promise<RegistryEntry> {
    const entry = await this.repository.find(name)
    if (!entry) throw notFound('CLUSTER_NOT_FOUND', `cluster "${name}" does not exist`)
    return entry
  }

  private readConnection(credentials: CredentialsDocument, server: string | undefined, caBundle: string | undefined): { credential: Credential; server: string | undefined; caBundle: string | null | undefined; kind: CredentialKind } {
    const kind = credentialFormOf(credentials)
    const read = this.api.readCredentials(credentials)
    // Fields given beside a kubeconfig override what it says.
    const chosenServer = server ?? read.server
    const chosenCa = caBundle !== undefined ? this.api.checkCaBundle(caBundle) : read.caBundle
    return { credential: read.credential, server: chosenServer === undefined ? undefined : checkServerUrl(chosenServer), caBundle: chosenCa, kind }
  }
}

const isAddress = (text: string) => addressBytes(text) !== undefined

function checkLocation(location: { latitude?: number; longitude?: number } | undefined): void {
  if (location && (location.latitude === undefined) !== (location.longitude === undefined)) {
    throw invalid('INVALID_CLUSTER', 'location: latitude and longitude go together')
  }
}
