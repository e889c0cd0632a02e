import type { ClusterNetworking, EtcdMembership, MemberOs, Role } from '../clusters/cluster.ts'
import { pkiForRole, type ClusterPki } from '../clusters/cluster-pki.ts'
import { DEFAULT_IMAGE_SOURCES, imagesContext, type ImageSources } from './image-sources.ts'
import { etcdMemberEnvironment } from '../clusters/kubeadm-config.ts'
import type { MemberCertificates } from '../clusters/member-certificates.ts'
import { applyConfigScript } from '../clusters/member-os.ts'
import { kubeadmContext, memberNetworkFiles, memberOsFiles, type BootInterfaceFacts } from './member-files.ts'
import { forbidden, misconfigured, notFound, unavailable } from '../errors.ts'
import type { MachineCredentials } from '../lifecycle/machine-credentials.ts'
import type { MachineState } from '../machines/machine-state.ts'
import type { RenderContext } from './template.ts'
import type { Group } from '../selection/group.ts'
import type { Labels } from '../selection/labels.ts'
import type { BootSpec, Profile } from '../selection/profile.ts'
import type { Catalog, CatalogSource } from './catalog.ts'
import { finalizeIgnition, isButane, isRawIgnition, type RenderedIgnition } from './ignition-output.ts'
import { renderEnvFile } from './env-file.ts'
import type { DeliverySource, SecretDeliveryGate } from './secret-delivery.ts'
import type { CredentialState } from '../lifecycle/machine-credentials.ts'
import { bootAddressOf } from '../machines/machine-identity.ts'

/** What a machine-facing request carries, whatever transport it came in on. */
export interface BootRequest {
  labels: Labels
  /** The query string as received, for templates that pass it on (matchbox's `request.raw_query`). */
  rawQuery: string
  /** Base URL the machine reached the engine at, without a trailing slash. */
  engineUrl: string
}

/**
 * What the engine knows of a machine from discovery, for templates (`{{machine.facts.memory...}}`).
 * `revision` changes with every change of the machine, so cached renders never outlive its facts.
 */
export interface KnownMachine {
  uuid: string
  state: MachineState
  revision: number
  view: Record<string, unknown>
}

/** The port through which rendering finds the requesting machine: by its `uuid` label, else its boot `mac`. */
export interface MachineFactsSource {
  lookup(labels: Labels): KnownMachine | undefined
}

const NO_MACHINES: MachineFactsSource = { lookup: () => undefined }

/** A scheduled machine's place in its cluster, with the cluster's PKI (secret: see `clusterContext`). */
export interface ClusterMembership {
  cluster: string
  role: Role
  hostname: string
  /** The boot address the member was scheduled with: what etcd and the API server advertise. */
  ip: string
  /** The first control-plane member creates the cluster (`kubeadm init`); the others join it. */
  initializes: boolean
  labels: Record<string, string>
  /** The control-plane endpoint (`api.<cluster>.<zone>` and the flavor's API server port). */
  endpoint: { host: string; port: number }
  kubernetesVersion: string
  networking: ClusterNetworking
  /** The control plane's virtual IP held by kube-vip (control-plane members run it), or null. */
  controlPlaneVip: string | null
  /** The OS the member installs (its flavor's). */
  os: MemberOs
  /** Where the member keeps its boot address without DHCP: the name servers and search domains to write; null: DHCP. */
  staticNetwork: { nameservers: string[]; domains: string[] } | null
  /** The scheduler's etcd initial cluster over the control plane (`<hostname>=https://<ip>:2380,...`). */
  etcdInitialCluster: string
  /** How a control-plane member's etcd joins (absent for a node). */
  etcdMembership?: EtcdMembership
  pki: ClusterPki
  /** The member's leaf certificates; missing for the moments between its scheduling and their issue. */
  certificates?: MemberCertificates
  /** Changes whenever anything above may have (labels, PKI, certificates): cached renders key on it. */
  revision: number
}

