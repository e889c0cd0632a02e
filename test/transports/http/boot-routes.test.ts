import path from 'node:path'
import t from 'tap'
import { startTestEngine, removeTree } from '../../helpers/engine.ts'
import { validateWithOfficialSchema } from '../../helpers/ignition-schema.ts'

t.test('machine-facing routes on the sample content', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const get = (url: string) => engine.app.inject({ method: 'GET', url, headers: { host: 'engine.test:8080' } })

  for (const url of ['/boot.ipxe', '/boot.ipxe.0']) {
    const response = await get(url)
    t.equal(response.statusCode, 200, url)
    t.match(response.headers['content-type'], /^text\/plain/)
    t.match(response.body, /^#!ipxe\n/)
    t.match(response.body, /^chain ipxe\?uuid=\$\{uuid\}&mac=\$\{mac:hexhyp\}/m)
  }

  const ipxe = await get('/ipxe?mac=52:54:00:00:00:01')
  t.equal(ipxe.statusCode, 200)
  t.match(ipxe.body, /^#!ipxe\n/)
  // Installs need no internet: the PXE images come from the engine's /assets (images.* settings).
  t.match(ipxe.body, /\nkernel http:\/\/engine\.test:8080\/assets\/flatcar\/stable\/current\/flatcar_production_pxe\.vmlinuz .*ignition\.config\.url=http:\/\/engine\.test:8080\/ignition\?uuid=\$\{uuid\}&mac=\$\{mac:hexhyp\}/)
  t.match(ipxe.body, /\ninitrd \S+flatcar_production_pxe_image\.cpio\.gz\nboot\n$/)

  // Every Ignition the sample content can produce validates against the official schema.
  for (const query of ['mac=52:54:00:00:00:01', 'mac=52-54-00-00-00-01&os=installed', 'mac=52:54:00:00:00:02&os=installed', 'mac=52:54:00:00:00:99&uuid=u-1']) {
    const response = await get(`/ignition?${query}`)
    t.equal(response.statusCode, 200, query)
    t.match(response.headers['content-type'], /^application\/json/)
    const config = response.json()
    const official = validateWithOfficialSchema(config)
    t.ok(official.ok, `${query}: ${official.errors.join('; ')}`)
  }
  const fcos = await get('/ipxe?mac=52:54:00:00:00:02')
  t.match(fcos.body, /coreos\.inst\.install_dev=\/dev\/vda/)
  t.match(fcos.body, /\ninitrd --name main https:\S+live-initramfs\.x86_64\.img\n/)

  const metadata = await get('/metadata?mac=52:54:00:00:00:01&os=installed')
  t.equal(metadata.statusCode, 200)
  t.match(metadata.body, /^HOSTNAME=lab-control-plane-1$/m)
  t.match(metadata.body, /^REQUEST_QUERY_OS=installed$/m)

  t.test('bad input is a 400 with a stable code', async (t) => {
    for (const url of ['/ipxe?mac=not-a-mac', '/ignition?mac=52:54:00:00:00', '/metadata?mac=zz', '/generic?mac=1']) {
      const response = await get(url)
      t.equal(response.statusCode, 400, url)
      t.equal(response.json().code, 'INVALID_MAC', url)
      t.match(response.json().message, /not a MAC address/)
    }
    const generic = await get('/generic?mac=52:54:00:00:00:99')
    t.equal(generic.statusCode, 200)
    t.match(generic.body, /^#!\/bin\/sh\n# Slipway discovery agent .* for group\n# discovery\)/, 'the discovery profile serves the discovery agent')
    t.match(generic.body, /^RENDERED_URL='http:\/\/engine\.test:8080'\nRENDERED_INSTALLER='flatcar'\nRENDERED_INSTALL_DISK=''$/m, 'rendered with the engine URL and the group metadata')
    t.match(generic.body, /^RENDERED_FLATCAR_BASE_URL='http:\/\/engine\.test:8080\/assets\/flatcar\/stable'\nRENDERED_FLATCAR_VERSION='current'$/m, 'flatcar-install -b: the engine’s mirror')
    t.match(generic.body, /flatcar-install -d "\$disk" -C "\$FLATCAR_CHANNEL" -b "\$FLATCAR_BASE_URL" -V "\$FLATCAR_VERSION"/)
    const noGeneric = await get('/generic?mac=52:54:00:00:00:01')
    t.equal(noGeneric.statusCode, 404)
    t.equal(noGeneric.json().code, 'NO_GENERIC')
  })

  t.test('render and validation failures are 5xx with a report naming the template and path', async (t) => {
    // An operator breaks a template through the API: machines get a 500 (Ignition retries), never a broken config.
    const auth = { authorization: 'Bearer test-admin-token-0123456789abcdef' }
    const put = await engine.app.inject({
      method: 'PUT',
      url: '/api/v1/templates/ignition/kubernetes-node.json',
      headers: { ...auth, 'content-type': 'text/plain' },
      payload: '{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"etc/{{hostname}}"}]}}',
    })
    t.equal(put.statusCode, 200, put.body)
    await engine.app.inject({
      method: 'POST',
      url: '/api/v1/groups',
      headers: auth,
      payload: { id: 'node-3', profile: 'kubernetes-node', selector: { mac: '52:54:00:00:00:03' }, metadata: { hostname: 'node-3' } },
    })
    const response = await get('/ignition?mac=52:54:00:00:00:03')
    t.equal(response.statusCode, 500)
    const body = response.json()
    t.equal(body.code, 'IGNITION_INVALID')
    t.equal(body.details.template, 'ignition/kubernetes-node.json')
    t.ok(body.details.errors.some((finding: { path: string }) => finding.path === 'storage.files[0].path'), JSON.stringify(body.details.errors))

    const otherMachine = await get('/ignition?mac=52:54:00:00:00:01&os=installed')
    t.equal(otherMachine.statusCode, 200, 'machines on other templates are unaffected')
  })

  t.test('no matching group is a 404 once the default group is gone', async (t) => {
    const auth = { authorization: 'Bearer test-admin-token-0123456789abcdef' }
    const deleted = await engine.app.inject({ method: 'DELETE', url: '/api/v1/groups/discovery', headers: auth })
    t.equal(deleted.statusCode, 204)
    const response = await get('/ipxe?mac=52:54:00:00:00:77')
    t.equal(response.statusCode, 404)
    t.equal(response.json().code, 'NO_MATCHING_GROUP')
  })

  t.test('healthz and metrics', async (t) => {
    const health = await get('/healthz')
    t.equal(health.statusCode, 200)
    t.same(health.json(), { status: 'ok' })
    const metrics = await get('/metrics')
    t.equal(metrics.statusCode, 200)
    t.match(metrics.body, /slipway_boot_renders_total\{kind="ignition",outcome="ok"\} \d+/)
    t.match(metrics.body, /slipway_boot_renders_total\{kind="ignition",outcome="IGNITION_INVALID"\} 1/)
    t.match(metrics.body, /^process_cpu_seconds_total /m)
  })
})

t.test("the engine's address: a browser goes to the web UI, a program gets an index", async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const get = (accept?: string) => engine.app.inject({ method: 'GET', url: '/', headers: accept ? { accept } : {} })
  // What Chromium and Firefox send for a page.
  const browser = await get('text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8')
  t.equal(browser.statusCode, 303)
  t.equal(browser.headers.location, '/ui', 'to the web UI, which asks for a token')
  for (const accept of [undefined, '*/*', 'application/json', 'application/json, text/html;q=0.5']) {
    const program = await get(accept)
    t.equal(program.statusCode, 200, `Accept: ${accept ?? '(none)'}`)
    t.match(program.json(), { name: 'slipway', version: /^\d+\.\d+\.\d+/, links: { ui: '/ui', api_docs: '/apidocs', health: '/healthz' } })
  }
  t.notMatch((await get()).body, /token|machine|cluster/i, 'and says nothing of what the engine holds')
})

t.test('healthz answers 503 when the database is gone', async (t) => {
  const { engine, dataDir } = await startTestEngine()
  t.teardown(async () => {
    await engine.app.close()
    removeTree(path.dirname(dataDir))
  })
  await engine.store.destroy()
  const response = await engine.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'NOT_READY')
})

