import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { BootstrapView, ClusterDetail, ClusterView, EtcdClientCertificateView, EtcdView, HealthTransitionView, HealthView } from '../api-types.ts'
import { EXIT, usageError } from '../cli-error.ts'
import { confirmByName, flag, mustConfirm, keyValues, positional, stringValue, stringValues, YES_OPTION, type CommandContext, type CommandSpec } from '../command.ts'
import { readDocument, readTextFile } from '../documents.ts'
import type { Output } from '../output.ts'
import { formatAge, formatLabels } from '../table.ts'

const NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/
const clusterPath = (name: string) => `/api/v1/clusters/${encodeURIComponent(name)}`

function checkName(name: string): string {
  if (!NAME.test(name) || name.length > 63) throw usageError(`"${name}" is not a cluster name (lowercase letters, digits and "-", at most 63)`)
  return name
}

const nodes = (health: HealthView | null) => (health && health.nodes_total !== null ? `${health.nodes_ready ?? 0}/${health.nodes_total}` : '-')
const healthText = (cluster: ClusterView) =>
  cluster.health ? cluster.health.status : cluster.provisioning && !cluster.joined_at ? `provisioning (${cluster.provisioning.state})` : 'unchecked'

function coordinate(context: CommandContext, name: string, limit: number): number | undefined {
  const text = stringValue(context, name)
  if (text === undefined) return undefined
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || Math.abs(value) > limit) throw usageError(`--${name} must be a number from -${limit} to ${limit}, not "${text}"`)
  return value
}

/** The POST body of `clusters register`: a registration, or with --flavor a cluster to provision. */
async function registrationBody(context: CommandContext, name: string): Promise<Record<string, unknown>> {
  const file = stringValue(context, 'file')
  const body: Record<string, unknown> = file ? await readDocument(file, context.cwd, 'cluster document') : {}
  body.name = name
  const labels = keyValues(context, 'label')
  if (Object.keys(labels).length > 0) body.labels = labels
  const displayName = stringValue(context, 'display-name')
  if (displayName !== undefined) body.display_name = displayName
  const location = {
    latitude: coordinate(context, 'latitude', 90),
    longitude: coordinate(context, 'longitude', 180),
    region: stringValue(context, 'region'),
    site: stringValue(context, 'site'),
  }
  const given = Object.fromEntries(Object.entries(location).filter(([, value]) => value !== undefined))
  const flavor = stringValue(context, 'flavor')
  const connection = ['server', 'ca-file', 'kubeconfig', 'cluster-token-file', 'client-cert', 'client-key'].filter((option) => context.values[option] !== undefined)
  if (flavor !== undefined) {
    // Provisioning takes the location flat (mexosagent's shape); a cluster made here has no server yet.
    if (connection.length > 0) throw usageError(`--flavor provisions a new cluster from machines; --${connection[0]} is for registering an existing one`)
    return { ...body, flavor, ...given }
  }
  if (Object.keys(given).length > 0) body.location = { ...(body.location as object | undefined), ...given }
  const server = stringValue(context, 'server')
  if (server !== undefined) body.server = server
  const ingress = stringValues(context, 'ingress')
  if (ingress.length > 0) body.ingress_addresses = ingress
  const caFile = stringValue(context, 'ca-file')
  if (caFile !== undefined) body.ca_bundle = await readTextFile(caFile, context.cwd, 'CA bundle')
  const credentials: Record<string, string> = {}
  const kubeconfig = stringValue(context, 'kubeconfig')
  if (kubeconfig !== undefined) credentials.kubeconfig = await readTextFile(kubeconfig, context.cwd, 'kubeconfig')
  const tokenFile = stringValue(context, 'cluster-token-file')
  if (tokenFile !== undefined) credentials.token = (await readTextFile(tokenFile, context.cwd, 'cluster token file')).trim()
  const certificate = stringValue(context, 'client-cert')
  const key = stringValue(context, 'client-key')
  if ((certificate === undefined) !== (key === undefined)) throw usageError('--client-cert and --client-key go together')
  if (certificate !== undefined && key !== undefined) {
    credentials.client_certificate = await readTextFile(certificate, context.cwd, 'client certificate')
    credentials.client_key = await readTextFile(key, context.cwd, 'client key')
  }
  if (Object.keys(credentials).length > 0) body.credentials = credentials
  if (body.server === undefined && body.credentials === undefined && body.flavor === undefined) {
    throw usageError('give the API server and a credential (--server URL with --cluster-token-file, --client-cert/--client-key; or --kubeconfig), or --flavor to provision a new cluster')
  }
  return body
}