/** The port through which rendering finds a machine's cluster membership. */
export interface ClusterMembershipSource {
  memberOf(machineUuid: string): ClusterMembership | undefined
}

const NO_CLUSTERS: ClusterMembershipSource = { memberOf: () => undefined }

/** How long a machine waiting for the scheduler is told to wait before asking for its config again. */
export const AWAITING_SCHEDULE_RETRY_SECONDS = 5
/** A member asking for its config in the moments before its certificates are issued retries this soon. */
export const CERTIFICATES_PENDING_RETRY_SECONDS = 2
/** A replacement control-plane member waits this long between asks until the engine has added it to etcd. */
export const ETCD_MEMBER_PENDING_RETRY_SECONDS = 5

/**
 * What an installed machine that PXE-boots is told when its profile has nothing to netboot: leave
 * iPXE, so that the firmware boots the next device (its disk), as an installed OS expects.
 */
export const LOCAL_BOOT_SCRIPT = '#!ipxe\necho Slipway: this machine is installed and its profile has no netboot; booting from local disk\nexit\n'

export interface Match {
  group: Group
  profile: Profile
}

/** A render, with whether it read a secret (its cluster's keys, the machine's credential) and whose. */
interface Rendered<T> {
  value: T
  /** The machine whose secrets the render carries; undefined when it carries none. */
  secretsOf?: KnownMachine
}

/** Set by the secret parts of a render context when a template reads them. */
interface SecretUse {
  used: boolean
}

/** The machine fields the boot routes read from a known machine's view (MachineDirectory keeps the whole Machine). */
interface MachineView extends BootInterfaceFacts {
  bootMac?: string
  credential?: CredentialState
  reprovisionUntil?: string | null
}

/** Names of the templates in `ipxe/` that every engine has. */
export const CHAIN_SCRIPT_TEMPLATE = 'boot.ipxe'
export const PROFILE_SCRIPT_TEMPLATE = 'profile.ipxe'

/**
 * The provisioning core that HTTP (and later DHCP/TFTP) talk to: picks a machine's group and profile
 * and renders what it boots. It reads catalogs through a port and knows nothing of any transport.
 */
export class BootService {
  constructor(
    private readonly catalogs: CatalogSource,
    private readonly machines: MachineFactsSource = NO_MACHINES,
    private readonly clusters: ClusterMembershipSource = NO_CLUSTERS,
    private readonly lifecycle?: { credentials: MachineCredentials; sshPublicKey: string },
    /** Who may receive a render that carries secrets; without one, no such render is served. */
    private readonly gate?: SecretDeliveryGate,
    private readonly images: ImageSources = DEFAULT_IMAGE_SOURCES,
  ) {}

  match(labels: Labels, catalog: Catalog = this.catalogs.current()): Match {
    const group = catalog.groups.select(labels)
    if (!group) {
      throw notFound('NO_MATCHING_GROUP', `no group matches labels ${formatLabels(labels)} and there is no default group`, {
        labels,
      })
    }
    const profile = catalog.profile(group.profile)
    if (!profile) {
      throw misconfigured('UNKNOWN_PROFILE', `group "${group.id}" names profile "${group.profile}", which does not exist`, {
        group: group.id,
        profile: group.profile,
      })
    }
    return { group, profile }
  }

  /** `/boot.ipxe`: the same script for every machine, chaining to `/ipxe` with its identity. */
  chainScript(request: BootRequest): string {
    const catalog = this.catalogs.current()
    return this.renderTemplate(catalog, 'ipxe', CHAIN_SCRIPT_TEMPLATE, { engine: { url: request.engineUrl } })
  }

  ipxeScript(request: BootRequest): string {
    return this.renderIpxe(request).value
  }

  /** What a booting machine is served at `/ipxe`: past the gate when it carries secrets. */
  async serveIpxe(request: BootRequest, source: DeliverySource): Promise<string> {
    return this.deliver('ipxe', this.renderIpxe(request), source)
  }