t.test('healthz answers 503 STARTING until every listener is open, then 200', async (t) => {
  const { engine, dataDir } = await startTestEngine({ env: { SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1' } })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  // A supervisor that sees HTTP answer must find the proxy and DNS listening too.
  const started = engine.start()
  const during = await engine.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(during.statusCode, 503)
  t.equal(during.json().code, 'STARTING')
  await started
  t.ok(engine.proxyUrl(), 'the proxy listens')
  t.ok(engine.dnsPort(), 'DNS listens')
  const after = await engine.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(after.statusCode, 200)
})

t.test('images.* settings point installs at another mirror, or upstream', async (t) => {
  const { engine, dataDir } = await startTestEngine({
    env: { SLIPWAY_IMAGES_FLATCAR_BASE_URL: 'https://stable.release.flatcar-linux.net/amd64-usr/', SLIPWAY_IMAGES_FLATCAR_VERSION: '4152.2.3', SLIPWAY_IMAGES_SYSEXT_BASE_URL: 'http://mirror.test/ext' },
  })
  t.teardown(async () => {
    await engine.close()
    removeTree(path.dirname(dataDir))
  })
  const get = (url: string) => engine.app.inject({ method: 'GET', url, headers: { host: 'engine.test:8080' } })
  t.match((await get('/ipxe?mac=52:54:00:00:00:01')).body, /\nkernel https:\/\/stable\.release\.flatcar-linux\.net\/amd64-usr\/4152\.2\.3\/flatcar_production_pxe\.vmlinuz /)
  t.match((await get('/generic?mac=52:54:00:00:00:99')).body, /^RENDERED_FLATCAR_BASE_URL='https:\/\/stable\.release\.flatcar-linux\.net\/amd64-usr'\nRENDERED_FLATCAR_VERSION='4152\.2\.3'$/m)
  const installed = (await get('/ignition?mac=52:54:00:00:00:01&os=installed')).json()
  const sysext = installed.storage.files.find((file: { path: string }) => file.path.startsWith('/opt/extensions/kubernetes/'))
  t.equal(sysext.contents.source, 'http://mirror.test/ext/kubernetes-v1.31.8-x86-64.raw', "the sysext from the configured mirror, at the group's Kubernetes version")
  await t.rejects(startTestEngine({ env: { SLIPWAY_IMAGES_FLATCAR_VERSION: 'latest' } }), /images\.flatcarVersion/, 'a version that is not one is refused at start')
})
