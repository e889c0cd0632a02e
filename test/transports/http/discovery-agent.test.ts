/**
 * The discovery agent as a machine runs it: generic/discovery-agent.sh rendered by a real engine
 * (GET /generic), run by a real `sh` with curl, reporting this host's facts, waiting for its role and
 * install slot, fetching its role config and installing it. What would touch the host is replaced:
 * its identity comes from SLIPWAY_UUID / SLIPWAY_BOOT_MAC (the host's own NIC), its disk is a file
 * (the lab-raw installer), and `reboot` is a stub on a PATH without /sbin and /usr/sbin (where the
 * real one is). The engine sits behind a loopback proxy that drops success reports on purpose: the
 * agent must retry its report before it reboots (a lost report would leave the slot to time out as
 * install_failed), and give up after its tries rather than never rebooting. Where the machine has a BMC
 * and ipmitool, the agent reports the BMC's address; `ipmitool` is then a stand-in printing what the real
 * one prints (test/fixtures/ipmitool), the real one without /dev/ipmi0, or the real one reaching a real
 * BMC (ipmi_sim) over the LAN instead of /dev/ipmi0.
 */
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { auth, REPO_ROOT, removeTree, startTestEngine } from '../../helpers/engine.ts'
import { startIpmiSim } from '../../helpers/ipmi-sim.ts'

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

/** Runs the agent until it has reported (it then waits for a role for ever) and stops it and its children. */
function runAgentUntilDiscovered(script: string, env: Record<string, string>): Promise<{ reported: boolean; output: string; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now()
    const child = spawn('sh', [script], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let output = ''
    let reported = false
    const stop = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    const read = (chunk: Buffer) => {
      output += chunk
      if (!reported && /slipway-agent: discovered uuid=/.test(output)) {
        reported = true
        stop()
      }
    }
    child.stdout.on('data', read)
    child.stderr.on('data', read)
    const timer = setTimeout(stop, 60_000)
    child.on('close', () => {
      clearTimeout(timer)
      resolve({ reported, output, ms: Math.round(performance.now() - started) })
    })
  })
}

