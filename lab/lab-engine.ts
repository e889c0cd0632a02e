/**
 * The engine as the lab runs it: `node --import tsx src/main.ts` inside the lab namespace, the only
 * DHCP (full mode), TFTP and HTTP server on the bridge, with its log (pino JSON lines) kept for
 * evidence; plus router advertisements (dnsmasq in RA-only mode, no DHCP) so that iPXE does not
 * wait ~13 s for IPv6 on every DHCP round.
 */
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { findInPath, waitFor, type LabNetwork, type LabProcess } from './lab-network.ts'

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
export const LAB_HTTP_PORT = 8080

export interface LogLine {
  raw: string
  entry: Record<string, unknown>
}

export interface LabEngine {
  process: LabProcess
  url: string
  token: string
  /** Every JSON line the engine printed so far, in order. */
  lines(): LogLine[]
  /** Calls the admin API from inside the namespace (curl); throws on a non-2xx answer. */
  api<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', route: string, body?: unknown): Promise<T>
  /** Any machine-facing GET from inside the namespace; returns status and body. */
  get(route: string): Promise<{ status: number; body: string }>
  stop(): Promise<number | string | null>
}

export interface LabContent {
  profilesDir: string
  ipxeDir: string
  ignitionDir: string
  genericDir: string
  assetsDir: string
}

export function parseLines(text: string): LogLine[] {
  const lines: LogLine[] = []
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('{')) continue
    try {
      lines.push({ raw, entry: JSON.parse(raw) as Record<string, unknown> })
    } catch {
      // a partial last line
    }
  }
  return lines
}

export interface LabEngineOptions {
  lab: LabNetwork
  /** Scratch folder: the engine's data folder goes in `<scratch>/var`. */
  scratch: string
  content: LabContent
  token: string
  /** Extra SLIPWAY_* settings. */
  env?: Record<string, string>
}

export async function startLabEngine({ lab, scratch, content, token, env = {} }: LabEngineOptions): Promise<LabEngine> {
  mkdirSync(path.join(scratch, 'var'), { recursive: true })
  const url = `http://${lab.bridgeAddress}:${LAB_HTTP_PORT}`
  const proc = lab.spawn('engine', process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: process.env.HOME ?? '/root',
      SLIPWAY_DATA_DIR: path.join(scratch, 'var'),
      SLIPWAY_HTTP_HOST: '0.0.0.0',
      SLIPWAY_HTTP_PORT: String(LAB_HTTP_PORT),
      SLIPWAY_DNS_PORT: '0',
      SLIPWAY_HTTP_PUBLIC_URL: url,
      SLIPWAY_DHCP_MODE: 'full',
      SLIPWAY_DHCP_SERVER_ADDRESS: lab.bridgeAddress,
      SLIPWAY_DHCP_SUBNET: lab.subnet,
      SLIPWAY_DHCP_RANGE_START: `${lab.prefix}.100`,
      SLIPWAY_DHCP_RANGE_END: `${lab.prefix}.199`,
      SLIPWAY_TFTP_ENABLED: 'true',
      SLIPWAY_TFTP_IPXE_DIR: '/usr/lib/ipxe',
      SLIPWAY_CONTENT_PROFILES_DIR: content.profilesDir,
      SLIPWAY_CONTENT_IPXE_DIR: content.ipxeDir,
      SLIPWAY_CONTENT_IGNITION_DIR: content.ignitionDir,
      SLIPWAY_CONTENT_GENERIC_DIR: content.genericDir,
      SLIPWAY_CONTENT_ASSETS_DIR: content.assetsDir,
      SLIPWAY_AUTH_ADMIN_TOKEN: token,
      SLIPWAY_LOG_LEVEL: 'info',
      ...env,
    },
  })
  const lines = () => parseLines(proc.stdout())
  const logged = (pattern: RegExp) => lines().some(({ entry }) => pattern.test(String(entry.msg ?? '')))
  const exitedEarly = () => (proc.hasExited() ? `the engine exited: ${proc.stderr().trim() || proc.stdout().slice(-2000)}` : undefined)
  await waitFor('the engine to serve HTTP ("slipway is serving")', () => (logged(/slipway is serving/) ? true : undefined), 30_000, { abort: exitedEarly })
  await waitFor('the engine to log that its DHCP server listens', () => (logged(/dhcp.*listening/i) ? true : undefined), 5_000, { abort: exitedEarly })
  await waitFor('the engine to log that its TFTP server listens', () => (logged(/tftp.*listening/i) ? true : undefined), 5_000, { abort: exitedEarly })

  const curl = async (args: string[]) => {
    const { stdout } = await lab.exec('curl', ['--silent', '--show-error', '--max-time', '30', '--write-out', '\n%{http_code}', ...args])
    const cut = stdout.lastIndexOf('\n')
    return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) }
  }
  return {
    process: proc,
    url,
    token,
    lines,
    async api<T>(method: string, route: string, body?: unknown): Promise<T> {
      const args = ['-X', method, '-H', `Authorization: Bearer ${token}`]
      if (body !== undefined) args.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(body))
      const answer = await curl([...args, `${url}${route}`])
      if (answer.status < 200 || answer.status > 299) throw new Error(`${method} ${route}: ${answer.status} ${answer.body}`)
      return (answer.body ? JSON.parse(answer.body) : undefined) as T
    },
    get: (route) => curl([`${url}${route}`]),
    async stop() {
      await proc.stop(12_000)
      return proc.exited
    },
  }
}

/** Router advertisements only (no DHCPv4, no DHCPv6, no DNS), so that iPXE does not wait for IPv6. */
export function startRouterAdvertisements(lab: LabNetwork, scratch: string): LabProcess | undefined {
  if (!findInPath('dnsmasq')) return undefined
  return lab.spawn('dnsmasq (RA only)', 'dnsmasq', [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--port=0',
    `--pid-file=${path.join(scratch, 'dnsmasq.pid')}`,
    '--log-facility=-',
    `--interface=${lab.bridge}`,
    '--bind-interfaces',
    '--enable-ra',
    `--dhcp-range=::,constructor:${lab.bridge},ra-only`,
  ])
}
