import { Agent, request } from 'undici'

export interface ReadyzTarget {
  ip: string
  port: number
  /** The name the API server's certificate must carry (the cluster's endpoint). */
  serverName: string
  /** The CA that must have signed it. */
  caPem: string
}

/**
 * Whether one control-plane member's API server answers `GET /readyz` with 200 `ok`, asked at the
 * member's own address (not through the endpoint, which would pick any member) and checked as a
 * client of the endpoint checks it: the certificate chains to the cluster CA and names the endpoint.
 * Kubernetes lets anyone read /readyz (system:public-info-viewer), so no credential is sent.
 */
export async function probeReadyz(target: ReadyzTarget, timeoutMs: number): Promise<boolean> {
  const agent = new Agent({ connect: { ca: target.caPem, servername: target.serverName, timeout: timeoutMs }, pipelining: 0 })
  try {
    const answer = await request(`https://${target.ip}:${target.port}/readyz`, { dispatcher: agent, signal: AbortSignal.timeout(timeoutMs), headers: { connection: 'close' } })
    const body = (await answer.body.text()).trim()
    return answer.statusCode === 200 && body === 'ok'
  } catch {
    return false
  } finally {
    await agent.destroy().catch(() => undefined)
  }
}
