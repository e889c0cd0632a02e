import type { LookupFunction } from 'node:net'
import { createSecureContext } from 'node:tls'
import { KubeConfig, Observable, type ObservableMiddleware } from '@kubernetes/client-node'
import { Agent } from 'undici'
import type { ClusterConnection } from '../../core/registry/registered-cluster.ts'

/** A kubeconfig for one registered cluster, built in memory from its connection (never written anywhere). */
export function kubeConfigOf(connection: ClusterConnection): KubeConfig {
  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')
  const config = new KubeConfig()
  const { credential } = connection
  config.loadFromOptions({
    clusters: [{ name: connection.name, server: connection.server, skipTLSVerify: false, ...(connection.caBundle ? { caData: b64(connection.caBundle) } : {}) }],
    users: [{ name: 'slipway', ...(credential.type === 'token' ? { token: credential.token } : { certData: b64(credential.certificatePem), keyData: b64(credential.keyPem) }) }],
    contexts: [{ name: 'slipway', cluster: connection.name, user: 'slipway' }],
    currentContext: 'slipway',
  })
  return config
}

export interface ConnectionPoolOptions {
  /** Idle connections are kept this long: longer than the time between two uses (a health sweep interval). */
  keepAliveMs: number
  /** How host names are resolved (the engine's own names first, see engine-names.ts); the system resolver by default. */
  lookup?: LookupFunction
}

/**
 * One connection pool per cluster, for every request to it. client-node 2.x builds a new undici
 * Agent, and so a new TLS context and connection, for every request of a TLS kubeconfig; at a few
 * hundred clusters the handshakes are most of the engine's CPU. This pool builds the TLS context once
 * (the cluster CA, and the client certificate when that is the credential), keeps idle connections
 * for `keepAliveMs`, and its middleware puts it in place of the Agent client-node made (closing that
 * one unused). Each request is also bounded by a timeout.
 */
export class SharedConnectionPool {
  readonly agent: Agent

  constructor(connection: ClusterConnection, options: ConnectionPoolOptions) {
    const { credential } = connection
    const secureContext = createSecureContext({
      ...(connection.caBundle ? { ca: connection.caBundle } : {}),
      ...(credential.type === 'client_certificate' ? { cert: credential.certificatePem, key: credential.keyPem } : {}),
    })
    this.agent = new Agent({
      connect: { secureContext, keepAlive: true, keepAliveInitialDelay: 30_000, ...(options.lookup ? { lookup: options.lookup } : {}) },
      keepAliveTimeout: options.keepAliveMs,
      keepAliveMaxTimeout: options.keepAliveMs,
    })
  }

  /** Headers that authenticate a request made outside client-node (the bearer token; a certificate is in the TLS context). */
  static authorization(connection: ClusterConnection): Record<string, string> {
    return connection.credential.type === 'token' ? { authorization: `Bearer ${connection.credential.token}` } : {}
  }

  middleware(timeoutMs: number): ObservableMiddleware {
    return {
      pre: (context) => {
        context.setSignal(AbortSignal.timeout(timeoutMs))
        const made = context.getDispatcher()
        context.setDispatcher(this.agent)
        if (made && made !== this.agent) made.close().catch(() => undefined)
        return new Observable(Promise.resolve(context))
      },
      post: (response) => new Observable(Promise.resolve(response)),
    }
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => undefined)
  }
}
