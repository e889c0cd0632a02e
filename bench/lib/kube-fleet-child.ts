/**
 * A child process hosting many Kubernetes API server TEST DOUBLES, so that their CPU and memory are not
 * the engine's. There is no Kubernetes here. Two kinds, chosen with `FLEET_KIND`:
 *
 * - `apiserver` (default, for bench/registry.bench.ts): test/fakes/kube-apiserver.ts, just enough of the
 *   API (/version, /readyz, nodes, pods) for a health probe, with `FLEET_NODES` Ready nodes and
 *   `FLEET_PODS` running pods each;
 * - `cluster` (for bench/releases.bench.ts): test/fakes/kube-cluster.ts, a generic object store with
 *   discovery and server-side apply, whose Deployments, StatefulSets, DaemonSets and Jobs become ready
 *   `FLEET_READY_DELAY_MS` after each change (what a Helm release fan-out touches).
 *
 * Every double listens on 127.0.0.1 (random port) over TLS, with one serving certificate shared by all
 * (issued by one CA made with the engine's own PKI issuer), its own bearer token, and `FLEET_LATENCY_MS`
 * added before every answer.
 *
 *   node --import tsx bench/lib/kube-fleet-child.ts
 *     (FLEET_KIND=apiserver FLEET_CLUSTERS=500 FLEET_LATENCY_MS=50 FLEET_NODES=3 FLEET_PODS=10 FLEET_KEEPALIVE_SECONDS=5
 *      FLEET_READY_DELAY_MS=20 FLEET_GIT_VERSION=v1.31.4)
 *
 * Once every double listens it prints ONE line of JSON on stdout:
 *   {"ready":true,"caPem":"...","clusters":[{"name":"c-001","url":"https://127.0.0.1:41234","token":"..."}, ...]}
 * With an IPC channel (the benchmarks spawn it with one) it answers, echoing the request's `id` if any:
 * - `{ type: 'stats' }` with `{ type: 'stats', tlsConnections, requests, cpuMicros, memory }` (totals
 *   since start), which tells the benchmark how many TLS handshakes and requests a phase cost;
 * - `{ type: 'requests', name, sinceMs? }` with `{ type: 'requests', requests }`: the request log of one
 *   double (method, path, query, content type, status, time answered), answered at or after `sinceMs`
 *   (epoch ms), bodies left out;
 * - `{ type: 'close-idle' }` with `{ type: 'close-idle', closed: true }` once every double closed its idle
 *   connections (what a client meets after a pause longer than the keep-alive timeouts);
 * - `{ type: 'objects', namespace }` (kind `cluster` only) with `{ type: 'objects', clusters: { <name>:
 *   [{ kind, name, data? }] } }`: what each double holds in that namespace (ConfigMaps with their data),
 *   so that the benchmark can check what the engine applied.
 * SIGTERM/SIGINT close every double and exit; so does losing the parent (its IPC channel closes), so
 * that a killed benchmark leaves nothing behind.
 */
import { randomBytes } from 'node:crypto'
import type { Server } from 'node:https'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { FakeKubeApiserver } from '../../test/fakes/kube-apiserver.ts'
import { FakeKubeCluster } from '../../test/fakes/kube-cluster.ts'
import { servingCertificate } from '../../test/helpers/test-pki.ts'

