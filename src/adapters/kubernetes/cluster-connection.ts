import { KubeConfig, Observable, type ObservableMiddleware, type RequestContext } from '@kubernetes/client-node'
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

/**
 * client-node 2.x builds a new undici Agent for every request of a TLS kubeconfig, so every call would
 * open a new connection and TLS handshake. This middleware keeps the first Agent for all requests of
 * one cluster (closing the unused ones) and bounds each request with a timeout.
 */
export class SharedConnectionPool {
  private dispatcher: ReturnType<RequestContext['getDispatcher']>

  middleware(timeoutMs: number): ObservableMiddleware {
    return {
      pre: (context) => {
        context.setSignal(AbortSignal.timeout(timeoutMs))
        const dispatcher = context.getDispatcher()
        if (!this.dispatcher) this.dispatcher = dispatcher
        else if (dispatcher && dispatcher !== this.dispatcher) {
          context.setDispatcher(this.dispatcher)
          dispatcher.close().catch(() => undefined)
        }
        return new Observable(Promise.resolve(context))
      },
      post: (response) => new Observable(Promise.resolve(response)),
    }
  }

  async close(): Promise<void> {
    const dispatcher = this.dispatcher
    this.dispatcher = undefined
    await dispatcher?.close().catch(() => undefined)
  }
}
