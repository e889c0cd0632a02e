import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { KeyPairCertificate } from '../../src/core/clusters/cluster-pki.ts'

/** What the double answers one request with: a status and a body (sent as given), or no answer at all. */
export type DoubleAnswer = { status: number; body: string } | 'hang'

/**
 * A stand-in for an etcd member's client port: HTTPS with mutual TLS like etcd's (its serving
 * certificate, clients must present one under `clientCa`), answering each `METHOD /path` as the test
 * scripts it, etcd's own answers or anything else (not JSON, wrong types, too large, nothing). What
 * a member that is broken, or not etcd at all, would send the engine.
 */
export class EtcdServerDouble {
  readonly requests: string[] = []
  private readonly hanging = new Set<() => void>()

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(options: { serving: KeyPairCertificate; clientCa: string; host?: string; port?: number; answer: (request: string, body: string) => DoubleAnswer }): Promise<EtcdServerDouble> {
    let double!: EtcdServerDouble
    const server = createServer({ cert: options.serving.certificatePem, key: options.serving.privateKeyPem, ca: options.clientCa, requestCert: true, rejectUnauthorized: true }, (request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const name = `${request.method} ${request.url}`
        double.requests.push(name)
        const answer = options.answer(name, Buffer.concat(chunks).toString())
        if (answer === 'hang') {
          // Held until the double closes: a member that accepted the request and never answers.
          double.hanging.add(() => response.destroy())
          return
        }
        response.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body)
      })
    })
    await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve))
    const { address, port } = server.address() as AddressInfo
    double = new EtcdServerDouble(server, `https://${address}:${port}`)
    return double
  }

  async close(): Promise<void> {
    for (const release of this.hanging) release()
    this.server.closeAllConnections()
    await new Promise((resolve) => this.server.close(resolve))
  }
}

/** etcd 3.4's answers, as captured from a real member (uint64 as strings, zero values left out). */
export const etcdAnswers = {
  memberList: (members: { id: string; name: string; clientUrl: string }[]) =>
    JSON.stringify({
      header: { cluster_id: '8921253049440409136', member_id: members[0]?.id ?? '0', raft_term: '2' },
      members: members.map((member) => ({ ID: member.id, name: member.name, peerURLs: [member.clientUrl.replace(/:\d+$/, ':2380')], clientURLs: [member.clientUrl] })),
    }),
  status: (fields: { leader?: string; raftIndex?: string; raftAppliedIndex?: string; errors?: string[] } = {}) =>
    JSON.stringify({ header: { cluster_id: '8921253049440409136', member_id: '1', revision: '1', raft_term: '2' }, version: '3.4.23', dbSize: '24576', raftTerm: '2', dbSizeInUse: '16384', raftIndex: '4', raftAppliedIndex: '4', ...fields }),
  health: (healthy: boolean) => JSON.stringify({ health: String(healthy) }),
  error: (message: string, code: number) => JSON.stringify({ error: message, message, code }),
}