  private renderIpxe(request: BootRequest): Rendered<string> {
    const catalog = this.catalogs.current()
    const machine = this.machines.lookup(request.labels)
    const { group, profile } = this.match(selectionLabels(request.labels, machine), catalog)
    const bootSpec = profile.boot
    if (!bootSpec) {
      if (machine?.state === 'installed') return { value: LOCAL_BOOT_SCRIPT }
      throw notFound('NO_BOOT_SPEC', `profile "${profile.id}" (group "${group.id}") has no boot section to build an iPXE script from`, {
        group: group.id,
        profile: profile.id,
      })
    }
    return this.cached(catalog, renderKey('ipxe', group, request, machine, machine && this.clusters.memberOf(machine.uuid)), () => {
      const secrets: SecretUse = { used: false }
      const context = this.context(request, group, profile, machine, secrets)
      const boot = this.renderBootSpec(catalog, profile, bootSpec, context)
      const value = this.renderTemplate(catalog, 'ipxe', PROFILE_SCRIPT_TEMPLATE, { ...context, boot })
      return secrets.used && machine ? { value, secretsOf: machine } : { value }
    })
  }

  /**
   * `/ignition`. A known machine that asks for its installed config (`os=installed`) before the
   * scheduler has given it a role gets 503 AWAITING_SCHEDULE (Ignition and the installer retry),
   * rather than whatever catch-all group would match: installing the discovery config would be wrong.
   */
  ignition(request: BootRequest): RenderedIgnition {
    return this.renderIgnition(request).value
  }

  /** What a booting machine is served at `/ignition`: past the gate when it carries secrets. */
  async serveIgnition(request: BootRequest, source: DeliverySource): Promise<RenderedIgnition> {
    return this.deliver('ignition', this.renderIgnition(request), source)
  }

  private renderIgnition(request: BootRequest): Rendered<RenderedIgnition> {
    const catalog = this.catalogs.current()
    const machine = this.machines.lookup(request.labels)
    const { group, profile } = this.match(selectionLabels(request.labels, machine), catalog)
    if (request.labels.os === 'installed' && group.selector.os === undefined && machine && (machine.state === 'booting' || machine.state === 'discovered')) {
      throw unavailable(
        'AWAITING_SCHEDULE',
        `machine ${machine.uuid} is ${machine.state} and has no role yet; the scheduler assigns one once its cluster's quorum is available (ask again)`,
        AWAITING_SCHEDULE_RETRY_SECONDS,
        { uuid: machine.uuid, state: machine.state },
      )
    }
    const templateId = requiredField(group, profile, 'ignition_id', 'NO_IGNITION')
    const template = this.requireTemplate(catalog, 'ignition', templateId, profile)
    const name = `ignition/${templateId}`
    if (isButane(templateId)) {
      throw misconfigured(
        'UNSUPPORTED_TEMPLATE_FORMAT',
        `${name} is Butane/Container Linux Config YAML; translate it to Ignition JSON with butane and reference the .ign file`,
        { template: name },
      )
    }
    if (isRawIgnition(templateId)) {
      return this.cached(catalog, `raw\0${templateId}`, () => ({ value: finalizeIgnition(name, template.body) }))
    }
    const membership = machine && this.clusters.memberOf(machine.uuid)
    if (membership && !asksAsItself(request, machine)) {
      throw forbidden(
        'MACHINE_UUID_REQUIRED',
        `this config carries cluster ${membership.cluster}'s credentials: ask with the machine's SMBIOS uuid and its boot MAC (uuid=\${uuid}&mac=\${mac:hexhyp} in iPXE, /sys/class/dmi/id/product_uuid on Linux)`,
        { mac: request.labels.mac ?? null },
      )
    }
    return this.cached(catalog, renderKey('ignition', group, request, machine, membership), () => {
      const secrets: SecretUse = { used: false }
      const value = finalizeIgnition(name, catalog.compiled('ignition', templateId, template.body)({ ...this.context(request, group, profile, machine, secrets), scripts: catalog.scripts() }))
      return secrets.used && machine ? { value, secretsOf: machine } : { value }
    })
  }

