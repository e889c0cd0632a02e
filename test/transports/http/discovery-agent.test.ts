/**
 * The discovery agent as a machine runs it: generic/discovery-agent.sh rendered by a real engine
 * (GET /generic), run by a real `sh` with curl, reporting this host's facts, waiting for its role and
 * install slot, fetching its role config and installing it. What would touch the host is replaced:
 * its identity comes from SLIPWAY_UUID / SLIPWAY_BOOT_MAC (the host's own NIC), its disk is a file
 * (the lab-raw installer), and `reboot` is a stub on a PATH without /sbin and /usr/sbin (where the
 * real one is). The engine sits behind a loopback proxy that drops success reports on purpose: the
 * agent must retry its report before it reboots (a lost report would leave the slot to time out as
 * install_failed), and give up after its tries rather than never rebooting.
 */
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { auth, removeTree, startTestEngine } from '../../helpers/engine.ts'

const hostNic = Object.values(os.networkInterfaces())
  .flat()
  .find((entry) => entry && !entry.internal && entry.family === 'IPv4' && entry.mac !== '00:00:00:00:00:00')

/** A proxy to the engine that answers the first `dropReports` success reports 503 and counts them all. */
async function flakyProxy(t: Test, engineUrl: string, dropReports: number) {
  const reports: number[] = []
  const server = http.createServer(async (incoming, outgoing) => {
    const chunks: Buffer[] = []
    for await (const chunk of incoming) chunks.push(chunk as Buffer)
    if (incoming.method === 'POST' && incoming.url!.startsWith('/lifecycle/install/success')) {
      reports.push(Date.now())
      if (reports.length <= dropReports) return void outgoing.writeHead(503, { 'content-type': 'text/plain' }).end('dropped by the test proxy\n')
    }
    const answer = await request(`${engineUrl}${incoming.url}`, { method: incoming.method as 'GET', headers: { 'content-type': incoming.headers['content-type'] ?? 'application/json' }, body: chunks.length ? Buffer.concat(chunks) : null })
    outgoing.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? 'text/plain') }).end(Buffer.from(await answer.body.arrayBuffer()))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, reports }
}

function runAgent(script: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', [script], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

t.test('the agent retries its success report before it reboots, and reboots after its tries all the same', { skip: hostNic ? false : 'this host has no NIC with an IPv4 address to stand for the boot NIC' }, async (t) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-agent-'))
  t.teardown(() => removeTree(scratch))
  const stubs = path.join(scratch, 'bin')
  mkdirSync(stubs)
  const rebooted = path.join(scratch, 'rebooted')
  writeFileSync(path.join(stubs, 'reboot'), `#!/bin/sh\necho "$@" >> '${rebooted}'\nexit 0\n`)
  chmodSync(path.join(stubs, 'reboot'), 0o755)

  // Each machine meets an engine of its own: both stand for the host's one NIC, and a MAC is one machine's.
  const machine = async (n: number, dropReports: number, tries: number) => {
    // The agent reaches the engine through the proxy, as machines behind NAT do: its requests do not come
    // from the boot address it reports, so secret-bearing configs are not bound to it (the NAT setting).
    const { engine, dataDir } = await startTestEngine({
      env: { SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0', SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0', SLIPWAY_MACHINES_BIND_SECRETS_TO_ADDRESS: 'false' },
    })
    t.teardown(async () => {
      await engine.close()
      removeTree(path.dirname(dataDir))
    })
    const engineUrl = await engine.start()
    const admin = (method: 'GET' | 'POST', url: string, payload?: object) => engine.app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) })
    t.equal((await admin('POST', '/api/v1/flavors', { name: 'one', control_plane_count: 1, nodes_max: 1 })).statusCode, 201)
    t.equal((await admin('POST', '/api/v1/clusters', { name: 'solo', flavor: 'one' })).statusCode, 201)
    const uuid = `a9e70000-0000-4000-8000-${String(n).padStart(12, '0')}`
    const proxy = await flakyProxy(t, engineUrl, dropReports)
    const rendered = await request(`${engineUrl}/generic?uuid=${uuid}&mac=${hostNic!.mac.replaceAll(':', '-')}`)
    t.equal(rendered.statusCode, 200)
    const script = path.join(scratch, `agent-${n}.sh`)
    writeFileSync(script, await rendered.body.text())
    const disk = path.join(scratch, `disk-${n}.img`)
    writeFileSync(disk, Buffer.alloc(64 * 1024))
    const run = runAgent(script, {
      PATH: `${stubs}:/usr/bin:/bin`,
      HOME: scratch,
      SLIPWAY_URL: proxy.url,
      SLIPWAY_UUID: uuid,
      SLIPWAY_BOOT_MAC: hostNic!.mac,
      SLIPWAY_INSTALLER: 'lab-raw',
      SLIPWAY_INSTALL_DISK: disk,
      SLIPWAY_WORK_DIR: path.join(scratch, `work-${n}`),
      SLIPWAY_REPORT_RETRY_SECONDS: '0.2',
      SLIPWAY_REPORT_TRIES: String(tries),
    })
    // The agent asks for a slot every 5 s until the scheduler gives it a role: schedule once it is discovered.
    for (let waited = 0; waited < 200; waited++) {
      if ((await admin('GET', `/api/v1/machines/${uuid}`)).statusCode === 200) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await admin('POST', '/api/v1/scheduler/run')
    return { uuid, proxy, disk, admin, result: await run }
  }

  // Two reports dropped, the third lands: installed, then the reboot.
  const first = await machine(1, 2, 60)
  t.equal(first.result.code, 0, first.result.output)
  t.equal(first.proxy.reports.length, 3, 'the success report was sent three times: two dropped, the third answered')
  t.match(first.result.output, /POST \/lifecycle\/install\/success failed; retrying[\s\S]*POST \/lifecycle\/install\/success failed; retrying[\s\S]*installed; rebooting/)
  t.equal((await first.admin('GET', `/api/v1/machines/${first.uuid}`)).json().state, 'installed', 'the engine recorded the install')
  t.match(readFileSync(first.disk).subarray(0, 512).toString(), /^SLIPWAY-LAB-DISK 1 \d+ [0-9a-f]{64}\n/, 'the role config was written to the disk')
  t.equal(readFileSync(rebooted, 'utf8'), '-f\n', 'and only then the reboot (reboot -f, the stub)')

  // A node whose reports never land: it gives up after its tries and reboots anyway (the slot times out on the engine).
  const second = await machine(2, 1000, 3)
  t.equal(second.result.code, 0, second.result.output)
  t.equal(second.proxy.reports.length, 3, 'three tries, as SLIPWAY_REPORT_TRIES says')
  t.match(second.result.output, /could not report the install; rebooting anyway/)
  t.equal((await second.admin('GET', `/api/v1/machines/${second.uuid}`)).json().state, 'installing', 'the engine never heard: the machine stays installing until its slot times out')
  t.equal(readFileSync(rebooted, 'utf8'), '-f\n-f\n')
})
