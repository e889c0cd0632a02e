/**
 * The web UI in a real browser (Debian's Chromium, headless, through playwright-core) against a
 * running engine seeded through its real APIs: machines that reported to /discovery and were
 * scheduled, installed and made outdated; clusters registered against Kubernetes API server doubles
 * (test/fakes/kube-cluster.ts); a rolling update in flight (with the rollout doubles of
 * test/fakes/rollout-fleet.ts); BMCs that are Redfish BMC doubles (test/fakes/redfish-bmc.ts) polled
 * by the engine, one of them hostile. The test signs in, reads every page, powers a machine on from its
 * page, installs a release through the form, watches each cluster reach ready (rendered by the real
 * helm), deletes it, and keeps a screenshot of each page.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'
import { x509ClusterPkiIssuer } from '../../src/adapters/pki/x509-cluster-pki.ts'
import { machineCredentials } from '../helpers/machine-credentials.ts'
import { reportInstalled, takeSlotAndFetchConfig } from '../helpers/machine-requests.ts'
import { FakeKubeCluster } from '../fakes/kube-cluster.ts'
import { RedfishBmc } from '../fakes/redfish-bmc.ts'
import type { MachineShell } from '../../src/core/lifecycle/ports.ts'
import { ipOf, macOf, RecordingDrainer, uuidOf } from '../fakes/rollout-fleet.ts'
import { artifactPath, launchChromium, LAPTOP_VIEWPORT, pngFacts, README_SCREENSHOTS_DIR } from '../helpers/browser.ts'
import { packageChart, webChart } from '../helpers/charts.ts'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../helpers/engine.ts'
import { servingCertificate } from '../helpers/test-pki.ts'
import { helmPath } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const SITES = [
  { name: 'paris', labels: { region: 'eu', tier: 'prod' }, location: { latitude: 48.86, longitude: 2.35, region: 'eu-west', site: 'par1' }, nodes: 3 },
  { name: 'frankfurt', labels: { region: 'eu', tier: 'canary' }, location: { latitude: 50.11, longitude: 8.68, region: 'eu-central', site: 'fra1' }, nodes: 2 },
  { name: 'virginia', labels: { region: 'us', tier: 'prod' }, location: { latitude: 38.9, longitude: -77.04, region: 'us-east', site: 'iad1' }, nodes: 4 },
  { name: 'singapore', labels: { region: 'ap', tier: 'prod' }, location: { latitude: 1.35, longitude: 103.82, region: 'ap-southeast', site: 'sin1' }, nodes: 2 },
]
/** Machines 1-4 form the provisioned cluster "edge"; 5 and 6 wait in discovery. */
const EDGE_MEMBERS = 4
const MACHINES = 6
/** Machine 1 has a well-behaved Redfish BMC, machine 5 a hostile one (markup as its user name and power state), the others none. */
const HOSTILE = '<img src=x onerror=alert(1)>'

const admin = (app: FastifyInstance, method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) })
async function ok(response: Promise<{ statusCode: number; body: string }>, status = [200, 201]) {
  const answer = await response
  if (!status.includes(answer.statusCode)) throw new Error(`seeding failed: ${answer.statusCode} ${answer.body}`)
  return answer
}

