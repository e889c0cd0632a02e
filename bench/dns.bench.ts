/**
 * Slipway DNS benchmark: queries per second of the engine's authoritative DNS (a real engine process,
 * its SQLite database seeded with releases ready on healthy clusters, machine hostnames and a client
 * location table) against dnsmasq serving the same records, both driven by dnsperf in the same run;
 * then the engine again with an EDNS Client Subnet option on every query (nearest-cluster answers).
 * See bench/README.md.
 *
 *   npx tsx bench/dns.bench.ts          (or: npm run bench:dns)
 *   BENCH_DNS_SECONDS=3 BENCH_WARMUP=1 BENCH_QUIET_WAIT=0 npx tsx bench/dns.bench.ts   (quick run)
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { BenchScope, SetupError, engineRevision, envNumber, keepEngineProfile, machineFacts, runBenchmark, writeResults } from './lib/bench-scope.ts'
import type { ProfileWindow } from './lib/cpuprofile.ts'
import { waitForQuiet, withCpuUsage, type CpuUsage } from './lib/cpu-usage.ts'
import { prng } from './lib/fixtures.ts'
import { processMemory } from './lib/proc-memory.ts'
import { fmt, log, nowUs, windowedProfileLines } from './lib/report.ts'
import { freePort, runTracked, spawnTracked, stopProcess, waitForHttp } from './lib/processes.ts'
import { migrateToLatest, openStore } from '../src/storage/db.ts'
import { sleep } from '../test/helpers/wait.ts'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_DIR = path.join(REPO, 'bench', 'results')
const ZONE = 'apps.bench'
const NAMESERVER = `ns1.${ZONE}`
const TTL = 30
const DNSPERF = process.env.BENCH_DNSPERF || '/usr/bin/dnsperf'
const DNSMASQ = process.env.BENCH_DNSMASQ || '/usr/sbin/dnsmasq'
const DIG = process.env.BENCH_DIG || '/usr/bin/dig'
/** Outside CPU use during a run above which its row is flagged as noisy. */
const NOISY_CORES = 0.2
/** dnsperf CPU above which it, not the server, is likely the limit. */
const SATURATED_CORES = 0.9

const scope = new BenchScope()

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]!
}

// --- the records --------------------------------------------------------------------------------------

/** Where the clusters are: 20 places around the globe (more clusters reuse them, slightly moved). */
const PLACES: [string, number, number][] = [
  ['fra', 50.11, 8.68], ['lon', 51.51, -0.13], ['par', 48.86, 2.35], ['sto', 59.33, 18.07], ['mad', 40.42, -3.7],
  ['nyc', 40.71, -74.01], ['chi', 41.88, -87.63], ['sfo', 37.77, -122.42], ['tor', 43.65, -79.38], ['mex', 19.43, -99.13],
  ['gru', -23.55, -46.63], ['scl', -33.45, -70.67], ['jnb', -26.2, 28.05], ['lag', 6.52, 3.38], ['dxb', 25.2, 55.27],
  ['bom', 19.08, 72.88], ['sin', 1.35, 103.82], ['tyo', 35.68, 139.69], ['syd', -33.87, 151.21], ['sel', 37.57, 126.98],
]

type Policy = 'nearest' | 'round_robin' | 'failover'
interface SeedCluster {
  name: string
  latitude: number
  longitude: number
  address: string
}
interface SeedRelease {
  namespace: string
  name: string
  fqdn: string
  /** Sorted by name: the order the engine lists a release's clusters in. */
  clusters: string[]
  policy: Policy
  failover: string[]
}
interface SeedMachine {
  uuid: string
  mac: string
  rack: string
  role: 'control-plane' | 'node'
  ordinal: number
  hostname: string
  fqdn: string
  ip: string
}
interface SeedLocation {
  subnet: string
  site: string
  latitude: number
  longitude: number
}
interface Seed {
  clusters: SeedCluster[]
  releases: SeedRelease[]
  machines: SeedMachine[]
  racks: string[]
  locations: SeedLocation[]
}

const MACHINES_PER_RACK = 100

/**
 * A fixed-seed fleet: `clusterCount` registered clusters, each with one IPv4 ingress address
 * (198.18.0.0/15, the benchmarking range); `releaseCount` releases in 20 namespaces, each ready on 3
 * clusters drawn at random, 80% answered `nearest`, 10% `round_robin`, 10% `failover`; `machineCount`
 * machines in racks of 100 (1 control plane + 99 nodes) with boot addresses in 172.16.0.0/12; and a
 * location table of 200 /16 and 56 /24 client subnets in 10.0.0.0/8 placed around the globe, plus the
 * ECS subnet the benchmark queries with. 127.0.0.0/8 is left out: a query without ECS comes from a
 * resolver with no location, and gets every ready cluster for `nearest`.
 */
