/**
 * A child process hosting many Kubernetes API server TEST DOUBLES (test/fakes/kube-apiserver.ts) for
 * bench/registry.bench.ts, so that their CPU and memory are not the engine's. There is no Kubernetes
 * here: each double speaks just enough of the API (/version, /readyz, nodes, pods) for a health probe.
 *
 * Every double listens on 127.0.0.1 (random port) over TLS, with one serving certificate shared by all
 * (issued by one CA made with the engine's own PKI issuer), its own bearer token, `FLEET_LATENCY_MS`
 * added before every answer, `FLEET_NODES` Ready nodes and `FLEET_PODS` running pods.
 *
 *   node --import tsx bench/lib/kube-fleet-child.ts     (FLEET_CLUSTERS=500 FLEET_LATENCY_MS=50 FLEET_NODES=3 FLEET_PODS=10 FLEET_KEEPALIVE_SECONDS=5)
 *
 * Once every double listens it prints ONE line of JSON on stdout:
 *   {"ready":true,"caPem":"...","clusters":[{"name":"c-001","url":"https://127.0.0.1:41234","token":"..."}, ...]}
 * With an IPC channel (the benchmark spawns it with one), `{ type: 'stats' }` is answered with
 * `{ type: 'stats', tlsConnections, requests, cpuMicros, memory }` (totals since start), which tells
 * the benchmark how many TLS handshakes a sweep cost. SIGTERM/SIGINT close every double and exit; so
 * does losing the parent (its IPC channel closes), so that a killed benchmark leaves nothing behind.
 */
import { randomBytes } from 'node:crypto'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { FakeKubeApiserver } from '../../test/fakes/kube-apiserver.ts'
import { servingCertificate } from '../../test/helpers/test-pki.ts'

const setting = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name}=${process.env[name]} is not a non-negative integer`)
  return value
}

const clusters = setting('FLEET_CLUSTERS', 500)
const latencyMs = setting('FLEET_LATENCY_MS', 50)
const nodesPerCluster = setting('FLEET_NODES', 3)
const podsPerCluster = setting('FLEET_PODS', 10)
/**
 * Keep-alive timeout of every double's server, seconds (Node's default: 5). The server announces it
 * (`Keep-Alive: timeout=N`) and undici 7 keeps an idle connection N - 2 s; a real kube-apiserver (Go)
 * announces nothing, and undici then keeps it 4 s (its default). Raising it shows what a client that
 * kept its connections between sweeps would cost.
 */
const keepAliveSeconds = setting('FLEET_KEEPALIVE_SECONDS', 5)
const width = Math.max(3, String(clusters).length)

const doubles: FakeKubeApiserver[] = []
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

async function main(): Promise<void> {
  const pki = await x509ClusterPkiIssuer.issue('bench-fleet', new Date())
  const tls = await servingCertificate(pki)
  const fleet: { name: string; url: string; token: string }[] = []
  // A few at a time: 500 listens are quick, and the order of names stays that of the ports.
  for (let start = 0; start < clusters; start += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, clusters - start) }, async (_, offset) => {
        const name = `c-${String(start + offset + 1).padStart(width, '0')}`
        const token = randomBytes(24).toString('base64url')
        const api = await FakeKubeApiserver.start({ tls, tokens: [token], latencyMs, gitVersion: 'v1.31.4' })
        doubles.push(api)
        // The double keeps its node:https server private; the benchmark only tunes its keep-alive.
        const server = Reflect.get(api, 'server') as import('node:https').Server
        server.keepAliveTimeout = keepAliveSeconds * 1000
        for (let n = 1; n <= nodesPerCluster; n++) {
          api.addNode(`${name}-node-${n}`, n === 1 ? { labels: { 'node-role.kubernetes.io/control-plane': '' } } : {})
        }
        for (let p = 1; p <= podsPerCluster; p++) {
          const node = nodesPerCluster > 0 ? `${name}-node-${1 + (p % nodesPerCluster)}` : undefined
          api.addPod({ name: `app-${p}`, namespace: p % 3 === 0 ? 'kube-system' : 'shop', node, controller: { kind: 'ReplicaSet', name: 'app' } })
        }
        return { name, url: api.url, token }
      }),
    )
    fleet.push(...batch)
  }
  process.on('message', (message: { type?: string }) => {
    if (message?.type !== 'stats') return
    const cpu = process.cpuUsage()
    process.send?.({
      type: 'stats',
      tlsConnections: doubles.reduce((sum, api) => sum + api.tlsConnections, 0),
      requests: doubles.reduce((sum, api) => sum + api.requests.length, 0),
      cpuMicros: cpu.user + cpu.system,
      memory: process.memoryUsage(),
    })
  })
  process.stdout.write(`${JSON.stringify({ ready: true, caPem: pki.kubernetesCa.certificatePem, clusters: fleet })}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`kube fleet failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  shutdown(1)
})
