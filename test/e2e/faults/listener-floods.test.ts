/**
 * No listener can take the engine down: the whole engine (`node --import tsx src/main.ts`, the README's
 * `npm start` without npm) runs under `ulimit -n 1024` in a network namespace of its own, serving
 * HTTP, DHCP (full), TFTP and DNS on its address; an attacker in another namespace on the same bridge
 * sends 50,000 malformed datagrams each to DHCP, TFTP and DNS and 20,000 TFTP read requests it never
 * acknowledges, then holds 2,000 idle HTTP and 300 idle DNS-over-TCP connections. The engine must
 * still be running, answer /healthz and a TCP DNS query within 100 ms under the idle flood, and
 * answer the real curl (HTTP, TFTP) and dig (DNS, UDP and TCP) correctly afterwards.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ADMIN_TOKEN, copySampleContent, REPO_ROOT, removeTree } from '../../helpers/engine.ts'
import { scratchDir } from '../../helpers/dhcp-lab.ts'
import { createLab, randomLabSubnet } from '../../helpers/netns.ts'
import { sleep } from '../../helpers/wait.ts'

const DATAGRAMS = Number(process.env.SLIPWAY_FLOOD_DATAGRAMS ?? 50_000)
const RRQS = Number(process.env.SLIPWAY_FLOOD_RRQS ?? 20_000)
const IDLE_HTTP = 2_000
const IDLE_DNS = 300
const ZONE = 'apps.slipway.internal'
const net = randomLabSubnet()
const ENGINE = `${net}.1`
const ATTACKER = `${net}.2`
const PORTS = { http: 8080, dns: 53, tftp: 69, dhcp: 67 }

interface Step {
  step: string
  [field: string]: unknown
}

t.test('50,000 malformed datagrams per UDP listener, 20,000 RRQs, 2,300 idle connections at ulimit -n 1024: everything still answers', { timeout: 600_000 }, async (t) => {
  const scratch = scratchDir('slipway-floods-')
  const lab = createLab([{ name: 'engine', address: `${ENGINE}/24` }, { name: 'attacker', address: `${ATTACKER}/24` }])
  t.teardown(() => {
    lab.destroy()
    removeTree(scratch)
  })
  const content = path.join(scratch, 'content')
  copySampleContent(content)
  const ipxeDir = path.join(scratch, 'ipxe-binaries')
  mkdirSync(ipxeDir)
  const binary = randomBytes(96 * 1024)
  writeFileSync(path.join(ipxeDir, 'undionly.kpxe'), binary)

  const engine = lab.spawn('engine', 'sh', ['-c', 'ulimit -n 1024 && exec node --import tsx src/main.ts'], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      SLIPWAY_DATA_DIR: path.join(scratch, 'var'),
      SLIPWAY_CONTENT_PROFILES_DIR: path.join(content, 'profiles'),
      SLIPWAY_CONTENT_IGNITION_DIR: path.join(content, 'ignition'),
      SLIPWAY_CONTENT_IPXE_DIR: path.join(content, 'ipxe'),
      SLIPWAY_CONTENT_GENERIC_DIR: path.join(content, 'generic'),
      SLIPWAY_CONTENT_ASSETS_DIR: path.join(content, 'assets'),
      SLIPWAY_AUTH_ADMIN_TOKEN: ADMIN_TOKEN,
      SLIPWAY_LOG_LEVEL: 'warn',
      SLIPWAY_HTTP_HOST: '0.0.0.0',
      SLIPWAY_HTTP_PORT: String(PORTS.http),
      SLIPWAY_DNS_HOST: ENGINE,
      SLIPWAY_DNS_PORT: String(PORTS.dns),
      SLIPWAY_TFTP_ENABLED: 'true',
      SLIPWAY_TFTP_HOST: ENGINE,
      SLIPWAY_TFTP_PORT: String(PORTS.tftp),
      SLIPWAY_TFTP_IPXE_DIR: ipxeDir,
      SLIPWAY_DHCP_MODE: 'full',
      SLIPWAY_DHCP_SERVER_ADDRESS: ENGINE,
      SLIPWAY_DHCP_SUBNET: `${net}.0/24`,
      SLIPWAY_DHCP_RANGE_START: `${net}.100`,
      SLIPWAY_DHCP_RANGE_END: `${net}.200`,
    },
  })
  let output = ''
  engine.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-200_000)))
  engine.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-200_000)))
  let passed = false
  t.teardown(() => {
    if (!passed) t.comment(`--- engine output\n${output.slice(-6000)}`)
  })
  const inAttacker = (command: string, args: string[]) => lab.run('attacker', command, args)
  const healthy = () => {
    try {
      return inAttacker('curl', ['--silent', '--max-time', '2', `http://${ENGINE}:${PORTS.http}/healthz`]).includes('"ok"')
    } catch {
      return false
    }
  }
  for (let attempt = 0; attempt < 300 && !healthy(); attempt++) {
    if (engine.exitCode !== null) throw new Error(`the engine exited (${engine.exitCode}): ${output.slice(-3000)}`)
    await sleep(100)
  }
  t.ok(healthy(), 'the engine serves in its namespace, limited to 1,024 descriptors')
  t.match(lab.run('engine', 'sh', ['-c', `grep 'Max open files' /proc/${engine.pid}/limits`]), /\s1024\s+1024\s/, 'its soft and hard limit are 1,024')

  // 40 attacker addresses: 2,000 idle connections stay under each per-client cap, so the engine's
  // total cap (fitted to 1,024 descriptors) is what the flood meets.
  const sources = Array.from({ length: 40 }, (_, index) => `${net}.${10 + index}`)
  for (const source of sources) lab.run('attacker', 'ip', ['addr', 'add', `${source}/24`, 'dev', 'eth0'])
  const attacker = lab.spawn('attacker', process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/helpers/flood-attacker-child.ts')], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TARGET: ENGINE,
      SOURCES: sources.join(','),
      HTTP_PORT: String(PORTS.http),
      DNS_PORT: String(PORTS.dns),
      TFTP_PORT: String(PORTS.tftp),
      DHCP_PORT: String(PORTS.dhcp),
      TFTP_FILE: 'undionly.kpxe',
      ZONE,
      DATAGRAMS: String(DATAGRAMS),
      RRQS: String(RRQS),
      IDLE_HTTP: String(IDLE_HTTP),
      IDLE_DNS: String(IDLE_DNS),
    },
  })
  let attackOutput = ''
  attacker.stdout!.on('data', (chunk: Buffer) => (attackOutput += chunk.toString()))
  attacker.stderr!.on('data', (chunk: Buffer) => (attackOutput += chunk.toString()))
  const exitCode = await new Promise<number | null>((resolve) => attacker.once('exit', (code) => resolve(code)))
  t.equal(exitCode, 0, `the attacker ran to the end${exitCode === 0 ? '' : `: ${attackOutput.slice(-2000)}`}`)
  const steps = attackOutput.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Step)
  const step = (name: string) => steps.filter((entry) => entry.step === name)
  for (const sent of step('malformed')) t.comment(`${sent.listener}: ${sent.sent} malformed datagrams in ${sent.ms} ms`)
  t.same(step('malformed').map((sent) => [sent.listener, sent.sent]), [['dhcp', DATAGRAMS], ['tftp', DATAGRAMS], ['dns', DATAGRAMS]], 'every malformed datagram was sent')
  t.match(step('rrq-flood'), [{ sent: RRQS }], `${RRQS} read requests sent, none acknowledged`)
  t.match(step('after-floods'), [{ healthz: { ok: true }, dns: { ok: true } }], '/healthz and a TCP DNS query answered after the floods')
  const underIdle = step('under-idle')[0] as { healthz: { ok: boolean; ms: number }; dns: { ok: boolean; ms: number }; idle: unknown } | undefined
  t.comment(`under ${IDLE_HTTP} idle HTTP and ${IDLE_DNS} idle DNS-TCP connections: ${JSON.stringify(underIdle)}`)
  t.match(underIdle?.idle, { http: { failed: 0 }, dns: { failed: 0 } }, 'every idle connection was accepted (then evicted as others came)')
  t.ok(underIdle?.healthz.ok && underIdle.healthz.ms <= 100, `/healthz answered within 100 ms (${underIdle?.healthz.ms.toFixed?.(1)} ms)`)
  t.ok(underIdle?.dns.ok && underIdle.dns.ms <= 100, `a TCP DNS query answered within 100 ms (${underIdle?.dns.ms} ms)`)
  t.equal(engine.exitCode, null, 'the engine process is still running')

  // Afterwards, the real clients, each answered correctly.
  t.match(inAttacker('curl', ['--silent', '--show-error', '--max-time', '5', `http://${ENGINE}:${PORTS.http}/healthz`]), /"status":"ok"/, 'curl: /healthz')
  const ipxe = inAttacker('curl', ['--silent', '--show-error', '--max-time', '5', `http://${ENGINE}:${PORTS.http}/ipxe?mac=52:54:00:00:00:01`])
  t.match(ipxe, /^#!ipxe\n/, 'curl: an iPXE script')
  for (const transport of ['+notcp', '+tcp']) {
    const soa = inAttacker('dig', [`@${ENGINE}`, '-p', String(PORTS.dns), ZONE, 'SOA', transport, '+norecurse', '+time=3', '+tries=2'])
    t.match(soa, /status: NOERROR[\s\S]*flags: qr aa[\s\S]*IN\s+SOA\s+ns1\./, `dig ${transport}: the zone's SOA, authoritative`)
  }
  const downloaded = path.join(scratch, 'downloaded.kpxe')
  lab.run('attacker', 'curl', ['--silent', '--show-error', '--max-time', '20', '--tftp-blksize', '1468', '-o', downloaded, `tftp://${ENGINE}:${PORTS.tftp}/undionly.kpxe`])
  const digest = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')
  t.equal(digest(readFileSync(downloaded)), digest(binary), 'curl tftp://: the file, byte for byte')
  const metrics = inAttacker('curl', ['--silent', '--max-time', '5', `http://${ENGINE}:${PORTS.http}/metrics`])
  t.match(metrics, /slipway_tftp_refusals_total\{reason="[a-z-]+"\} [1-9]/, 'the TFTP refusals were counted')
  t.match(metrics, /slipway_dhcp_malformed_total\{code="[A-Z_]+"\} [1-9]/, 'the malformed DHCP datagrams were counted')
  t.equal(engine.exitCode, null, 'and it is still running')
  passed = true
})