  generic(request: BootRequest): string {
    return this.renderGeneric(request).value
  }

  /** What a booting machine is served at `/generic`: past the gate when it carries secrets. */
  async serveGeneric(request: BootRequest, source: DeliverySource): Promise<string> {
    return this.deliver('generic', this.renderGeneric(request), source)
  }

  private renderGeneric(request: BootRequest): Rendered<string> {
    const catalog = this.catalogs.current()
    const machine = this.machines.lookup(request.labels)
    const { group, profile } = this.match(selectionLabels(request.labels, machine), catalog)
    const templateId = requiredField(group, profile, 'generic_id', 'NO_GENERIC')
    const template = this.requireTemplate(catalog, 'generic', templateId, profile)
    const secrets: SecretUse = { used: false }
    const value = catalog.compiled('generic', templateId, template.body)(this.context(request, group, profile, machine, secrets))
    return secrets.used && machine ? { value, secretsOf: machine } : { value }
  }

  /** Hands out a render; one that carries a machine's secrets only once the gate lets it through. */
  private async deliver<T>(kind: string, rendered: Rendered<T>, source: DeliverySource): Promise<T> {
    const machine = rendered.secretsOf
    if (!machine) return rendered.value
    if (!this.gate) throw forbidden('SECRET_CONFIG_NOT_AUTHORIZED', `this ${kind} carries secrets of machine ${machine.uuid} and this engine serves no secret-bearing config`)
    const view = machine.view as MachineView
    await this.gate.authorize(
      { uuid: machine.uuid, bootMac: view.bootMac ?? '', state: machine.state, bootAddress: bootAddressOf({ interfaces: view.interfaces ?? [] }), reprovisionUntil: view.reprovisionUntil ?? null },
      kind,
      source,
    )
    return rendered.value
  }

  /** `/metadata`: matchbox's variables as an env file, for scripts on the machine. */
  metadata(request: BootRequest): string {
    const { group } = this.match(selectionLabels(request.labels, this.machines.lookup(request.labels)))
    return renderEnvFile(matchboxVariables(request, group))
  }

  /** What templates see: matchbox's variables plus Slipway's own, each under its own key. */
  context(request: BootRequest, group: Group, profile: Profile, machine = this.machines.lookup(request.labels), secrets: SecretUse = { used: false }): RenderContext {
    return {
      // Present for every machine so that role templates can test `{{#if cluster.pki}}` in strict mode.
      cluster: {},
      lifecycle: {},
      ...matchboxVariables(request, group),
      labels: request.labels,
      ...(machine ? { machine: machine.view } : {}),
      ...this.clusterContext(request, machine, secrets),
      ...this.lifecycleContext(request, machine, secrets),
      group: { id: group.id, name: group.name },
      profile: { id: profile.id, name: profile.name },
      engine: { url: request.engineUrl },
      images: imagesContext(this.images, request.engineUrl),
    }
  }