function buildSeed(clusterCount: number, releaseCount: number, machineCount: number, ecs: { subnet: string; latitude: number; longitude: number }): Seed {
  const random = prng(53)
  const clusters: SeedCluster[] = Array.from({ length: clusterCount }, (_, index) => {
    const [site, latitude, longitude] = PLACES[index % PLACES.length]!
    const round = Math.floor(index / PLACES.length)
    return {
      name: `${site}${String(round + 1).padStart(2, '0')}`,
      latitude: Math.round((latitude + round * 0.37) * 1e4) / 1e4,
      longitude: Math.round((longitude + round * 0.41) * 1e4) / 1e4,
      address: `198.18.${Math.floor((index + 1) / 256)}.${(index + 1) % 256}`,
    }
  })
  const releases: SeedRelease[] = []
  for (let index = 0; index < releaseCount; index++) {
    const chosen = new Set<string>()
    while (chosen.size < Math.min(3, clusterCount)) chosen.add(clusters[Math.floor(random() * clusterCount)]!.name)
    const draw = random()
    const policy: Policy = draw < 0.8 ? 'nearest' : draw < 0.9 ? 'round_robin' : 'failover'
    const namespace = `ns${String(index % 20).padStart(2, '0')}`
    const name = `app${String(index + 1).padStart(4, '0')}`
    const sorted = [...chosen].sort()
    releases.push({ namespace, name, fqdn: `${name}.${namespace}.${ZONE}`, clusters: sorted, policy, failover: policy === 'failover' ? [...chosen] : [] })
  }
  const racks = Array.from({ length: Math.ceil(machineCount / MACHINES_PER_RACK) }, (_, index) => `rack${String(index + 1).padStart(2, '0')}`)
  const machines: SeedMachine[] = Array.from({ length: machineCount }, (_, index) => {
    const rack = racks[Math.floor(index / MACHINES_PER_RACK)]!
    const position = index % MACHINES_PER_RACK
    const role = position === 0 ? ('control-plane' as const) : ('node' as const)
    const ordinal = position === 0 ? 1 : position
    const hostname = `${rack}-${role === 'control-plane' ? 'cp' : 'node'}-${ordinal}`
    const hex = (index + 1).toString(16).padStart(12, '0')
    return {
      uuid: `d0500000-0000-4000-8000-${hex}`,
      mac: `52:54:01:${hex.slice(6, 8)}:${hex.slice(8, 10)}:${hex.slice(10, 12)}`,
      rack,
      role,
      ordinal,
      hostname,
      fqdn: `${hostname}.${ZONE}`,
      ip: `172.${16 + Math.floor(index / 65_024)}.${Math.floor((index % 65_024) / 254)}.${(index % 254) + 1}`,
    }
  })
  const place = () => ({ latitude: Math.round((random() * 130 - 60) * 1e4) / 1e4, longitude: Math.round((random() * 360 - 180) * 1e4) / 1e4 })
  const locations: SeedLocation[] = []
  for (let k = 0; k < 200; k++) locations.push({ subnet: `10.${k}.0.0/16`, site: `site${k}`, ...place() })
  for (let k = 0; k < 56; k++) locations.push({ subnet: `10.${k * 3}.${(k * 7) % 256}.0/24`, site: `pop${k}`, ...place() })
  if (!locations.some((location) => location.subnet === ecs.subnet)) locations.push({ subnet: ecs.subnet, site: 'bench-ecs', latitude: ecs.latitude, longitude: ecs.longitude })
  return { clusters, releases, machines, racks, locations }
}

/** Writes the seed into a freshly migrated engine database, the way the engine's own writes would leave it. */
async function seedDatabase(file: string, seed: Seed): Promise<void> {
  const store = openStore(file)
  try {
    await migrateToLatest(store)
    const now = new Date().toISOString()
    const chunks = <T>(rows: T[], size = 400) => Array.from({ length: Math.ceil(rows.length / size) }, (_, index) => rows.slice(index * size, index * size + size))
    await store.transaction().execute(async (trx) => {
      // The clusters the apps run on: registered by hand, joined, healthy, one ingress address each.
      for (const part of chunks(seed.clusters)) {
        await trx
          .insertInto('cluster_registry')
          .values(
            part.map((cluster) => ({
              name: cluster.name,
              labels: JSON.stringify({ cluster: cluster.name, site: cluster.name.slice(0, 3) }),
              latitude: cluster.latitude,
              longitude: cluster.longitude,
              region: null,
              site: cluster.name.slice(0, 3),
              source: 'manual' as const,
              server: 'https://127.0.0.1:9',
              ca_bundle: null,
              credential_kind: 'token' as const,
              credential_sealed: null,
              joined_at: now,
              join_message: null,
              created_at: now,
              updated_at: now,
              ingress_addresses: JSON.stringify([cluster.address]),
            })),
          )
          .execute()
        await trx
          .insertInto('cluster_health')
          .values(
            part.map((cluster) => ({
              cluster: cluster.name,
              status: 'Healthy' as const,
              reason: 'Ready',
              message: 'seeded by the benchmark',
              api_ready: 1,
              nodes_ready: 3,
              nodes_total: 3,
              pods_running: 10,
              pods_total: 10,
              kubernetes_version: 'v1.32.4',
              checked_at: now,
              duration_ms: 1,
              status_since: now,
            })),
          )
          .execute()
      }
      // Releases, each selecting exactly its 3 clusters (so that the reconciler finds nothing to do).
      const rollout = JSON.stringify({ maxParallel: 10, canarySelector: null, maxFailures: 3, readyTimeoutSeconds: 300 })
      for (const part of chunks(seed.releases)) {
        await trx
          .insertInto('releases')
          .values(
            part.map((release) => ({
              namespace: release.namespace,
              name: release.name,
              selector: `cluster in (${release.clusters.join(',')})`,
              excluded_clusters: '[]',
              revision: 1,
              state: 'active' as const,
              rollout,
              created_at: now,
              updated_at: now,
              dns: JSON.stringify({ hostnames: [], policy: release.policy, ttlSeconds: null, weights: {}, failover: release.failover }),
            })),
          )
          .execute()
        await trx
          .insertInto('release_revisions')
          .values(
            part.map((release) => ({
              namespace: release.namespace,
              name: release.name,
              revision: 1,
              chart_name: 'web',
              chart_version: '1.0.0',
              values: '{}',
              cluster_values: 0,
              description: 'seeded by the benchmark',
              created_at: now,
            })),
          )
          .execute()
        await trx
          .insertInto('cluster_releases')
          .values(
            part.flatMap((release) =>
              release.clusters.map((cluster) => ({
                namespace: release.namespace,
                name: release.name,
                cluster,
                revision: 1,
                phase: 'ready' as const,
                error: null,
                attempts: 1,
                retry_at: null,
                objects: '[]',
                updated_at: now,
                ready_at: now,
              })),
            ),
          )
          .execute()
      }
      // Provisioned racks and their installed machines (hostname + boot interface address).
      if (seed.racks.length) {
        await trx
          .insertInto('flavors')
          .values({ name: 'bench-rack', control_plane_count: 1, nodes_min: 0, nodes_max: MACHINES_PER_RACK - 1, selector: '{}', min_cpu_cores: 0, min_memory_bytes: 0, min_disk_bytes: 0, kubernetes_version: 'v1.32.4', created_at: now })
          .execute()
        await trx.insertInto('clusters').values(seed.racks.map((rack) => ({ name: rack, flavor: 'bench-rack', state: 'scheduled' as const, created_at: now }))).execute()
        await trx
          .insertInto('cluster_registry')
          .values(seed.racks.map((rack) => ({ name: rack, source: 'provisioned' as const, credential_kind: 'cluster_pki' as const, created_at: now, updated_at: now })))
          .execute()
      }
      for (const part of chunks(seed.machines)) {
        await trx
          .insertInto('machines')
          .values(
            part.map((machine) => ({
              uuid: machine.uuid,
              boot_mac: machine.mac,
              boot_random_id: null,
              state: 'installed' as const,
              state_changed_at: now,
              facts: '{}',
              first_seen_at: now,
              last_seen_at: now,
              created_at: now,
              updated_at: now,
            })),
          )
          .execute()
        await trx
          .insertInto('machine_interfaces')
          .values(part.map((machine) => ({ uuid: machine.uuid, position: 0, name: 'eth0', mac: machine.mac, ipv4: machine.ip, cidr: `${machine.ip}/16`, gateway: null, fqdn: '[]', is_boot: 1 })))
          .execute()
        await trx
          .insertInto('cluster_members')
          .values(part.map((machine) => ({ machine_uuid: machine.uuid, cluster: machine.rack, role: machine.role, ordinal: machine.ordinal, hostname: machine.hostname, created_at: now })))
          .execute()
      }
      for (const part of chunks(seed.locations)) await trx.insertInto('dns_locations').values(part).execute()
    })
  } finally {
    await store.destroy()
  }
}