async function seed(t: Test) {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-ui-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
  let app!: FastifyInstance
  let credentials!: ReturnType<typeof machineCredentials>
  const report = async (host: string, config: string) => {
    const uuid = uuidOf(Number(host.split('.').at(-1)))
    await app.inject({ method: 'POST', url: '/lifecycle/ignition', headers: { authorization: `Bearer ${credentials.issue(uuid, 1)}`, 'content-type': 'application/json' }, payload: config })
  }
  // A machine told to restart goes down and does not come back while the test runs: the run stays in
  // flight, its machine holding the lock group's slot, while the page shows it.
  const shell: MachineShell = {
    writeFile: async () => {},
    run: async () => ({ exitCode: null, signal: 'SIGHUP', stdout: '', stderr: '', hostKey: 'ssh-ed25519 AAAAtest' }),
  }
  const started = await startTestEngine({
    env: {
      SLIPWAY_HTTP_PORT: '0',
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_HELM_BINARY: await helmPath(),
      SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
      SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '1',
      SLIPWAY_RELEASES_RECONCILE_INTERVAL_SECONDS: '0.5',
      SLIPWAY_RELEASES_REQUEST_TIMEOUT_SECONDS: '2',
      SLIPWAY_POWER_POLL_INTERVAL_SECONDS: '1',
    },
    adapters: { shell, drainerFrom: () => new RecordingDrainer() },
  })
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  app = started.engine.app
  credentials = machineCredentials(started.config.secrets.keyFile)
  const url = await started.engine.start()

  // Registered clusters: Kubernetes API server doubles with nodes and pods.
  const pki = await x509ClusterPkiIssuer.issue('sites', new Date())
  const tls = { ...(await servingCertificate(pki)), caPem: pki.kubernetesCa.certificatePem }
  const sites = new Map<string, FakeKubeCluster>()
  const trustSites = new Agent({ connect: { ca: pki.kubernetesCa.certificatePem } })
  t.teardown(() => trustSites.close())
  for (const site of SITES) {
    const token = `${site.name}-token-${'t'.repeat(20)}`
    const api = await FakeKubeCluster.start({ tls, tokens: [token], readyDelayMs: 300 })
    t.teardown(() => api.close())
    for (let n = 1; n <= site.nodes; n++) {
      api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: `${site.name}-${n}` } } as never)
      // A node's status is the kubelet's to write: through the status subresource, as the API server requires.
      const ready = await request(`${api.url}/api/v1/nodes/${site.name}-${n}/status`, {
        method: 'PATCH',
        dispatcher: trustSites,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/merge-patch+json' },
        body: JSON.stringify({ status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }] } }),
      })
      if (ready.statusCode !== 200) throw new Error(`node status: ${ready.statusCode} ${await ready.body.text()}`)
      await ready.body.dump()
      api.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `agent-${n}`, namespace: 'kube-system' }, spec: { containers: [{ name: 'agent', image: 'agent:1' }] }, status: { phase: 'Running' } } as never)
    }
    await ok(admin(app, 'POST', '/api/v1/clusters', { name: site.name, display_name: `${site.name[0]!.toUpperCase()}${site.name.slice(1)}`, labels: site.labels, location: site.location, server: api.url, ca_bundle: pki.kubernetesCa.certificatePem, credentials: { token } }))
    sites.set(site.name, api)
  }

  // A cluster provisioned from machines: discovered, scheduled, installed, then made outdated.
  await ok(admin(app, 'POST', '/api/v1/flavors', { name: 'edge', control_plane_count: 1, nodes_min: 0, nodes_max: EDGE_MEMBERS - 1 }))
  await ok(admin(app, 'POST', '/api/v1/clusters', { name: 'edge', flavor: 'edge', labels: { region: 'eu', tier: 'edge' }, latitude: 59.33, longitude: 18.07 }))
  for (let n = 1; n <= MACHINES; n++) {
    const payload = {
      'boot-info': { uuid: uuidOf(n), mac: macOf(n) },
      interfaces: [{ name: 'eno1', mac: macOf(n), ipv4: ipOf(n), cidrv4: `${ipOf(n)}/16`, gateway: '10.9.0.1' }],
      disks: [{ path: '/dev/nvme0n1', 'size-bytes': 480e9, model: 'Micron 7450' }],
      cpu: { model: 'AMD EPYC 7313P', cores: 16, threads: 32 },
      memory: { 'total-bytes': 64e9 },
      firmware: 'uefi',
      dmi: { vendor: 'Supermicro', product: 'AS-1115S', serial: `S${1000 + n}` },
    }
    await ok(app.inject({ method: 'POST', url: '/discovery', payload }))
  }
  // A forged report claiming machine 6's boot MAC: refused, kept as a conflict.
  const forged = await app.inject({ method: 'POST', url: '/discovery', payload: { 'boot-info': { uuid: uuidOf(66), mac: macOf(MACHINES) }, interfaces: [{ name: 'eth0', mac: macOf(MACHINES), ipv4: '10.66.0.66' }] }, remoteAddress: '10.66.0.66' })
  if (forged.statusCode !== 409) throw new Error(`forged report: ${forged.statusCode} ${forged.body}`)
  await ok(admin(app, 'POST', '/api/v1/scheduler/run'))
  for (let n = 1; n <= EDGE_MEMBERS; n++) {
    const machine = { uuid: uuidOf(n), mac: macOf(n), ip: ipOf(n) }
    const config = (await ok(takeSlotAndFetchConfig(app, machine))).body
    await reportInstalled(app, machine)
    await report(ipOf(n), config)
    // The members' kubeadm bootstrap, as their script reports it: the first done, one failed, the rest joining.
    const bootstrap = n === 1 ? { phase: 'done', command: 'init', message: 'kubeadm init succeeded' } : n === 2 ? { phase: 'failed', command: 'join', message: 'kubeadm join exited with status 1' } : { phase: 'running', command: 'join', message: 'kubeadm join' }
    await ok(app.inject({ method: 'POST', url: '/lifecycle/bootstrap', headers: { authorization: `Bearer ${credentials.issue(uuidOf(n), 1)}` }, payload: bootstrap }))
  }
  const template = (await admin(app, 'GET', '/api/v1/templates/ignition/kubernetes-node.json')).json().body as string
  await ok(admin(app, 'PUT', '/api/v1/templates/ignition/kubernetes-node.json', { body: template.replace('"/etc/slipway/role"', '"/etc/slipway/role.v2"') }))
  await until('the edge nodes outdated', async () => {
    const drift = (await admin(app, 'GET', '/lifecycle/ignition')).json() as { state: string }[]
    return drift.filter((record) => record.state === 'outdated').length === EDGE_MEMBERS - 1 || undefined
  }, 20_000, 100)
  await ok(admin(app, 'POST', '/api/v1/rollouts', { cluster: 'edge', max_parallel: 1 }))

  // BMCs, polled by the engine every second: a real one for machine 1 (its CA given), a hostile one
  // for machine 5 whose user name and power state are markup; its poll fails with that text in the error.
  const redfish = await RedfishBmc.start({ ...(await servingCertificate(pki)), password: 'Ui-redfish-pw-2291' })
  t.teardown(() => redfish.close())
  await ok(admin(app, 'PUT', `/api/v1/machines/${uuidOf(1)}/bmc`, { protocol: 'redfish', host: '127.0.0.1', port: redfish.port, username: redfish.username, password: redfish.password, redfish: { ca_bundle: pki.kubernetesCa.certificatePem } }))
  const hostile = await RedfishBmc.start({ ...(await servingCertificate(pki)), username: HOSTILE, password: 'Ui-hostile-pw-8830' })
  t.teardown(() => hostile.close())
  ;(hostile.machine as { power: string }).power = HOSTILE
  await ok(admin(app, 'PUT', `/api/v1/machines/${uuidOf(5)}/bmc`, { protocol: 'redfish', host: '127.0.0.1', port: hostile.port, username: HOSTILE, password: hostile.password, redfish: { ca_bundle: pki.kubernetesCa.certificatePem } }))
  await until('both BMCs polled', async () => {
    const bmcs = (await admin(app, 'GET', '/api/v1/bmcs')).json() as { power: string; last_error: unknown }[]
    return (bmcs.length === 2 && bmcs.every((bmc) => bmc.power !== 'unknown' || bmc.last_error)) || undefined
  }, 20_000, 100)
  return { app, url, sites, redfish }
}