  /**
   * `{{cluster.*}}` for a cluster member: name, role, hostname, labels, and `cluster.pki` (the keys
   * its role needs, see pkiForRole) only when the request names the member's uuid and boot MAC; a
   * template that reads it makes the render secret-bearing.
   */
  private clusterContext(request: BootRequest, machine: KnownMachine | undefined, secrets: SecretUse): RenderContext {
    const membership = machine && this.clusters.memberOf(machine.uuid)
    if (!membership) return {}
    const cluster: Record<string, unknown> = {
      name: membership.cluster,
      role: membership.role,
      hostname: membership.hostname,
      labels: membership.labels,
      // The control-plane endpoint as kubeadm writes it (host:port).
      endpoint: `${membership.endpoint.host}:${membership.endpoint.port}`,
      ...(membership.role === 'control-plane'
        ? {
            etcd_member_env: etcdMemberEnvironment({
              cluster: membership.cluster,
              hostname: membership.hostname,
              ip: membership.ip,
              initialCluster: membership.etcdInitialCluster,
              initialClusterState: (membership.etcdMembership ?? 'initial') === 'initial' ? 'new' : 'existing',
            }),
          }
        : {}),
      ...memberNetworkFiles(membership, machine.view as MachineView, this.images),
      ...memberOsFiles(membership.os),
    }
    if (asksAsItself(request, machine)) {
      secretField(cluster, 'pki', secrets, () => {
        if (!membership.certificates) {
          throw unavailable('CERTIFICATES_PENDING', `the certificates of ${membership.hostname} (cluster ${membership.cluster}) are being issued; ask again`, CERTIFICATES_PENDING_RETRY_SECONDS, { uuid: machine.uuid })
        }
        // Started before it is a member, its etcd would be refused by the running cluster.
        if (membership.etcdMembership === 'to_add') {
          throw unavailable('ETCD_MEMBER_PENDING', `${membership.hostname} joins the running etcd of cluster ${membership.cluster} once the engine has added it as a member; ask again`, ETCD_MEMBER_PENDING_RETRY_SECONDS, { uuid: machine.uuid })
        }
        return pkiForRole(membership.pki, { cluster: membership.cluster, role: membership.role, certificates: membership.certificates })
      })
      // The kubeadm configuration carries the bootstrap token: secret-bearing as well.
      secretField(cluster, 'kubeadm', secrets, () => kubeadmContext(membership, this.images))
    }
    return { cluster }
  }

  /**
   * `{{lifecycle.*}}` for a known machine asking with its own uuid: the credential with which it
   * speaks for itself to the lifecycle endpoints, its FleetLock base URL, its lock group and the
   * engine's SSH public key (rolling updates log in with it).
   */
  private lifecycleContext(request: BootRequest, machine: KnownMachine | undefined, secrets: SecretUse): RenderContext {
    if (!machine || !this.lifecycle || !asksAsItself(request, machine)) return {}
    const lifecycle = this.lifecycle
    const credential = () => lifecycle.credentials.issue(machine.uuid, (machine.view as MachineView).credential?.generation ?? 0)
    const membership = this.clusters.memberOf(machine.uuid)
    const group = membership?.cluster ?? 'default'
    const mac = String(machine.view.bootMac).replaceAll(':', '-')
    const context: Record<string, unknown> = {
      lock_group: group,
      // How a rolling update applies a new config on this machine's OS (a machine outside any cluster: Flatcar's way).
      apply_config: applyConfigScript(membership?.os ?? 'flatcar'),
      ssh_public_key: lifecycle.sshPublicKey,
      // Where the machine-driven rolling agent fetches its new config and itself.
      config_url: `${request.engineUrl}/ignition?uuid=${machine.uuid}&mac=${mac}&os=installed`,
      agent_url: `${request.engineUrl}/generic?uuid=${machine.uuid}&mac=${mac}&os=installed`,
    }
    secretField(context, 'credential', secrets, credential)
    secretField(context, 'fleetlock_url', secrets, () => `${request.engineUrl}/fleetlock/${credential()}/`)
    return { lifecycle: context }
  }

  private renderBootSpec(catalog: Catalog, profile: Profile, boot: BootSpec, context: RenderContext): BootSpec {
    // Boot fields may use template variables too (e.g. `{{engine.url}}`); plain matchbox values pass unchanged.
    const render = (field: string, value: string) =>
      value.includes('{{') ? catalog.compiled('ipxe', `profiles/${profile.id}.json#${field}`, value)(context) : value
    return {
      kernel: render('boot.kernel', boot.kernel),
      initrd: boot.initrd.map((value, index) => render(`boot.initrd[${index}]`, value)),
      args: boot.args.map((value, index) => render(`boot.args[${index}]`, value)),
    }
  }