// --- what each name must answer -----------------------------------------------------------------------

interface Question {
  name: string
  type: 'A' | 'AAAA'
}
interface Expected {
  status: 'NOERROR' | 'NXDOMAIN'
  /** Sorted. */
  addresses: string[]
}

const ipv4Number = (address: string) => address.split('.').reduce((value, part) => value * 256 + Number(part), 0)

function haversineKm(a: { latitude: number; longitude: number }, b: { latitude: number; longitude: number }): number {
  const rad = (degrees: number) => (degrees * Math.PI) / 180
  const h = Math.sin(rad(b.latitude - a.latitude) / 2) ** 2 + Math.cos(rad(a.latitude)) * Math.cos(rad(b.latitude)) * Math.sin(rad(b.longitude - a.longitude) / 2) ** 2
  return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(h)))
}

/** The longest location subnet holding `address` (IPv4). */
function locate(locations: SeedLocation[], address: string): SeedLocation | undefined {
  const value = ipv4Number(address)
  let best: SeedLocation | undefined
  let bestLength = -1
  for (const location of locations) {
    const [base, length] = location.subnet.split('/') as [string, string]
    const prefix = Number(length)
    const size = 2 ** (32 - prefix)
    if (Math.floor(value / size) === Math.floor(ipv4Number(base) / size) && prefix > bestLength) {
      best = location
      bestLength = prefix
    }
  }
  return best
}

/** The answer each name must get, from the seed alone (not from the engine's code). */
function answerBook(seed: Seed) {
  const clusters = new Map(seed.clusters.map((cluster) => [cluster.name, cluster]))
  const apps = new Map(seed.releases.map((release) => [release.fqdn, release]))
  const hosts = new Map(seed.machines.map((machine) => [machine.fqdn, machine.ip]))
  return (question: Question, client?: { latitude: number; longitude: number }): Expected => {
    const app = apps.get(question.name)
    const host = hosts.get(question.name)
    if (!app && !host) return { status: 'NXDOMAIN', addresses: [] }
    if (question.type === 'AAAA') return { status: 'NOERROR', addresses: [] } // IPv4 ingress and boot addresses only: NODATA
    if (host) return { status: 'NOERROR', addresses: [host] }
    let chosen = app!.clusters
    if (app!.policy === 'failover') chosen = [app!.failover[0]!]
    if (app!.policy === 'nearest' && client) {
      chosen = [[...app!.clusters].sort((a, b) => haversineKm(client, clusters.get(a)!) - haversineKm(client, clusters.get(b)!) || (a < b ? -1 : 1))[0]!]
    }
    return { status: 'NOERROR', addresses: chosen.map((name) => clusters.get(name)!.address).sort() }
  }
}

/**
 * The query mix dnsperf cycles through, shuffled: 80% A for app names (every release at least once),
 * 10% A for machine hostnames, 5% AAAA (half apps, half machines: NODATA), 5% A for names that do
 * not exist (NXDOMAIN: half under a namespace, half directly under the zone).
 */
function queryMix(seed: Seed, count: number): { queries: Question[]; counts: Record<string, number> } {
  const random = prng(71)
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!
  const appA = Math.round(count * 0.8)
  const hostA = Math.round(count * 0.1)
  const aaaa = Math.round(count * 0.05)
  const missing = count - appA - hostA - aaaa
  const queries: Question[] = []
  for (let index = 0; index < appA; index++) queries.push({ name: index < seed.releases.length ? seed.releases[index]!.fqdn : pick(seed.releases).fqdn, type: 'A' })
  for (let index = 0; index < hostA; index++) queries.push({ name: pick(seed.machines).fqdn, type: 'A' })
  for (let index = 0; index < aaaa; index++) queries.push({ name: index % 2 === 0 || seed.machines.length === 0 ? pick(seed.releases).fqdn : pick(seed.machines).fqdn, type: 'AAAA' })
  for (let index = 0; index < missing; index++) {
    queries.push({ name: index % 2 === 0 ? `nx${index}.${pick(seed.releases).namespace}.${ZONE}` : `missing-${index}.${ZONE}`, type: 'A' })
  }
  for (let index = queries.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1))
    ;[queries[index], queries[other]] = [queries[other]!, queries[index]!]
  }
  return { queries, counts: { appA, hostA, aaaa, nxdomain: missing } }
}

// --- dig ---------------------------------------------------------------------------------------------

interface DigAnswer {
  name: string
  type: string
  status: string
  flags: string[]
  addresses: string[]
  /** dig's CLIENT-SUBNET line (address/source/scope) when the answer carried ECS. */
  subnet?: string
}

/**
 * Asks every question with one `dig -f` (batch) and parses each answer: status, flags, the question
 * and the A/AAAA records of the answer section.
 */