const setting = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name}=${process.env[name]} is not a non-negative integer`)
  return value
}

const kind = process.env.FLEET_KIND ?? 'apiserver'
if (kind !== 'apiserver' && kind !== 'cluster') throw new Error(`FLEET_KIND=${kind}: expected apiserver or cluster`)
const clusters = setting('FLEET_CLUSTERS', 500)
const latencyMs = setting('FLEET_LATENCY_MS', 50)
const nodesPerCluster = setting('FLEET_NODES', 3)
const podsPerCluster = setting('FLEET_PODS', 10)
const readyDelayMs = setting('FLEET_READY_DELAY_MS', 20)
const gitVersion = process.env.FLEET_GIT_VERSION ?? 'v1.31.4'
/**
 * Keep-alive timeout of every double's server, seconds (Node's default: 5). The server announces it
 * (`Keep-Alive: timeout=N`) and undici 7 keeps an idle connection N - 2 s; a real kube-apiserver (Go)
 * announces nothing, and undici then keeps it 4 s (its default). Raising it shows what a client that
 * kept its connections between uses would cost.
 */
const keepAliveSeconds = setting('FLEET_KEEPALIVE_SECONDS', 5)
const width = Math.max(3, String(clusters).length)

interface Double {
  name: string
  url: string
  server: Server
  close(): Promise<void>
  requests: readonly { method: string; path: string; query: Record<string, string>; contentType: string | undefined; status: number; at: number }[]
  /** TLS connections accepted so far. */
  tlsConnections(): number
  cluster?: FakeKubeCluster
}

const doubles: Double[] = []
let closing: Promise<void> | undefined

function shutdown(code: number): void {
  closing ??= (async () => {
    await Promise.allSettled(doubles.map((api) => api.close()))
    process.exit(code)
  })()
}
process.on('SIGTERM', () => shutdown(0))
process.on('SIGINT', () => shutdown(0))
process.on('disconnect', () => shutdown(0))

/** The double keeps its node:https server private; the benchmark only tunes its keep-alive (and counts handshakes). */
const serverOf = (api: FakeKubeApiserver | FakeKubeCluster) => Reflect.get(api, 'server') as Server

async function startApiserver(name: string, token: string, tls: { certificatePem: string; privateKeyPem: string }): Promise<Double> {
  const api = await FakeKubeApiserver.start({ tls, tokens: [token], latencyMs, gitVersion })
  serverOf(api).keepAliveTimeout = keepAliveSeconds * 1000
  for (let n = 1; n <= nodesPerCluster; n++) {
    api.addNode(`${name}-node-${n}`, n === 1 ? { labels: { 'node-role.kubernetes.io/control-plane': '' } } : {})
  }
  for (let p = 1; p <= podsPerCluster; p++) {
    const node = nodesPerCluster > 0 ? `${name}-node-${1 + (p % nodesPerCluster)}` : undefined
    api.addPod({ name: `app-${p}`, namespace: p % 3 === 0 ? 'kube-system' : 'shop', node, controller: { kind: 'ReplicaSet', name: 'app' } })
  }
  return { name, url: api.url, server: serverOf(api), close: () => api.close(), requests: api.requests, tlsConnections: () => api.tlsConnections }
}

async function startCluster(name: string, token: string, tls: { certificatePem: string; privateKeyPem: string; caPem: string }): Promise<Double> {
  const api = await FakeKubeCluster.start({ tls, tokens: [token], latencyMs, readyDelayMs, gitVersion, nodeCount: Math.max(1, nodesPerCluster) })
  const server = serverOf(api)
  server.keepAliveTimeout = keepAliveSeconds * 1000
  let handshakes = 0
  server.on('secureConnection', () => handshakes++)
  return { name, url: api.url, server, close: () => api.close(), requests: api.requests, tlsConnections: () => handshakes, cluster: api }
}

type Message = { type?: string; id?: unknown; name?: string; sinceMs?: number; namespace?: string }

function answer(message: Message): Record<string, unknown> | undefined {
  switch (message.type) {
    case 'stats': {
      const cpu = process.cpuUsage()
      return {
        tlsConnections: doubles.reduce((sum, api) => sum + api.tlsConnections(), 0),
        requests: doubles.reduce((sum, api) => sum + api.requests.length, 0),
        cpuMicros: cpu.user + cpu.system,
        memory: process.memoryUsage(),
      }
    }
    case 'requests': {
      const double = doubles.find((candidate) => candidate.name === message.name)
      if (!double) return { error: `no double named ${message.name}` }
      const since = message.sinceMs ?? 0
      return {
        requests: double.requests.filter((request) => request.at >= since).map(({ method, path, query, contentType, status, at }) => ({ method, path, query, contentType, status, at })),
      }
    }
    case 'close-idle': {
      // What a client meets after a pause longer than the keep-alive timeouts, without waiting for it.
      for (const double of doubles) double.server.closeIdleConnections()
      return { closed: true }
    }
    case 'objects': {
      if (kind !== 'cluster') return { error: 'objects: only FLEET_KIND=cluster doubles hold objects' }
      const held: Record<string, { kind: string; name: string; data?: unknown }[]> = {}
      for (const double of doubles) {
        held[double.name] = double.cluster!.objects(message.namespace === undefined ? {} : { namespace: message.namespace }).map((object) => ({
          kind: object.kind,
          name: object.metadata.name,
          ...(object.kind === 'ConfigMap' ? { data: object.data } : {}),
        }))
      }
      return { clusters: held }
    }
    default:
      return undefined
  }
}

async function main(): Promise<void> {
  const pki = await x509ClusterPkiIssuer.issue('bench-fleet', new Date())
  const serving = await servingCertificate(pki)
  const fleet: { name: string; url: string; token: string }[] = []
  // A few at a time: 500 listens are quick, and the order of names stays that of the ports.
  for (let start = 0; start < clusters; start += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, clusters - start) }, async (_, offset) => {
        const name = `c-${String(start + offset + 1).padStart(width, '0')}`
        const token = randomBytes(24).toString('base64url')
        const double = kind === 'cluster' ? await startCluster(name, token, { ...serving, caPem: pki.kubernetesCa.certificatePem }) : await startApiserver(name, token, serving)
        doubles.push(double)
        return { name, url: double.url, token }
      }),
    )
    fleet.push(...batch)
  }
  process.on('message', (message: Message) => {
    const body = answer(message)
    if (body) process.send?.({ type: message.type, ...(message.id !== undefined ? { id: message.id } : {}), ...body })
  })
  process.stdout.write(`${JSON.stringify({ ready: true, caPem: pki.kubernetesCa.certificatePem, clusters: fleet })}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`kube fleet failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  shutdown(1)
})