/** A screenshot of the page as a laptop shows it, checked to be a real picture, kept as an artifact. */
async function screenshot(t: Test, page: Page, name: string) {
  const file = artifactPath(`${name}.png`)
  await page.screenshot({ path: file, fullPage: false })
  const facts = pngFacts(file)
  t.same([facts.width, facts.height], [LAPTOP_VIEWPORT.width, LAPTOP_VIEWPORT.height], `${name}.png is a laptop screen`)
  // A blank or single-colour page compresses to a few KB; a page of tables and text does not.
  t.ok(facts.bytes > 30_000, `${name}.png has content (${facts.bytes} bytes)`)
  if (process.env.SLIPWAY_UPDATE_SCREENSHOTS === '1') copyFileSync(file, path.join(README_SCREENSHOTS_DIR, `${name}.png`))
}

t.test('the web UI: sign in, machines, a machine, clusters with the map, a release installed and deleted through the form, rolling updates', async (t) => {
  const { app, url, sites, redfish } = await seed(t)
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const context = await browser.newContext({ viewport: LAPTOP_VIEWPORT, deviceScaleFactor: 1, locale: 'en-GB', timezoneId: 'UTC' })
  const page = await context.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (error) => pageErrors.push(error.message))
  page.on('console', (message) => {
    // The refused login answers 401 on purpose, and a machine without a BMC 404 BMC_NOT_CONFIGURED;
    // Chromium logs every 4xx answer as an error.
    const expected = /status of 401/.test(message.text()) || (/status of 404/.test(message.text()) && /\/api\/v1\/machines\/[0-9a-f-]{36}\/bmc$/.test(message.location().url))
    if (message.type() === 'error' && !expected) pageErrors.push(message.text())
  })
  page.setDefaultTimeout(15_000)

  // Sign in: a wrong token is refused on the page, the right one leads back to where we were going.
  await page.goto(`${url}/ui/clusters`)
  t.match(page.url(), /\/ui\/login\?next=%2Fui%2Fclusters$/, 'no session: the login page')
  await page.getByLabel('API token').fill('not-the-token-0123456789')
  await page.getByRole('button', { name: 'Sign in' }).click()
  t.match(await page.getByRole('alert').textContent(), /not valid/, 'a wrong token is refused with a message')
  await page.getByLabel('API token').fill(ADMIN_TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL(/\/ui\/clusters$/)
  const cookies = await context.cookies()
  t.match(cookies, [{ name: 'slipway_session', httpOnly: true, sameSite: 'Strict', path: '/' }], 'the session cookie: HttpOnly, SameSite=Strict')
  t.notOk(cookies[0]!.value.includes(ADMIN_TOKEN), 'the cookie does not hold the token in clear')

  t.test('machines', async (t) => {
    const requested: string[] = []
    const recordRequest = (request: { url(): string }) => requested.push(new URL(request.url()).pathname)
    page.on('request', recordRequest)
    await page.getByRole('link', { name: 'Machines' }).click()
    await page.waitForSelector(`#machines tbody tr[data-uuid]:nth-child(${MACHINES})`)
    const rows = page.locator('#machines tbody tr')
    t.equal(await rows.count(), MACHINES)
    const first = await page.locator(`#machines tr[data-uuid="${uuidOf(1)}"]`).innerText()
    t.match(first, /edge-cp-1/)
    t.match(first, /installed/)
    t.match(first, /control-plane/)
    t.match(first, new RegExp(`${macOf(1)}[\\s\\S]*${ipOf(1).replaceAll('.', '\\.')}`))
    t.match(first, /16 cores · 64\.0 GB RAM · 1 × disk, 480 GB/)
    t.match(first, /up to date/, 'the control plane runs what it is served')
    t.match(await page.locator(`#machines tr[data-uuid="${uuidOf(2)}"]`).innerText(), /edge-node-1[\s\S]*node[\s\S]*edge[\s\S]*outdated/, 'a node whose template changed is outdated')
    t.match(await page.locator(`#machines tr[data-uuid="${uuidOf(5)}"]`).innerText(), /discovered[\s\S]*no report/, 'a machine still in discovery')

    // Power: as the engine's poll last read each BMC.
    const powerOf = (n: number) => page.locator(`#machines tr[data-uuid="${uuidOf(n)}"] td.power-cell`)
    await page.waitForSelector(`#machines tr[data-uuid="${uuidOf(1)}"] .power[data-power="off"]`)
    t.equal(await powerOf(1).innerText(), 'off', "machine 1's BMC says off")
    t.equal(await powerOf(1).locator('.power').getAttribute('title'), null, 'and its last check succeeded')
    t.equal(await powerOf(6).innerText(), '—', 'a machine without a BMC')
    t.equal(await powerOf(6).locator('span').getAttribute('title'), 'no BMC configured')
    const hostileCell = powerOf(5).locator('.power[data-power-error="BMC_PROTOCOL"]')
    t.match(await hostileCell.innerText(), /^unknown\s*⚠$/, 'a failed poll: the state with a warning mark')
    t.equal(await hostileCell.getAttribute('title'), `last check failed: BMC_PROTOCOL: the ComputerSystem's PowerState is "${HOSTILE}"`, "the BMC's hostile words as the title's text")
    t.equal(await page.locator('#machines img').count(), 0, 'no markup of a BMC became an element')
    await page.getByLabel('Filter').fill('power=off')
    t.equal(await page.locator('#machines tbody tr').count(), 1, 'the filter finds machines by power state')
    await page.getByLabel('Filter').fill('')
    page.off('request', recordRequest)
    const listReads = requested.filter((path) => path === '/api/v1/machines').length
    const bmcReads = requested.filter((path) => path === '/api/v1/bmcs').length
    t.ok(bmcReads >= 1 && bmcReads <= listReads + 1, `one GET /api/v1/bmcs per refresh (${bmcReads} for ${listReads} refreshes)`)
    t.same(requested.filter((path) => /\/machines\/[^/]+\/(bmc|power)$/.test(path)), [], 'never a request per machine')
    t.match(await page.locator('#live-status').innerText(), /Live: updated/)
    await page.getByLabel('Filter').fill('outdated')
    t.equal(await page.locator('#machines tbody tr').count(), EDGE_MEMBERS - 1, 'the filter narrows the table')
    await page.getByLabel('Filter').fill('')
    await page.getByLabel('Filter').blur()
    const conflict = page.locator('#conflicts tbody tr[data-conflict]')
    t.equal(await conflict.count(), 1, 'the open identity conflict is shown')
    t.match(await conflict.innerText(), new RegExp(`${uuidOf(MACHINES)}[\\s\\S]*its boot MAC, by another uuid[\\s\\S]*${uuidOf(66)}[\\s\\S]*10\\.66\\.0\\.66`))
    await screenshot(t, page, 'machines')
    await conflict.getByRole('button', { name: 'Dismiss' }).click()
    await page.waitForSelector('#conflicts-section', { state: 'hidden' })
    t.match((await admin(app, 'GET', '/api/v1/machines/conflicts')).json(), [{ state: 'dismissed', resolved_by: 'configured-admin' }], 'dismissed through the page')
  })

  t.test('a machine: facts, history and what it is served, secrets redacted', async (t) => {
    await page.getByRole('link', { name: 'edge-cp-1' }).click()
    await page.waitForURL(new RegExp(`/ui/machines/${uuidOf(1)}$`))
    await page.waitForFunction(() => document.getElementById('ignition-body')?.textContent?.includes('"ignition"'))
    t.match(await page.locator('#machine-title').innerText(), /edge-cp-1/)
    t.match(await page.locator('#machine-facts').innerText(), /cpu\.cores\s+16/)
    t.match(await page.locator('#machine-events').innerText(), /installed[\s\S]*discovered/, 'the state history, newest first')
    const ipxe = await page.locator('#ipxe-body').innerText()
    t.match(ipxe, /^#!ipxe/, 'the iPXE script')
    const ignition = await page.locator('#ignition-body').innerText()
    t.match(ignition, /"version": "3\.\d\.0"/, 'the Ignition config, indented')
    t.match(ignition, /REDACTED-PRIVATE-KEY/, 'the cluster CA key is redacted')
    t.notMatch(ignition, /BEGIN (RSA |EC )?PRIVATE KEY-----\n[A-Za-z0-9+/]/, 'no private key material')
    t.match(await page.locator('#ignition-redacted').innerText(), /Redacted: storage\.files/)

    // Power: its BMC as last polled, and power on from the page, asked first.
    const power = page.locator('#machine-power')
    await page.waitForSelector('#machine-power .power[data-power="off"]')
    const facts = await power.innerText()
    t.match(facts, /Power\s+off/)
    t.match(facts, /Last checked\s+\d+ s ago/)
    t.match(facts, /Last error\s+—/)
    t.match(facts, /Protocol\s+Redfish/)
    t.match(facts, new RegExp(`BMC address\\s+127\\.0\\.0\\.1:${redfish.port}`))
    t.match(facts, new RegExp(`User\\s+${redfish.username}`))
    t.notOk((await page.content()).includes(redfish.password), 'never the password')
    let question = ''
    page.once('dialog', (dialog) => {
      question = dialog.message()
      void dialog.dismiss()
    })
    await page.getByRole('button', { name: 'Power off' }).click()
    t.match(question, /^Power off edge-cp-1 now\? Its power is cut at once/, 'asked first, by name')
    t.notOk(redfish.calls.some((call) => call.startsWith('reset')), 'declined: the BMC was not asked')
    page.once('dialog', (dialog) => void dialog.accept())
    await page.getByRole('button', { name: 'Power on' }).click()
    await page.locator('#power-result', { hasText: 'now reports on' }).waitFor()
    t.match(await page.locator('#power-result').innerText(), /^Power on: the BMC now reports on \(\d+ ms\)\.$/)
    t.equal(redfish.machine.power, 'On', 'the machine is on')
    await page.waitForSelector('#machine-power .power[data-power="on"]')
    await page.evaluate(() => document.getElementById('power-heading')!.scrollIntoView())
    await screenshot(t, page, 'machine')
  })

  t.test("a machine's page with a hostile BMC, and one without a BMC", async (t) => {
    await page.goto(`${url}/ui/machines/${uuidOf(5)}`)
    await page.waitForSelector('#machine-power .power[data-power-error]')
    const power = page.locator('#machine-power')
    t.match(await power.innerText(), new RegExp(`User\\s+${HOSTILE.replace(/[()]/g, '\\$&')}`), 'the hostile user name as text')
    t.match(await power.locator('.error-text').innerText(), `BMC_PROTOCOL: the ComputerSystem's PowerState is "${HOSTILE}"`, 'the hostile error as text')
    t.equal(await power.locator('img').count(), 0, 'no markup of the BMC became an element')
    await page.goto(`${url}/ui/machines/${uuidOf(6)}`)
    await page.locator('#machine-power', { hasText: 'none configured' }).waitFor()
    t.ok(await page.locator('#power-actions').isHidden(), 'no power buttons without a BMC')
  })

  t.test('clusters and their locations', async (t) => {
    await page.getByRole('link', { name: 'Clusters' }).click()
    await page
      .waitForFunction((count) => document.querySelectorAll('#clusters .badge.ok').length >= count, SITES.length, { timeout: 20_000 })
      .catch(async (error: Error) => {
        throw new Error(`${error.message}: ${await page.locator('#clusters').innerText()}`)
      })
    t.equal(await page.locator('#clusters tbody tr').count(), SITES.length + 1)
    const paris = await page.locator('#clusters tr[data-cluster="paris"]').innerText()
    t.match(paris, /Paris[\s\S]*region=eu[\s\S]*tier=prod[\s\S]*Healthy[\s\S]*3 \/ 3[\s\S]*3 \/ 3/, 'labels, health, nodes ready and pods')
    const edge = page.locator('#clusters tr[data-cluster="edge"]')
    t.match(await edge.innerText(), /provisioning[\s\S]*kubeadm: 1 done, 2 running, 1 failed/, "a provisioned cluster shows its members' kubeadm bootstrap")
    t.match(await edge.locator('[data-bootstrap]').getAttribute('title'), /edge-node-1: kubeadm join exited with status 1/, 'a failure names its member')
    t.equal(await page.locator('#map-clusters g.point').count(), SITES.length + 1, 'every cluster with a location is on the map')
    t.equal(await page.locator('#map-clusters g.point.healthy').count(), SITES.length, 'coloured by health')
    t.equal(await page.locator('#map-clusters g.point[data-cluster="singapore"] text').textContent(), 'singapore')
    t.ok(((await page.locator('#cluster-map path.land').getAttribute('d')) ?? '').length > 10_000, 'the land outline is drawn')
    // The table and the whole map on one laptop screen.
    await page.evaluate(() => window.scrollTo(0, 130))
    await screenshot(t, page, 'clusters')
  })

  t.test('a release installed through the form reaches ready on every matching cluster, then is deleted by selector and everywhere', async (t) => {
    await page.getByRole('link', { name: 'Releases' }).click()
    await page.getByLabel('Chart archive').setInputFiles({ name: 'web-1.0.0.tgz', mimeType: 'application/gzip', buffer: await packageChart(webChart('1.0.0')) })
    await page.getByLabel('Release name').fill('web')
    await page.getByLabel('Namespace').fill('shop')
    await page.getByLabel('Cluster label selector').fill('region in (eu,us),tier!=edge')
    await page.getByLabel('Values (YAML)').fill('replicas: 2\ngreeting: bonjour\n')
    await page.getByLabel('Canary selector').fill('tier=canary')
    await page.getByRole('button', { name: 'Install' }).click()
    await page.locator('#release-form-result', { hasText: 'Installed' }).waitFor()
    t.match(await page.locator('#release-form-result').innerText(), /Installed shop\/web \(revision 1, chart web 1\.0\.0\)/)
    const section = page.locator('section[data-release="shop/web"]')
    await section.locator('tr[data-phase="ready"]').nth(2).waitFor({ timeout: 30_000 })
    t.same(await section.locator('tbody tr').evaluateAll((rows) => rows.map((row) => `${row.getAttribute('data-cluster')}:${row.getAttribute('data-phase')}`)), ['frankfurt:ready', 'paris:ready', 'virginia:ready'])
    t.match(await section.locator('.progress-line').innerText(), /3 of 3 clusters ready/)
    t.equal((sites.get('paris')!.get('Deployment', 'shop', 'web') as { spec?: { replicas?: number } }).spec?.replicas, 2, 'the YAML values reached the cluster')
    t.same(sites.get('singapore')!.objects({ namespace: 'shop' }), [], 'a cluster the selector does not match gets nothing')
    t.match(await page.getByLabel('Chart and version').innerText(), /web 1\.0\.0/, 'the uploaded chart is now stored')
    await screenshot(t, page, 'releases')

    page.once('dialog', (dialog) => void dialog.accept())
    await section.getByLabel('Delete from clusters matching').fill('region=us')
    await section.getByRole('button', { name: 'Delete' }).click()
    await page.waitForFunction(() => !document.querySelector('section[data-release="shop/web"] tr[data-cluster="virginia"]'), undefined, { timeout: 20_000 })
    t.match(await section.locator('.progress-line').innerText(), /removed from virginia/)
    await until('virginia emptied', async () => (sites.get('virginia')!.objects({ namespace: 'shop' }).length === 0 ? true : undefined), 20_000, 100)
    t.ok(sites.get('paris')!.get('Deployment', 'shop', 'web'), 'the other clusters keep it')

    page.once('dialog', (dialog) => void dialog.accept())
    await section.getByLabel('Delete from clusters matching').fill('')
    await section.getByRole('button', { name: 'Delete' }).click()
    await page.locator('section[data-release="shop/web"]').waitFor({ state: 'detached', timeout: 30_000 })
    for (const [name, api] of sites) t.same(api.objects({ namespace: 'shop' }).map((object) => `${object.kind}/${object.metadata.name}`), [], `${name}: nothing left`)
  })

  t.test('rolling updates: the run with each machine, the slot holder, pause and resume', async (t) => {
    await page.getByRole('link', { name: 'Rolling updates' }).click()
    await page.waitForSelector('section.run tr[data-uuid]')
    const run = page.locator('section.run').first()
    t.equal(await run.locator('tbody tr').count(), EDGE_MEMBERS - 1, 'the outdated machines of the run')
    await page.waitForFunction(() => /restarting/.test(document.querySelector('section.run')?.textContent ?? ''))
    t.match(await run.innerText(), /running[\s\S]*0 of 3 machines finished[\s\S]*edge-node-\d[\s\S]*restarting/)
    t.match(await page.locator('#lock-groups tr[data-group="edge"]').innerText(), new RegExp(`edge\\s+1\\s+0\\s+5e110000-0000-4000-8000-00000000000\\d since`), 'the machine restarting holds the one slot')
    await screenshot(t, page, 'rollouts')
    await run.getByRole('button', { name: 'Pause' }).click()
    await page.waitForFunction(() => /paused/.test(document.querySelector('section.run h3')?.textContent ?? ''))
    await page.locator('section.run').first().getByRole('button', { name: 'Resume' }).click()
    await page.waitForFunction(() => /running/.test(document.querySelector('section.run h3')?.textContent ?? ''))
    t.pass('paused and resumed from the page')
  })

  t.test('log out ends the session', async (t) => {
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.waitForURL(/\/ui\/login$/)
    await page.goto(`${url}/ui/machines`)
    t.match(page.url(), /\/ui\/login/, 'the pages need a session again')
    t.same(pageErrors, [], 'no script error on any page')
  })
})