function printTransitions(out: Output, transitions: HealthTransitionView[]): void {
  out.table(
    [{ header: 'AT' }, { header: 'FROM' }, { header: 'TO' }, { header: 'REASON' }, { header: 'MESSAGE', shrink: true }],
    transitions.map((transition) => [transition.at, transition.from, transition.to, transition.reason, transition.message]),
    '  none',
  )
}

function healthFields(health: HealthView | null): [string, unknown][] {
  if (!health) return [['Health', 'not checked yet']]
  return [
    ['Health', `${health.status}: ${health.reason} (since ${health.since})`],
    ['Message', health.message],
    ['Nodes ready', nodes(health)],
    ['Pods running', health.pods_total === null ? '-' : `${health.pods_running ?? 0}/${health.pods_total}`],
    ['Checked', health.checked_at],
  ]
}

export const clusterCommands: CommandSpec[] = [
  {
    path: ['clusters', 'list'],
    summary: 'the cluster registry with each cluster\'s health',
    options: { labels: { type: 'string', value: 'SELECTOR', help: 'only clusters whose labels match (region=eu,tier!=test)' } },
    async run(context) {
      const answer = await (await context.api()).call<ClusterView[]>('GET', '/api/v1/clusters', { query: { labels: stringValue(context, 'labels') } })
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.table(
        [{ header: 'NAME' }, { header: 'SOURCE' }, { header: 'HEALTH' }, { header: 'NODES', align: 'right' }, { header: 'VERSION' }, { header: 'REGION' }, { header: 'LABELS', shrink: true }, { header: 'AGE', align: 'right' }],
        answer.data.map((cluster) => [cluster.name, cluster.source, healthText(cluster), nodes(cluster.health), cluster.version.kubernetes, cluster.location.region, formatLabels(cluster.labels), formatAge(cluster.created_at)]),
        'no clusters',
      )
      return EXIT.ok
    },
  },
  {
    path: ['clusters', 'show'],
    summary: 'a cluster with its members and health history (--live: its nodes and pods, asked now)',
    args: '<name>',
    arity: [1, 1],
    options: { live: { type: 'boolean', help: "also fetch nodes and pods from the cluster's API server now" } },
    async run(context) {
      const name = checkName(positional(context, 0))
      const answer = await (await context.api()).call<ClusterDetail>('GET', clusterPath(name), { query: { live: flag(context, 'live') ? 'true' : undefined } })
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      const cluster = answer.data
      const out = context.out
      const location = [cluster.location.region, cluster.location.site, cluster.location.latitude !== null ? `${cluster.location.latitude},${cluster.location.longitude}` : null].filter(Boolean).join(' ')
      out.fields([
        ['Name', cluster.display_name && cluster.display_name !== cluster.name ? `${cluster.name} (${cluster.display_name})` : cluster.name],
        ['Source', cluster.provisioning ? `provisioned from flavor ${cluster.provisioning.flavor} (${cluster.provisioning.state})` : cluster.source],
        ['Server', cluster.server],
        ['Credential', cluster.credential_kind],
        ['Kubernetes', cluster.version.kubernetes],
        ['Labels', formatLabels(cluster.labels)],
        ['Location', location || '-'],
        ['Ingress', cluster.ingress_addresses.join(', ') || '-'],
        ['Joined', cluster.joined_at ?? 'not yet'],
        ...healthFields(cluster.health),
      ])
      if (cluster.members.length > 0) {
        out.section('Members:')
        out.table(
          [{ header: 'HOSTNAME' }, { header: 'ROLE' }, { header: 'IP' }, { header: 'MAC' }, { header: 'STATE' }, { header: 'UUID' }],
          cluster.members.map((member) => [member.hostname, member.role, member.ip, member.boot_mac, member.machine_state, member.machine_uuid]),
        )
      }
      if (cluster.live) {
        out.section('Nodes (live):')
        out.table(
          [{ header: 'NAME' }, { header: 'READY' }, { header: 'SCHEDULABLE' }, { header: 'ROLES', shrink: true }, { header: 'KUBELET' }],
          cluster.live.nodes.map((node) => [node.name, node.ready ? 'yes' : 'no', node.unschedulable ? 'no' : 'yes', node.roles.join(',') || '-', node.kubelet_version]),
          '  none',
        )
      } else if (cluster.live_error) {
        out.section(`Nodes (live): not available: ${cluster.live_error.message} (${cluster.live_error.code})`)
      }
      out.section('Health history:')
      printTransitions(out, cluster.transitions)
      return EXIT.ok
    },
  },
  {
    path: ['clusters', 'bootstrap'],
    summary: "where each member is in its kubeadm bootstrap (--log: kubeadm's last lines of a failed or finished run)",
    args: '<name>',
    arity: [1, 1],
    options: { log: { type: 'boolean', help: "print each member's last kubeadm output under the table" } },
    async run(context) {
      const name = checkName(positional(context, 0))
      const answer = await (await context.api()).call<BootstrapView[]>('GET', `${clusterPath(name)}/bootstrap`)
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.table(
        [{ header: 'HOSTNAME' }, { header: 'COMMAND' }, { header: 'PHASE' }, { header: 'ATTEMPTS', align: 'right' }, { header: 'MESSAGE', shrink: true }, { header: 'AGE', align: 'right' }],
        answer.data.map((member) => [member.hostname, member.command, member.phase, String(member.attempts), member.message, formatAge(member.updated_at)]),
        'no member has reported yet',
      )
      if (flag(context, 'log')) {
        for (const member of answer.data.filter((entry) => entry.log)) {
          context.out.section(`${member.hostname} (kubeadm ${member.command}, ${member.phase}):`)
          context.out.print(member.log!)
        }
      }
      return answer.data.some((member) => member.phase === 'failed') ? EXIT.failed : EXIT.ok
    },
  },
  {
    path: ['clusters', 'etcd'],
    summary: "a provisioned cluster's etcd members as etcd reports them now: health, leader, raft term and indexes",
    args: '<name>',
    arity: [1, 1],
    details: 'Exits 1 when a voting member is not healthy.',
    async run(context) {
      const name = checkName(positional(context, 0))
      const answer = await (await context.api()).call<EtcdView>('GET', `${clusterPath(name)}/etcd`)
      const etcd = answer.data
      const allHealthy = etcd.healthy_members === etcd.voting_members
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return allHealthy ? EXIT.ok : EXIT.failed
      }
      context.out.fields([
        ['Leader', etcd.leader ?? 'none'],
        ['Healthy', `${etcd.healthy_members} of ${etcd.voting_members} voting members (a quorum is ${etcd.quorum})`],
        ['Asked', etcd.asked_at],
      ])
      const number = (value: number | null) => (value === null ? '-' : String(value))
      context.out.table(
        [{ header: 'NAME' }, { header: 'ID' }, { header: 'HEALTHY' }, { header: 'LEADER' }, { header: 'TERM', align: 'right' }, { header: 'RAFT INDEX', align: 'right' }, { header: 'APPLIED', align: 'right' }, { header: 'ERRORS', shrink: true }],
        etcd.members.map((member) => [
          member.name || '(not started)',
          member.id_hex,
          member.healthy ? 'yes' : 'no',
          member.leader ? 'yes' : member.learner ? 'learner' : '',
          number(member.raft_term),
          number(member.raft_index),
          number(member.raft_applied_index),
          member.errors.join('; '),
        ]),
      )
      return allHealthy ? EXIT.ok : EXIT.failed
    },
  },
  {
    path: ['clusters', 'etcd-certificate'],
    summary: "a client certificate for etcdctl under a cluster's etcd CA (valid a day; admins only); its key is written, never kept by the engine",
    args: '<name>',
    arity: [1, 1],
    options: {
      'out-dir': { type: 'string', value: 'DIR', help: 'write ca.crt, client.crt and client.key (0600) there (required unless --json)' },
      'common-name': { type: 'string', value: 'CN', help: "the certificate's common name (default operator:<your token's name>)" },
      force: { type: 'boolean', help: 'replace the files if they exist' },
    },
    details: 'With --json the answer (key included) goes to stdout instead.',
    async run(context) {
      const name = checkName(positional(context, 0))
      const outDir = stringValue(context, 'out-dir')
      if (outDir === undefined && !context.out.json) throw usageError('where to? --out-dir DIR (or --json to print the answer, key included)')
      const dir = outDir === undefined ? undefined : path.resolve(context.cwd, outDir)
      const files = dir && { ca: path.join(dir, 'ca.crt'), cert: path.join(dir, 'client.crt'), key: path.join(dir, 'client.key') }
      const existing = files && Object.values(files).find((file) => existsSync(file))
      if (existing && !flag(context, 'force')) throw usageError(`"${existing}" exists; add --force to replace it`, 'FILE_EXISTS')
      const commonName = stringValue(context, 'common-name')
      const answer = await (await context.api()).call<EtcdClientCertificateView>('POST', `${clusterPath(name)}/etcd/client-certificate`, { json: commonName === undefined ? {} : { common_name: commonName } })
      if (!files) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      await mkdir(dir!, { recursive: true })
      await writeFile(files.ca, answer.data.ca_certificate, { mode: 0o644 })
      await writeFile(files.cert, answer.data.certificate, { mode: 0o644 })
      // Written 0600 from the start: the key is never readable by others, not even for a moment.
      await writeFile(files.key, answer.data.private_key, { mode: 0o600 })
      if (context.out.json) context.out.printJson(JSON.stringify({ common_name: answer.data.common_name, not_after: answer.data.not_after, files }))
      else context.out.print(`${answer.data.common_name}, valid until ${answer.data.not_after}:\n  etcdctl --cacert ${files.ca} --cert ${files.cert} --key ${files.key} --endpoints https://<member>:2379 endpoint status`)
      return EXIT.ok
    },
  },
  {
    path: ['clusters', 'renew-certificates'],
    summary: "issue again, with new keys, every certificate the engine issued for a cluster (the CAs stay; machines get them by a rolling update)",
    args: '<name>',
    arity: [1, 1],
    options: YES_OPTION,
    async run(context) {
      const name = checkName(positional(context, 0))
      if (mustConfirm(context, `renewing the certificates of cluster ${name}`)) {
        await confirmByName(context, `This issues new certificates and keys to every member of ${name}; each must then apply its new config (a rolling update)`, name)
      }
      const answer = await (await context.api()).call<{ renewed: { uuid: string; hostname: string }[]; admin_renewed: boolean }>('POST', `${clusterPath(name)}/certificates/renew`)
      if (context.out.json) context.out.printJson(answer.raw)
      else context.out.print(`renewed the certificates of ${answer.data.renewed.length} member(s)${answer.data.renewed.length ? ` (${answer.data.renewed.map((member) => member.hostname).join(', ')})` : ''}${answer.data.admin_renewed ? " and the engine's admin certificate" : ''}; start a rolling update to deliver them`)
      return EXIT.ok
    },
  },
  {
    path: ['clusters', 'register'],
    summary: 'register an existing cluster (server and credential), or provision one from a flavor',
    args: '<name>',
    arity: [1, 1],
    options: {
      server: { type: 'string', value: 'URL', help: 'the API server, https://host:port' },
      'ca-file': { type: 'string', value: 'FILE', help: 'PEM bundle the API server chains to (default: system roots)' },
      kubeconfig: { type: 'string', value: 'FILE', help: 'a kubeconfig whose current context gives server, CA and user' },
      'cluster-token-file': { type: 'string', value: 'FILE', help: "a file holding the cluster's bearer token (e.g. a ServiceAccount token)" },
      'client-cert': { type: 'string', value: 'FILE', help: 'client certificate (PEM), with --client-key' },
      'client-key': { type: 'string', value: 'FILE', help: 'its private key (PEM)' },
      flavor: { type: 'string', value: 'FLAVOR', help: 'provision a new cluster of this flavor from discovered machines instead' },
      label: { type: 'string', value: 'KEY=VALUE', multiple: true, help: 'a label (what release selectors match)' },
      'display-name': { type: 'string', value: 'TEXT', help: 'a name for people' },
      region: { type: 'string', value: 'REGION', help: 'location: region' },
      site: { type: 'string', value: 'SITE', help: 'location: site' },
      latitude: { type: 'string', value: 'DEGREES', help: 'location: latitude (DNS answers with the nearest cluster)' },
      longitude: { type: 'string', value: 'DEGREES', help: 'location: longitude' },
      ingress: { type: 'string', value: 'ADDRESS', multiple: true, help: "an address of the cluster's ingress (what DNS answers)" },
      file: { type: 'string', short: 'f', value: 'FILE', help: 'a JSON or YAML document with any field of the API (options given override it)' },
    },
    details: 'Credentials are read from files, never from the command line (which other users can see in ps);\nthe engine stores them encrypted and never returns them.',
    async run(context) {
      const name = checkName(positional(context, 0))
      const body = await registrationBody(context, name)
      const answer = await (await context.api()).call<ClusterView>('POST', '/api/v1/clusters', { json: body })
      if (context.out.json) context.out.printJson(answer.raw)
      else context.out.print(`cluster ${answer.data.name} ${answer.data.provisioning ? `created from flavor ${answer.data.provisioning.flavor}; it joins once its control plane answers` : 'registered'}`)
      return EXIT.ok
    },
  },
  {
    path: ['clusters', 'delete'],
    summary: 'remove a registered cluster, or destroy a provisioned one (its machines return to discovered)',
    args: '<name>',
    arity: [1, 1],
    options: YES_OPTION,
    async run(context) {
      const name = checkName(positional(context, 0))
      const ask = mustConfirm(context, `deleting cluster ${name}`)
      const api = await context.api()
      if (ask) {
        // Say what would go before asking (and stop at a name that does not exist).
        const cluster = (await api.call<ClusterView>('GET', clusterPath(name))).data
        await confirmByName(context, cluster.provisioning ? `This destroys the provisioned cluster ${name}: its machines return to discovered` : `This removes cluster ${name} from the registry`, name)
      }
      await api.call('DELETE', clusterPath(name))
      if (!context.out.json) context.out.print(`cluster ${name} deleted`)
      return EXIT.ok
    },
  },
  {
    path: ['clusters', 'health'],
    summary: "a cluster's last health check and status changes; --sweep checks every cluster now",
    args: '[name]',
    arity: [0, 1],
    options: { sweep: { type: 'boolean', help: 'check every cluster now (and let provisioned ones join); prints each status' } },
    async run(context) {
      const api = await context.api()
      if (flag(context, 'sweep')) {
        if (context.positionals.length > 0) throw usageError('--sweep checks every cluster; leave the name out')
        const answer = await api.call<{ checked: number; joined: string[]; duration_ms: number; statuses: Record<string, string> }>('POST', '/api/v1/clusters/health-sweep')
        if (context.out.json) {
          context.out.printJson(answer.raw)
          return EXIT.ok
        }
        const sweep = answer.data
        context.out.table(
          [{ header: 'CLUSTER' }, { header: 'STATUS' }],
          Object.entries(sweep.statuses).map(([name, status]) => [name, status]),
        )
        context.out.print(`${sweep.checked} cluster(s) checked in ${sweep.duration_ms} ms${sweep.joined.length ? `; joined: ${sweep.joined.join(', ')}` : ''}`)
        return EXIT.ok
      }
      if (context.positionals.length === 0) throw usageError('name a cluster (slipway clusters health <name>), or --sweep to check every cluster now')
      const name = checkName(positional(context, 0))
      const answer = await api.call<{ health: HealthView | null; transitions: HealthTransitionView[] }>('GET', `${clusterPath(name)}/health`)
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.fields(healthFields(answer.data.health))
      context.out.section('Status changes:')
      printTransitions(context.out, answer.data.transitions)
      return EXIT.ok
    },
  },
]
