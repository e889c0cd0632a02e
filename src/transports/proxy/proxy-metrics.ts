import { Counter, Histogram, type Registry } from 'prom-client'

/**
 * The reverse proxy's metrics, in the engine's registry (served at /metrics): requests per route
 * and outcome, and how long origins take to start answering.
 */
export class ProxyMetrics {
  private readonly requests: Counter<'route' | 'outcome'>
  private readonly upstreamSeconds: Histogram<'route'>

  constructor(registry: Registry) {
    const registers = [registry]
    this.requests = new Counter({
      name: 'slipway_proxy_requests_total',
      help: 'Requests the reverse proxy handled, by route ("-" when none matched) and outcome: the status class the origin answered (2xx, 3xx, 4xx, 5xx) or what the proxy answered itself (no_route, bad_request, origin_unreachable, origin_timeout, origin_tls_error, client_aborted, origin_aborted).',
      labelNames: ['route', 'outcome'],
      registers,
    })
    this.upstreamSeconds = new Histogram({
      name: 'slipway_proxy_upstream_response_seconds',
      help: 'Time from receiving a request to the origin answering its headers, by route.',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
  }

  count(route: string, outcome: string): void {
    this.requests.inc({ route, outcome })
  }

  observeUpstream(route: string, seconds: number): void {
    this.upstreamSeconds.observe({ route }, seconds)
  }
}

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx']
export const statusClass = (status: number) => CLASSES[Math.floor(status / 100) - 1] ?? 'other'