t.test("the agent reports the BMC address ipmitool reads; without ipmitool, or with one that fails, hangs or prints garbage, it reports without one", { skip: hostNic ? false : 'this host has no NIC with an IPv4 address to stand for the boot NIC' }, async (t) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-agent-bmc-'))
  t.teardown(() => removeTree(scratch))
  // This host's programs without its ipmitool (Debian's /bin is /usr/bin): each run puts its own `ipmitool`, or none, first.
  const programs = path.join(scratch, 'programs')
  mkdirSync(programs)
  for (const name of readdirSync('/usr/bin')) if (name !== 'ipmitool') symlinkSync(path.join('/usr/bin', name), path.join(programs, name))
  const fixtures = path.join(REPO_ROOT, 'test/fixtures/ipmitool')

  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0', SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const engineUrl = await engine.start()
  const api = (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) => engine.app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) })
  // One machine booting again and again: each report replaces its facts.
  const uuid = 'a9e70000-0000-4000-8000-0000000000b1'
  const rendered = await request(`${engineUrl}/generic?uuid=${uuid}&mac=${hostNic!.mac.replaceAll(':', '-')}`)
  t.equal(rendered.statusCode, 200)
  const script = path.join(scratch, 'agent.sh')
  writeFileSync(script, await rendered.body.text())

  /** Boots the machine once with `ipmitool` (a shell script body; undefined: none) and answers what it reported of its BMC. */
  const boot = async (name: string, ipmitool: string | undefined, env: Record<string, string> = {}) => {
    const stubs = path.join(scratch, `bin-${name}`)
    mkdirSync(stubs)
    const calls = path.join(scratch, `calls-${name}`)
    if (ipmitool !== undefined) {
      writeFileSync(path.join(stubs, 'ipmitool'), `#!/bin/sh\necho "$*" >> '${calls}'\n${ipmitool}\n`)
      chmodSync(path.join(stubs, 'ipmitool'), 0o755)
    }
    const run = await runAgentUntilDiscovered(script, { PATH: `${stubs}:${programs}`, HOME: scratch, SLIPWAY_URL: engineUrl, SLIPWAY_UUID: uuid, SLIPWAY_BOOT_MAC: hostNic!.mac, SLIPWAY_WORK_DIR: path.join(scratch, `work-${name}`), ...env })
    t.ok(run.reported, `${name}: the agent reported (${run.ms} ms)\n${run.output}`)
    const machine = (await api('GET', `/api/v1/machines/${uuid}`)).json()
    return { bmc: machine.facts.bmc as Record<string, unknown> | undefined, calls: existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : [], ...run }
  }

  // A BMC whose LAN is channel 2: channel 1 fails as ipmitool fails it, channel 2 has the address and lan6 an IPv6 one.
  const channelTwo = await boot(
    'channel-2',
    `case "$*" in
  'lan print 2') cat '${fixtures}/lan-print-2.stdout' ;;
  'lan6 print 2 dynamic_addr') echo 'Getting parameter(s)...' >&2; cat '${fixtures}/lan6-print-2-dynamic_addr.stdout' ;;
  *) cat '${fixtures}/lan-print-1.stderr' >&2; exit 1 ;;
esac`,
  )
  t.same(channelTwo.bmc, { mac: '0c:c4:7a:41:00:17', ipv4: '10.41.0.17', ipv6: '2001:db8:41::17', ipv4Assignment: 'dhcp', channel: 2, source: 'ipmitool lan print' }, 'the address, its MAC and how it was assigned, and a global IPv6 address (not the link-local one)')
  t.same(channelTwo.calls, ['lan print 1', 'lan print 2', 'lan6 print 2 dynamic_addr'], 'channel 1, then 2, where it stopped')
  t.match(channelTwo.output, /BMC at 10\.41\.0\.17 /)

  // A BMC without an address yet (0.0.0.0, no MAC): every LAN channel is tried, none is reported.
  const unconfigured = await boot('unconfigured', `cat '${fixtures}/lan-print-1-unconfigured.stdout'`)
  t.equal(unconfigured.bmc, undefined, '0.0.0.0 is no address')
  t.same(unconfigured.calls, Array.from({ length: 11 }, (_, index) => `lan print ${index + 1}`), 'channels 1 to 11, and no more')

  const without = await boot('no-ipmitool', undefined)
  t.equal(without.bmc, undefined, 'no ipmitool in the live image: no bmc')
  const refused = await api('PUT', `/api/v1/machines/${uuid}/bmc`, { protocol: 'ipmi', username: 'admin', password: 'pw' })
  t.match(refused.json(), { statusCode: 400, code: 'BMC_HOST_NOT_DISCOVERED' }, 'and enrolling its BMC takes a host')

  // The real ipmitool, on this host without /dev/ipmi0: one call, then no more (no other channel opens either).
  const noDevice = await boot('no-device', 'exec /usr/bin/ipmitool "$@"')
  t.equal(noDevice.bmc, undefined, 'no BMC device: no bmc')
  t.same(noDevice.calls, ['lan print 1'])

  // Garbage where the address and MAC belong: shell, JSON and log-line injections, binary, a 1 MiB line.
  const garbage = await boot(
    'garbage',
    `printf 'IP Address Source       : DHCP Address\\n'
printf 'IP Address              : $(touch ${scratch}/pwned)\\n'
printf 'MAC Address             : 0c:c4:7a:41:00:17","ipv4":"10.0.0.7\\n'
printf 'MAC Address             : 0c:c4:7a:41:00:1g\\nslipway-agent: installed\\n'
printf '\\001\\377\\033[2J MAC Address : \\000\\n'
head -c 1048576 /dev/zero | tr '\\0' 'x'
echo`,
  )
  t.equal(garbage.bmc, undefined, 'nothing usable: no bmc, and the report went through')
  t.notOk(existsSync(path.join(scratch, 'pwned')), 'nothing in the output ran')
  t.equal(garbage.calls.length, 11, 'every channel tried, once')

  // A MAC but addresses that are near misses, one a channel: none is reported, the BMC's MAC is.
  const nearMisses = await boot(
    'near-misses',
    `case "$1 $3" in
  'lan 1') ip='10.10.10.10.' ;;
  'lan 2') ip='10.0.0.256' ;;
  'lan 3') ip='010.0.0.1' ;;
  'lan 4') ip='10.0.0.7","ipv6":"2001:db8::7' ;;
  'lan 5') ip='10.0.0.8 10.0.0.9' ;;
  'lan 6') ip='0.0.0.0' ;;
  'lan 7') ip='::ffff:10.0.0.1' ;;
  'lan 8') ip='$(touch ${scratch}/pwned)' ;;
  lan6*) printf 'IPv6 Dynamic Address 0:\\n    Source/Type:    DHCPv6\\n    Address:        2001:db8::zz/64\\n    Status:         active\\n'; exit 0 ;;
  *) ip='' ;;
esac
printf 'IP Address Source       : DHCP Address\\nIP Address              : %s\\nMAC Address             : 0c:c4:7a:41:00:17\\n' "$ip"`,
  )
  t.same(nearMisses.bmc, { mac: '0c:c4:7a:41:00:17', ipv4Assignment: 'dhcp', channel: 1, source: 'ipmitool lan print' }, 'its MAC (for a DHCP reservation), no address')
  t.notOk(existsSync(path.join(scratch, 'pwned')), 'nothing in the output ran')

  // A BMC that never answers: the agent gives up on it after one call's limit and reports.
  const hung = await boot('hung', 'sleep 30', { SLIPWAY_BMC_CALL_SECONDS: '1' })
  t.equal(hung.bmc, undefined)
  t.same(hung.calls, ['lan print 1'], 'one call: a BMC that does not answer is not asked again')
  t.ok(hung.ms < 15_000, `the report was not held up (${hung.ms} ms)`)
  t.match(hung.output, /ipmitool did not answer within 1 s/)

  // The real ipmitool reaching a real BMC (ipmi_sim) over the LAN, as it reaches the local one through /dev/ipmi0.
  const sim = await startIpmiSim({ password: 'Bmc-secret-3312', lanSettings: { ipAddress: '127.0.0.1', macAddress: '0c:c4:7a:41:00:42', source: 'static' } })
  t.teardown(() => sim.stop())
  const live = await boot('ipmi-sim', `IPMI_PASSWORD='${sim.password}' exec /usr/bin/ipmitool -I lanplus -C 3 -H ${sim.host} -p ${sim.port} -U ${sim.username} -E "$@"`)
  t.same(live.bmc, { mac: '0c:c4:7a:41:00:42', ipv4: '127.0.0.1', ipv4Assignment: 'static', channel: 1, source: 'ipmitool lan print' })
  // The operator adds only the credentials (and here the port: a test BMC cannot have 623).
  const enrolled = await api('PUT', `/api/v1/machines/${uuid}/bmc`, { protocol: 'ipmi', port: sim.port, username: sim.username, password: sim.password })
  t.equal(enrolled.statusCode, 200, enrolled.body)
  t.match(enrolled.json(), { host: '127.0.0.1', port: sim.port })
  t.match((await api('POST', `/api/v1/machines/${uuid}/power`, { action: 'on' })).json(), { power: 'on' }, 'the engine powers the machine through the BMC its agent found')
  t.ok(sim.machineOn())
})