async function digBatch(tmp: string, port: number, questions: Question[], options: string[] = []): Promise<DigAnswer[]> {
  const file = path.join(tmp, `dig-${randomBytes(4).toString('hex')}.txt`)
  await fs.writeFile(file, questions.map((question) => `${question.name} ${question.type}`).join('\n') + '\n')
  const stdout = await runTracked('dig', DIG, ['@127.0.0.1', '-p', String(port), '+norecurse', '+time=2', '+tries=2', '+noall', '+comments', '+question', '+answer', ...options, '-f', file])
  const answers: DigAnswer[] = []
  for (const block of stdout.split(';; ->>HEADER<<-').slice(1)) {
    const status = /status: (\w+)/.exec(block)?.[1] ?? '?'
    const flags = /;; flags: ([a-z ]*);/.exec(block)?.[1]?.trim().split(/\s+/) ?? []
    const question = /^;([^\s;]+)\s+IN\s+(\w+)\s*$/m.exec(block)
    const addresses: string[] = []
    for (const line of block.split('\n')) {
      const fields = line.trim().split(/\s+/)
      if (!line.startsWith(';') && fields.length >= 5 && fields[2] === 'IN' && (fields[3] === 'A' || fields[3] === 'AAAA')) addresses.push(fields[4]!)
    }
    const subnet = /CLIENT-SUBNET: (\S+)/.exec(block)?.[1]
    answers.push({ name: (question?.[1] ?? '').replace(/\.$/, '').toLowerCase(), type: question?.[2] ?? '?', status, flags, addresses: addresses.sort(), ...(subnet ? { subnet } : {}) })
  }
  return answers
}

/** Checks a server's answers to every distinct question against the seed; returns the problems. */
async function verify(tmp: string, label: string, port: number, questions: Question[], expect: (question: Question) => Expected, options: string[] = []): Promise<string[]> {
  const answers = await digBatch(tmp, port, questions, options)
  const problems: string[] = []
  if (answers.length !== questions.length) problems.push(`${label}: dig printed ${answers.length} answers for ${questions.length} questions`)
  const byKey = new Map(answers.map((answer) => [`${answer.name} ${answer.type}`, answer]))
  for (const question of questions) {
    const answer = byKey.get(`${question.name} ${question.type}`)
    const expected = expect(question)
    if (!answer) problems.push(`${label}: no answer to ${question.name} ${question.type}`)
    else if (answer.status !== expected.status || answer.addresses.join(',') !== expected.addresses.join(',')) {
      problems.push(`${label}: ${question.name} ${question.type} answered ${answer.status} [${answer.addresses.join(', ')}], expected ${expected.status} [${expected.addresses.join(', ')}]`)
    } else if (!answer.flags.includes('aa')) problems.push(`${label}: ${question.name} ${question.type} answered without the aa flag`)
  }
  return problems
}

// --- dnsperf -----------------------------------------------------------------------------------------

interface DnsperfResult {
  sent: number
  completed: number
  lost: number
  queriesPerSecond: number
  runSeconds: number
  latencyMs: { average: number; min: number; max: number; stddev: number }
  responseCodes: Record<string, number>
  packetBytes: { request: number; response: number }
}

function parseDnsperf(output: string): DnsperfResult {
  const number = (pattern: RegExp) => {
    const match = pattern.exec(output)
    if (!match) throw new Error(`dnsperf output without ${pattern.source}:\n${output.slice(-2000)}`)
    return Number(match[1])
  }
  const latency = /Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)/.exec(output)
  if (!latency) throw new Error(`dnsperf output without latencies:\n${output.slice(-2000)}`)
  const codes = /Response codes:\s+([^\n]*)/.exec(output)?.[1] ?? ''
  const responseCodes = Object.fromEntries([...codes.matchAll(/([A-Z]+) (\d+)/g)].map((match) => [match[1]!, Number(match[2])]))
  const packet = /Average packet size:\s+request (\d+), response (\d+)/.exec(output)
  return {
    sent: number(/Queries sent:\s+(\d+)/),
    completed: number(/Queries completed:\s+(\d+)/),
    lost: number(/Queries lost:\s+(\d+)/),
    queriesPerSecond: number(/Queries per second:\s+([\d.]+)/),
    runSeconds: number(/Run time \(s\):\s+([\d.]+)/),
    latencyMs: { average: Number(latency[1]) * 1000, min: Number(latency[2]) * 1000, max: Number(latency[3]) * 1000, stddev: number(/Latency StdDev \(s\):\s+([\d.]+)/) * 1000 },
    responseCodes,
    packetBytes: { request: Number(packet?.[1] ?? 0), response: Number(packet?.[2] ?? 0) },
  }
}

interface DnsperfOptions {
  port: number
  queryFile: string
  seconds: number
  clients: number
  threads: number
  outstanding: number
  timeoutSeconds: number
  /** `-E code:hex`: an EDNS option on every query. */
  ednsOption?: string
}

const dnsperfArgs = (options: DnsperfOptions) => [
  '-s', '127.0.0.1',
  '-p', String(options.port),
  '-d', options.queryFile,
  '-l', String(options.seconds),
  '-c', String(options.clients),
  '-T', String(options.threads),
  '-q', String(options.outstanding),
  '-t', String(options.timeoutSeconds),
  ...(options.ednsOption ? ['-E', options.ednsOption] : []),
]

async function runDnsperf(options: DnsperfOptions): Promise<DnsperfResult> {
  return parseDnsperf(await runTracked('dnsperf', DNSPERF, dnsperfArgs(options)))
}

/** The ECS option value of `-E 8:<hex>`: family 1 (IPv4), source prefix, scope 0, the prefix's address bytes. */
function ecsOptionHex(subnet: string): string {
  const [address, length] = subnet.split('/') as [string, string]
  const prefix = Number(length)
  const bytes = address.split('.').map(Number).slice(0, Math.ceil(prefix / 8))
  return ['0001', prefix.toString(16).padStart(2, '0'), '00', ...bytes.map((byte) => byte.toString(16).padStart(2, '0'))].join('')
}

// --- the benchmark -----------------------------------------------------------------------------------