  private renderTemplate(catalog: Catalog, kind: 'ipxe', id: string, context: RenderContext): string {
    const template = catalog.template(kind, id)
    if (!template) {
      throw misconfigured('TEMPLATE_NOT_FOUND', `template ${kind}/${id} does not exist; every engine needs it`, {
        template: `${kind}/${id}`,
      })
    }
    return catalog.compiled(kind, id, template.body)(context)
  }

  private requireTemplate(catalog: Catalog, kind: 'ignition' | 'generic', id: string, profile: Profile) {
    const template = catalog.template(kind, id)
    if (!template) {
      throw misconfigured('TEMPLATE_NOT_FOUND', `profile "${profile.id}" names ${kind} template "${id}", which does not exist`, {
        template: `${kind}/${id}`,
        profile: profile.id,
      })
    }
    return template
  }

  private cached<T>(catalog: Catalog, key: string, produce: () => T): T {
    let rendered = catalog.renderCache.get(key) as T | undefined
    if (rendered === undefined) {
      rendered = produce()
      catalog.renderCache.set(key, rendered)
    }
    return rendered
  }
}

/**
 * matchbox's template variables, in its order: group metadata, then the group's selectors (keys
 * lower-cased), then `request` with the query labels and the raw query string.
 */
function matchboxVariables(request: BootRequest, group: Group): RenderContext {
  const variables: RenderContext = { ...group.metadata }
  for (const [key, value] of Object.entries(group.selector)) variables[key.toLowerCase()] = value
  variables.request = { query: request.labels, raw_query: request.rawQuery }
  return variables
}

const sameUuid = (label: string | undefined, uuid: string) => label !== undefined && label.toLowerCase() === uuid

/** A request speaks as a known machine when it names both halves of its identity: uuid and boot MAC. */
const asksAsItself = (request: BootRequest, machine: KnownMachine) => sameUuid(request.labels.uuid, machine.uuid) && request.labels.mac === (machine.view as MachineView).bootMac

/** A context field holding a secret: reading it (as a template does) marks the render secret-bearing. */
function secretField(target: Record<string, unknown>, name: string, secrets: SecretUse, value: () => unknown): void {
  Object.defineProperty(target, name, {
    enumerable: true,
    get: () => {
      secrets.used = true
      return value()
    },
  })
}

/**
 * The labels groups are selected by. An installed machine that netboots again sends the same query as
 * before its install; the engine knows better and selects it as `os=installed`, matchbox's convention.
 */
function selectionLabels(labels: Labels, machine: KnownMachine | undefined): Labels {
  return machine?.state === 'installed' && labels.os === undefined ? { ...labels, os: 'installed' } : labels
}

/** A machine asking for a config its profile does not have is told so, with a code of its own. */
function requiredField(group: Group, profile: Profile, field: 'ignition_id' | 'generic_id', code: string): string {
  const value = profile[field]
  if (!value) throw notFound(code, `profile "${profile.id}" (group "${group.id}") has no ${field}`, { group: group.id, profile: profile.id })
  return value
}

/**
 * Within one catalog snapshot a render depends only on the group (which fixes the profile and
 * templates), the query (which fixes the labels), the engine URL and the machine's facts revision.
 */
function renderKey(kind: string, group: Group, request: BootRequest, machine: KnownMachine | undefined, membership: ClusterMembership | undefined): string {
  return `${kind}\0${group.id}\0${request.engineUrl}\0${machine ? machine.revision : ''}\0${membership ? membership.revision : ''}\0${request.rawQuery}`
}

function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([key, value]) => `${key}=${value}`)
  return pairs.length > 0 ? pairs.join(',') : '(none)'
}