type TargetId = 'engine' | 'dnsmasq' | 'engine-ecs'
interface Run {
  target: TargetId
  label: string
  index: number
  result: DnsperfResult
  cpu: CpuUsage
}

async function main(): Promise<void> {
  const began = Date.now()
  const clusterCount = envNumber('BENCH_DNS_CLUSTERS', 20, { min: 3, max: 65_000, integer: true })
  const releaseCount = envNumber('BENCH_DNS_RELEASES', 1000, { min: 1, max: 100_000, integer: true })
  const machineCount = envNumber('BENCH_DNS_MACHINES', 1000, { min: 1, max: 100_000, integer: true })
  const queryCount = envNumber('BENCH_DNS_QUERIES', 20_000, { min: 100, integer: true })
  const seconds = envNumber('BENCH_DNS_SECONDS', 10, { min: 1, integer: true })
  const warmup = envNumber('BENCH_WARMUP', 2, { min: 0, integer: true })
  const runsPerTarget = envNumber('BENCH_RUNS', 1, { min: 1, integer: true })
  const clients = envNumber('BENCH_DNS_CLIENTS', 8, { min: 1, integer: true })
  const threads = envNumber('BENCH_DNS_THREADS', 1, { min: 1, integer: true })
  const outstanding = envNumber('BENCH_DNS_OUTSTANDING', 100, { min: 1, integer: true })
  const timeoutSeconds = envNumber('BENCH_DNS_TIMEOUT', 2, { min: 1, integer: true })
  const quietCores = envNumber('BENCH_QUIET_CORES', 0.25, { min: 0 })
  const quietWait = envNumber('BENCH_QUIET_WAIT', 15, { min: 0 })
  const cpuProf = process.env.BENCH_CPU_PROF === '1'
  const ecsSubnet = process.env.BENCH_DNS_ECS_SUBNET || '10.42.7.0/24'
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}\.0\/24$/.test(ecsSubnet)) throw new SetupError(`BENCH_DNS_ECS_SUBNET=${ecsSubnet}: give an IPv4 /24 (a.b.c.0/24)`)
  const loadBefore = os.loadavg()

  for (const [binary, hint] of [[DNSPERF, 'Debian dnsperf, or set BENCH_DNSPERF'], [DNSMASQ, 'Debian dnsmasq-base, or set BENCH_DNSMASQ'], [DIG, 'Debian bind9-dnsutils, or set BENCH_DIG']] as const) {
    try {
      await fs.access(binary, constants.X_OK)
    } catch {
      throw new SetupError(`${binary} not found (${hint})`)
    }
  }

  const revision = await engineRevision(REPO, ['src', 'migrations', 'package.json', 'package-lock.json'])
  const tmp = await scope.makeTemp('slipway-bench-dns-')
  log(`temp folder ${tmp}`)

  // --- records and the engine's database ------------------------------------------------------------
  // The ECS client sits near Frankfurt (its /24 is in the location table).
  const seed = buildSeed(clusterCount, releaseCount, machineCount, { subnet: ecsSubnet, latitude: 50.0, longitude: 8.5 })
  const dataDir = path.join(tmp, 'var')
  const seedStarted = Date.now()
  await seedDatabase(path.join(dataDir, 'slipway.db'), seed)
  const seedMs = Date.now() - seedStarted
  const policies = Object.fromEntries((['nearest', 'round_robin', 'failover'] as const).map((policy) => [policy, seed.releases.filter((release) => release.policy === policy).length]))
  log(
    `seeded in ${fmt(seedMs / 1000, 1)} s: ${fmt(seed.clusters.length)} healthy clusters, ${fmt(seed.releases.length)} releases ready on 3 clusters each ` +
      `(${policies.nearest} nearest, ${policies.round_robin} round_robin, ${policies.failover} failover), ${fmt(seed.machines.length)} machines in ${seed.racks.length} racks, ${fmt(seed.locations.length)} location subnets`,
  )
  const expect = answerBook(seed)
  const ecsClient = locate(seed.locations, ecsSubnet.split('/')[0]!)!
  const mix = queryMix(seed, queryCount)
  const queryFile = path.join(tmp, 'queries.txt')
  await fs.writeFile(queryFile, mix.queries.map((question) => `${question.name} ${question.type}`).join('\n') + '\n')
  const distinct = [...new Map(mix.queries.map((question) => [`${question.name} ${question.type}`, question])).values()]
  log(`query file: ${fmt(mix.queries.length)} queries (${fmt(distinct.length)} distinct): ${fmt(mix.counts.appA!)} app A, ${fmt(mix.counts.hostA!)} machine A, ${fmt(mix.counts.aaaa!)} AAAA, ${fmt(mix.counts.nxdomain!)} nonexistent`)

  // --- engine ---------------------------------------------------------------------------------------
  const httpPort = await freePort()
  const enginePort = await freePort()
  const configFile = path.join(tmp, 'slipway.yaml')
  // An explicit, empty config file: a slipway.yaml in the repo must not change what is measured.
  await fs.writeFile(configFile, '{}\n')
  const assetsDir = path.join(tmp, 'assets')
  await fs.mkdir(assetsDir)
  const profDir = path.join(tmp, 'cpu-prof')
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SLIPWAY_')))
  Object.assign(env, {
    NODE_ENV: 'production',
    SLIPWAY_CONFIG: configFile,
    SLIPWAY_DATA_DIR: dataDir,
    SLIPWAY_HTTP_HOST: '127.0.0.1',
    SLIPWAY_HTTP_PORT: String(httpPort),
    SLIPWAY_DNS_ENABLED: 'true',
    SLIPWAY_DNS_HOST: '127.0.0.1',
    SLIPWAY_DNS_PORT: String(enginePort),
    SLIPWAY_DNS_ZONE: ZONE,
    SLIPWAY_DNS_TTL_SECONDS: String(TTL),
    SLIPWAY_PROXY_ENABLED: 'false',
    SLIPWAY_TFTP_ENABLED: 'false',
    SLIPWAY_DHCP_MODE: 'off',
    // Nothing would answer a health sweep or a release apply: no timed passes (the start pass of the
    // reconciler finds every release ready on the clusters it selects, and does nothing).
    SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
    SLIPWAY_RELEASES_RECONCILE_INTERVAL_SECONDS: '0',
    SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
    SLIPWAY_CONTENT_PROFILES_DIR: path.join(REPO, 'profiles'),
    SLIPWAY_CONTENT_IGNITION_DIR: path.join(REPO, 'ignition'),
    SLIPWAY_CONTENT_IPXE_DIR: path.join(REPO, 'ipxe'),
    SLIPWAY_CONTENT_GENERIC_DIR: path.join(REPO, 'generic'),
    SLIPWAY_CONTENT_ASSETS_DIR: assetsDir,
    SLIPWAY_LOG_LEVEL: 'warn',
    SLIPWAY_AUTH_ADMIN_TOKEN: randomBytes(24).toString('base64url'),
  })
  const nodeArgs = [...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []), '--import', 'tsx', 'src/main.ts']
  log(`starting the engine (DNS on 127.0.0.1:${enginePort}, HTTP on ${httpPort})`)
  const spawnedUs = nowUs()
  const engineStarted = Date.now()
  const engine = spawnTracked('engine', process.execPath, nodeArgs, { cwd: REPO, env })
  await waitForHttp(`http://127.0.0.1:${httpPort}/healthz`, engine, 120_000)
  // The first snapshot is built just after start: wait until a seeded name answers as seeded.
  const probe = { name: seed.releases[0]!.fqdn, type: 'A' as const }
  const deadline = Date.now() + 30_000
  for (;;) {
    const [answer] = await digBatch(tmp, enginePort, [probe]).catch(() => [] as DigAnswer[])
    if (answer && answer.addresses.join(',') === expect(probe).addresses.join(',')) break
    if (engine.child.exitCode !== null) throw new SetupError(`the engine exited:\n${engine.output().slice(-4000)}`)
    if (Date.now() > deadline) throw new SetupError(`the engine's DNS did not answer ${probe.name} as seeded within 30 s (last: ${JSON.stringify(answer)}):\n${engine.output().slice(-4000)}`)
    await sleep(200)
  }
  log(`engine answering in ${fmt((Date.now() - engineStarted) / 1000, 1)} s`)
  const enginePid = engine.child.pid!

  // --- dnsmasq: the same names, authoritative for the zone --------------------------------------------
  const dnsmasqPort = await freePort()
  const dnsmasqConf = path.join(tmp, 'dnsmasq.conf')
  const hostRecords: string[] = [`host-record=${NAMESERVER},127.0.0.1,${TTL}`]
  for (const release of seed.releases) {
    for (const address of expect({ name: release.fqdn, type: 'A' }).addresses) hostRecords.push(`host-record=${release.fqdn},${address},${TTL}`)
  }
  for (const machine of seed.machines) hostRecords.push(`host-record=${machine.fqdn},${machine.ip},${TTL}`)
  await fs.writeFile(
    dnsmasqConf,
    [
      `port=${dnsmasqPort}`,
      'listen-address=127.0.0.1',
      'bind-interfaces',
      'no-resolv',
      'no-hosts',
      'no-poll',
      // Authoritative for the zone on 127.0.0.1: aa answers, NXDOMAIN/NODATA with the SOA, nothing
      // forwarded (REFUSED outside the zone), like the engine.
      `auth-server=${NAMESERVER},127.0.0.1`,
      `auth-zone=${ZONE}`,
      `auth-ttl=${TTL}`,
      `auth-soa=1,hostmaster.${ZONE},3600,600,604800`,
      ...hostRecords,
      '',
    ].join('\n'),
  )
  const dnsmasq = spawnTracked('dnsmasq', DNSMASQ, ['--no-daemon', `--conf-file=${dnsmasqConf}`, '--pid-file=', '--log-facility=-'], { cwd: tmp })
  {
    const until = Date.now() + 15_000
    for (;;) {
      const [answer] = await digBatch(tmp, dnsmasqPort, [probe]).catch(() => [] as DigAnswer[])
      if (answer?.status === 'NOERROR' && answer.addresses.length) break
      if (dnsmasq.child.exitCode !== null) throw new SetupError(`dnsmasq exited:\n${dnsmasq.output().slice(-4000)}`)
      if (Date.now() > until) throw new SetupError(`dnsmasq did not answer within 15 s:\n${dnsmasq.output().slice(-4000)}`)
      await sleep(100)
    }
  }
  const dnsmasqPid = dnsmasq.child.pid!
  log(`dnsmasq answering on 127.0.0.1:${dnsmasqPort} (${fmt(hostRecords.length)} host-record lines)`)

  // --- both answer the same ---------------------------------------------------------------------------
  const checkStarted = Date.now()
  const problems = [
    ...(await verify(tmp, 'engine', enginePort, distinct, (question) => expect(question))),
    ...(await verify(tmp, 'dnsmasq', dnsmasqPort, distinct, (question) => expect(question))),
    ...(await verify(tmp, 'engine with ECS', enginePort, distinct, (question) => expect(question, ecsClient), [`+subnet=${ecsSubnet}`])),
  ]
  // The engine's ECS answers say how widely they hold (the scope: the matched location's prefix).
  const [scoped] = await digBatch(tmp, enginePort, [probe], [`+subnet=${ecsSubnet}`])
  const wantedScope = `${ecsSubnet}/${ecsClient.subnet.split('/')[1]}`
  if (scoped?.subnet !== wantedScope) problems.push(`engine with ECS: ${probe.name} echoed CLIENT-SUBNET ${scoped?.subnet ?? '(none)'}, expected ${wantedScope}`)
  const refused = await digBatch(tmp, enginePort, [{ name: 'example.org', type: 'A' }])
  if (refused[0]?.status !== 'REFUSED') problems.push(`engine: example.org answered ${refused[0]?.status}, expected REFUSED`)
  if (problems.length) throw new SetupError(`the servers' answers differ from the seed (${problems.length} problem(s)):\n  ${problems.slice(0, 15).join('\n  ')}`)
  const ecsChanged = distinct.filter((question) => expect(question).addresses.join(',') !== expect(question, ecsClient).addresses.join(',')).length
  log(
    `checked with dig: all ${fmt(distinct.length)} distinct questions answered as seeded by the engine, by dnsmasq and by the engine with ECS ${ecsSubnet} ` +
      `(location ${ecsClient.site} ${ecsClient.subnet}; ${fmt(ecsChanged)} answers differ from the no-location ones) in ${fmt((Date.now() - checkStarted) / 1000, 1)} s`,
  )

  // --- measured runs ----------------------------------------------------------------------------------
  const ednsOption = `8:${ecsOptionHex(ecsSubnet)}`
  const targets: { id: TargetId; label: string; port: number; pid: number; ednsOption?: string }[] = [
    { id: 'engine', label: 'engine (1 node process)', port: enginePort, pid: enginePid },
    { id: 'dnsmasq', label: 'dnsmasq (auth zone)', port: dnsmasqPort, pid: dnsmasqPid },
    { id: 'engine-ecs', label: `engine + ECS ${ecsSubnet}`, port: enginePort, pid: enginePid, ednsOption },
  ]
  const base = { queryFile, clients, threads, outstanding, timeoutSeconds }
  log(`dnsperf: ${clients} clients, ${threads} thread(s), at most ${outstanding} queries outstanding, ${warmup} s warm-up then ${seconds} s measured per run; ECS option -E ${ednsOption}`)
  const runs: Run[] = []
  const windows: Record<string, ProfileWindow> = {}
  for (let index = 0; index < runsPerTarget; index++) {
    for (const target of targets) {
      if (warmup > 0) await runDnsperf({ ...base, port: target.port, seconds: warmup, ...(target.ednsOption ? { ednsOption: target.ednsOption } : {}) })
      if (quietWait > 0) {
        const idle = await waitForQuiet(quietCores, quietWait, (cores) => log(`  other processes use ${fmt(cores * 100)}% of a core; waiting up to ${quietWait} s for a quieter machine`))
        if (idle !== undefined && idle > quietCores) log(`  still ${fmt(idle * 100)}% of a core busy elsewhere; measuring anyway`)
      }
      const fromUs = nowUs()
      const { result, ...cpu } = await withCpuUsage(target.pid, () => runDnsperf({ ...base, port: target.port, seconds, ...(target.ednsOption ? { ednsOption: target.ednsOption } : {}) }))
      if (target.id !== 'dnsmasq') windows[target.id] = { fromUs, toUs: nowUs() }
      runs.push({ target: target.id, label: target.label, index, result, cpu })
      log(
        `  ${target.label.padEnd(30)} ${fmt(result.queriesPerSecond).padStart(9)} q/s  avg ${fmt(result.latencyMs.average, 3)} ms  sd ${fmt(result.latencyMs.stddev, 3)} ms  lost ${fmt(result.lost)}` +
          (cpu.serverCores !== undefined ? `  server CPU ${fmt(cpu.serverCores * 100)}%` : ''),
      )
      const unexpected = Object.keys(result.responseCodes).filter((code) => code !== 'NOERROR' && code !== 'NXDOMAIN')
      if (unexpected.length) throw new SetupError(`${target.label}: unexpected response codes ${JSON.stringify(result.responseCodes)}`)
    }
  }
  const engineMemory = processMemory(enginePid)

  // --- report -----------------------------------------------------------------------------------------
  const [dnsmasqV, dnsperfV] = await Promise.all([
    runTracked('dnsmasq --version', DNSMASQ, ['--version']).then((out) => /version (\S+)/.exec(out)?.[1] ?? 'unknown', () => 'unknown'),
    runTracked('dnsperf -h', DNSPERF, ['-h']).then((out) => /Version (\S+)/.exec(out)?.[1] ?? 'unknown', () => 'unknown'),
  ])
  const rowsOf = (id: TargetId) => runs.filter((run) => run.target === id)
  const summary = (id: TargetId) => {
    const rows = rowsOf(id)
    const pick = rows.length === 1 ? rows[0]! : rows.find((row) => row.result.queriesPerSecond === median(rows.map((r) => r.result.queriesPerSecond)))!
    return pick
  }
  const engineRun = summary('engine')
  const dnsmasqRun = summary('dnsmasq')
  const ecsRun = summary('engine-ecs')
  const perCore = (run: Run) => (run.cpu.serverCores ? run.result.queriesPerSecond / run.cpu.serverCores : undefined)
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined)
  const ratios = {
    engineVsDnsmasq: ratio(engineRun.result.queriesPerSecond, dnsmasqRun.result.queriesPerSecond)!,
    engineEcsVsDnsmasq: ratio(ecsRun.result.queriesPerSecond, dnsmasqRun.result.queriesPerSecond)!,
    engineEcsVsEngine: ratio(ecsRun.result.queriesPerSecond, engineRun.result.queriesPerSecond)!,
    perServerCore: {
      engineVsDnsmasq: ratio(perCore(engineRun), perCore(dnsmasqRun)),
      engineEcsVsDnsmasq: ratio(perCore(ecsRun), perCore(dnsmasqRun)),
    },
  }

  const cpus = os.cpus()
  const lines: string[] = []
  lines.push('')
  lines.push(
    `Slipway DNS benchmark: zone ${ZONE}, ${fmt(seed.releases.length)} app names (3 of ${seed.clusters.length} clusters each), ${fmt(seed.machines.length)} machine hostnames, ${fmt(seed.locations.length)} location subnets`,
  )
  lines.push(`dnsperf ${dnsperfV}, UDP, ${clients} clients, ${threads} thread(s), ${outstanding} outstanding, ${seconds} s per run (after ${warmup} s warm-up); ${fmt(mix.queries.length)} queries cycled: 80% app A, 10% machine A, 5% AAAA (NODATA), 5% NXDOMAIN; all on 127.0.0.1`)
  lines.push(`engine: ${revision.commit ?? 'unknown commit'}${revision.changedFiles.length ? ` + uncommitted changes in ${revision.changedFiles.join(', ')}` : ''}`)
  lines.push(`machine: ${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}; node ${process.version}; dnsmasq ${dnsmasqV}; load average at start: ${loadBefore.map((v) => v.toFixed(2)).join(' ')}`)
  lines.push('')
  const header = ['target', 'run', 'q/s', 'avg ms', 'sd ms', 'max ms', 'lost', 'NXDOMAIN', 'resp B', 'server CPU', 'q/s per core', 'dnsperf CPU', 'other CPU']
  const percent = (cores: number | undefined) => (cores === undefined ? '-' : `${fmt(cores * 100)}%`)
  const noisy = (run: Run) => (run.cpu.otherCores ?? 0) > NOISY_CORES
  const saturated = (run: Run) => (run.cpu.loadGeneratorCores ?? 0) > SATURATED_CORES * threads
  const rows = runs.map((run) => [
    run.label,
    String(run.index + 1),
    fmt(run.result.queriesPerSecond),
    fmt(run.result.latencyMs.average, 3),
    fmt(run.result.latencyMs.stddev, 3),
    fmt(run.result.latencyMs.max, 1),
    fmt(run.result.lost),
    `${fmt((100 * (run.result.responseCodes.NXDOMAIN ?? 0)) / Math.max(1, run.result.completed), 1)}%`,
    String(run.result.packetBytes.response),
    percent(run.cpu.serverCores),
    perCore(run) === undefined ? '-' : fmt(perCore(run)!),
    percent(run.cpu.loadGeneratorCores) + (saturated(run) ? ' ^' : ''),
    percent(run.cpu.otherCores) + (noisy(run) ? ' !' : ''),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const render = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  lines.push(render(header))
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const row of rows) lines.push(render(row))
  lines.push('CPU columns: CPU time / wall time, 100% = one core. "q/s per core" = q/s / server CPU. "resp B": average response size.')
  if (runs.some(saturated)) lines.push(`^ dnsperf used more than ${SATURATED_CORES * 100}% of a core per thread: that row is bound by the load generator, not the server.`)
  if (runs.some(noisy)) lines.push(`! other processes used more than ${NOISY_CORES * 100}% of a core during this run: rerun on a quiet machine.`)
  lines.push('')
  lines.push(`Ratio engine / dnsmasq, queries per second${runsPerTarget > 1 ? ` (medians of ${runsPerTarget})` : ''}:`)
  lines.push(`  no ECS        ${ratios.engineVsDnsmasq.toFixed(3)}` + (ratios.perServerCore.engineVsDnsmasq !== undefined ? `    (per server core: ${ratios.perServerCore.engineVsDnsmasq.toFixed(3)})` : ''))
  lines.push(`  engine + ECS  ${ratios.engineEcsVsDnsmasq.toFixed(3)}` + (ratios.perServerCore.engineEcsVsDnsmasq !== undefined ? `    (per server core: ${ratios.perServerCore.engineEcsVsDnsmasq.toFixed(3)})` : ''))
  lines.push(`  engine + ECS / engine without: ${ratios.engineEcsVsEngine.toFixed(3)}`)
  if (engineMemory) lines.push(`Engine VmRSS after the runs ${fmt(engineMemory.rssBytes / 1e6, 1)} MB (peak ${fmt(engineMemory.hwmBytes / 1e6, 1)} MB).`)
  lines.push(`Total ${fmt((Date.now() - began) / 1000)} s.`)
  process.stdout.write(lines.join('\n') + '\n')

  const results = {
    benchmark: 'dns',
    date: new Date().toISOString(),
    machine: machineFacts(loadBefore),
    versions: { node: process.version, dnsmasq: dnsmasqV, dnsperf: dnsperfV },
    engine: revision,
    settings: {
      zone: ZONE,
      transport: 'udp',
      dnsperf: { clients, threads, outstanding, timeoutSeconds, seconds, warmupSeconds: warmup, runsPerTarget, args: dnsperfArgs({ ...base, port: 0, seconds }).join(' ') },
      ecs: { subnet: ecsSubnet, ednsOption, location: ecsClient },
      quietBeforeRun: { maxOtherCores: quietCores, maxWaitSeconds: quietWait },
      engineNodeEnv: 'production',
      engineDnsRefreshSeconds: 'default (2)',
      engineCpuProfile: cpuProf,
      dnsmasq: 'auth-server + auth-zone (authoritative), host-record per address, no-resolv, no-hosts',
    },
    seed: {
      clusters: seed.clusters.length,
      releases: seed.releases.length,
      clustersPerRelease: 3,
      policies,
      machines: seed.machines.length,
      racks: seed.racks.length,
      locations: seed.locations.length,
      dnsmasqHostRecords: hostRecords.length,
      seedSeconds: seedMs / 1000,
    },
    queries: { total: mix.queries.length, distinct: distinct.length, ...mix.counts, answersChangedByEcs: ecsChanged },
    runs: runs.map((run) => ({
      target: run.target,
      label: run.label,
      run: run.index + 1,
      ...run.result,
      cpuCores: { server: run.cpu.serverCores, dnsperf: run.cpu.loadGeneratorCores, otherProcesses: run.cpu.otherCores },
      queriesPerServerCore: perCore(run),
      noisy: noisy(run),
      loadGeneratorSaturated: saturated(run),
    })),
    ratios,
    engineMemory,
  }
  await writeResults(RESULTS_DIR, 'dns', results, log)

  await stopProcess(dnsmasq)
  if (cpuProf) {
    // The engine writes its profile when it exits: stop it gracefully first.
    await stopProcess(engine, 60_000)
    const target = await keepEngineProfile(profDir, RESULTS_DIR, 'dns')
    const out = windowedProfileLines({
      file: target,
      startedUs: spawnedUs,
      sameClock: { from: -1, to: 120 },
      windows: Object.entries(windows).map(([name, window]) => [`Engine CPU profile, ${name}`, window]),
      whole: 'Engine CPU profile, whole run',
      skewNote: false,
      heading: (title, profile) => `${title}: ${fmt(profile.totalMs / 1000, 2)} s busy; self time by origin:`,
      top: { origins: 12, functions: 20, inclusive: 15 },
    })
    out.push(`(profile saved to ${path.relative(process.cwd(), target)}; profiling slows the engine: use the figures of a run without BENCH_CPU_PROF)`)
    process.stdout.write(out.join('\n') + '\n')
  }
}


runBenchmark(scope, 'dns', main)

