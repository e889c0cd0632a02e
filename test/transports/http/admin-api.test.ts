import path from 'node:path'
import t from 'tap'
import { ADMIN_TOKEN, auth, removeTree, startTestEngine } from '../../helpers/engine.ts'

t.test('admin API: token auth, CRUD, bad input changes nothing, restart persistence', async (t) => {
  const first = await startTestEngine()
  const scratch = path.dirname(first.dataDir)
  t.teardown(() => removeTree(scratch))
  const app = first.engine.app
  const request = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = auth) =>
    app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) })

  t.test('every /api/v1 route needs a valid bearer token', async (t) => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token' }, { authorization: `Basic ${ADMIN_TOKEN}` }, { authorization: 'Bearer' }]) {
      for (const [method, url] of [['GET', '/api/v1/groups'], ['POST', '/api/v1/groups'], ['DELETE', '/api/v1/profiles/discovery'], ['GET', '/api/v1/nonexistent']] as const) {
        const response = await request(method, url, method === "POST" ? { id: "x", profile: "discovery" } : undefined, headers as Record<string, string>)
        t.equal(response.statusCode, 401, `${method} ${url} with ${JSON.stringify(headers)}`)
        t.match(response.json().code, /^TOKEN_(REQUIRED|INVALID)$/)
        t.match(response.headers['www-authenticate'], /^Bearer/)
      }
    }
    t.equal((await request('GET', '/api/v1/groups/discovery')).statusCode, 200, 'the discovery group survived the unauthorised DELETE attempts')
    t.equal((await request('GET', '/api/v1/groups')).statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: '/ipxe?mac=52:54:00:00:00:01' })).statusCode, 200, 'machine-facing routes need no token')
  })

  t.test('groups and profiles: create, read, replace, delete', async (t) => {
    const profile = { id: 'rescue', name: 'Rescue shell', boot: { kernel: '/assets/rescue/vmlinuz', initrd: ['/assets/rescue/initrd'], args: ['rescue'] } }
    const created = await request('POST', '/api/v1/profiles', profile)
    t.equal(created.statusCode, 201, created.body)
    t.same(created.json(), { ...profile, source: 'api' })
    t.equal((await request('POST', '/api/v1/profiles', profile)).json().code, 'PROFILE_EXISTS')

    const group = { id: 'rescue-52', name: 'Rescue one machine', profile: 'rescue', selector: { mac: '52-54-00-00-00-52' }, metadata: { reason: 'disk' } }
    const createdGroup = await request('POST', '/api/v1/groups', group)
    t.equal(createdGroup.statusCode, 201, createdGroup.body)
    t.equal(createdGroup.json().selector.mac, '52:54:00:00:00:52', 'mac selector normalised on write')
    const ipxe = await app.inject({ method: 'GET', url: '/ipxe?mac=52:54:00:00:00:52' })
    t.match(ipxe.body, /\nkernel \/assets\/rescue\/vmlinuz rescue\n/, 'the boot path sees the new group at once')

    const selection = await request('GET', '/api/v1/selection?mac=52:54:00:00:00:52')
    t.equal(selection.json().group.id, 'rescue-52')
    t.equal(selection.json().profile.id, 'rescue')

    const replaced = await request('PUT', '/api/v1/groups/rescue-52', { ...group, metadata: { reason: 'memory' } })
    t.equal(replaced.statusCode, 200)
    t.same((await request('GET', '/api/v1/groups/rescue-52')).json().metadata, { reason: 'memory' })

    const inUse = await request('DELETE', '/api/v1/profiles/rescue')
    t.equal(inUse.statusCode, 409)
    t.equal(inUse.json().code, 'PROFILE_IN_USE')
    t.same(inUse.json().details.groups, ['rescue-52'])

    t.equal((await request('DELETE', '/api/v1/groups/rescue-52')).statusCode, 204)
    t.equal((await request('DELETE', '/api/v1/profiles/rescue')).statusCode, 204)
    t.equal((await request('GET', '/api/v1/groups/rescue-52')).json().code, 'GROUP_NOT_FOUND')
    t.equal((await request('DELETE', '/api/v1/profiles/rescue')).statusCode, 404)
  })

  t.test('bad input: 4xx with a stable code, and nothing changes', async (t) => {
    const before = (await request('GET', '/api/v1/groups')).body
    const cases: [string, 'POST' | 'PUT', string, unknown, Record<string, string>, number, string][] = [
      ['malformed JSON', 'POST', '/api/v1/groups', '{"id": "x",', { 'content-type': 'application/json' }, 400, 'MALFORMED_JSON'],
      ['empty JSON body', 'POST', '/api/v1/groups', '', { 'content-type': 'application/json' }, 400, 'MALFORMED_JSON'],
      ['oversized body', 'POST', '/api/v1/groups', JSON.stringify({ id: 'big', profile: 'discovery', metadata: { blob: 'x'.repeat(2_000_000) } }), { 'content-type': 'application/json' }, 413, 'BODY_TOO_LARGE'],
      ['unknown field', 'POST', '/api/v1/groups', { id: 'x', profile: 'discovery', selectors: {} }, {}, 400, 'VALIDATION_FAILED'],
      ['missing profile field', 'POST', '/api/v1/groups', { id: 'x' }, {}, 400, 'VALIDATION_FAILED'],
      ['id with a slash', 'POST', '/api/v1/groups', { id: '../x', profile: 'discovery' }, {}, 400, 'VALIDATION_FAILED'],
      ['selector value not a string', 'POST', '/api/v1/groups', { id: 'x', profile: 'discovery', selector: { os: ['a'] } }, {}, 400, 'VALIDATION_FAILED'],
      ['bad mac selector', 'POST', '/api/v1/groups', { id: 'x', profile: 'discovery', selector: { mac: 'nope' } }, {}, 400, 'INVALID_MAC'],
      ['unknown profile', 'POST', '/api/v1/groups', { id: 'x', profile: 'ghost' }, {}, 400, 'UNKNOWN_PROFILE'],
      ['id differs from URL', 'PUT', '/api/v1/groups/discovery', { id: 'other', profile: 'discovery' }, {}, 400, 'ID_MISMATCH'],
      ['array instead of object', 'POST', '/api/v1/groups', [1, 2], {}, 400, 'VALIDATION_FAILED'],
      ['wrong media type', 'POST', '/api/v1/groups', 'id=x', { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['profile with empty kernel', 'POST', '/api/v1/profiles', { id: 'p', boot: { kernel: '' } }, {}, 400, 'VALIDATION_FAILED'],
      ['template id escaping its folder', 'PUT', '/api/v1/templates/ignition/..%2F..%2Fetc%2Fpasswd', 'x', { 'content-type': 'text/plain' }, 400, 'VALIDATION_FAILED'],
      ['template kind unknown', 'PUT', '/api/v1/templates/cloud/x', 'x', { 'content-type': 'text/plain' }, 400, 'VALIDATION_FAILED'],
      ['template syntax error', 'PUT', '/api/v1/templates/ignition/new.json', '{"a": "{{#if x}}"}', { 'content-type': 'text/plain' }, 400, 'TEMPLATE_SYNTAX'],
      ['raw .ign that is not valid Ignition', 'PUT', '/api/v1/templates/ignition/bad.ign', '{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"x"}]}}', { 'content-type': 'text/plain' }, 400, 'IGNITION_INVALID'],
      ['raw .ign that is not JSON', 'PUT', '/api/v1/templates/ignition/bad.ign', '{"ignition":', { 'content-type': 'text/plain' }, 400, 'IGNITION_NOT_JSON'],
    ]
    for (const [name, method, url, payload, headers, status, code] of cases) {
      const response = await request(method, url, payload, { ...auth, ...headers })
      t.equal(response.statusCode, status, `${name}: ${response.body.slice(0, 200)}`)
      t.equal(response.json().code, code, name)
      t.ok(response.json().message.length > 10, `${name}: message says what to do: ${response.json().message.slice(0, 160)}`)
    }
    t.equal((await request('GET', '/api/v1/groups')).body, before, 'groups unchanged')
    const templates = (await request('GET', '/api/v1/templates?kind=ignition')).json().map((template: { id: string }) => template.id)
    t.notOk(templates.includes('bad.ign') || templates.includes('new.json'), 'no template written')
  })

  t.test('templates: write as text or JSON, read back, used on the next render', async (t) => {
    const body = '{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/motd","contents":{"source":"{{dataUrl motd}}"}}]}}'
    const created = await request('PUT', '/api/v1/templates/ignition/site/motd.json', body, { ...auth, 'content-type': 'text/plain' })
    t.equal(created.statusCode, 201, created.body)
    t.equal(created.json().body, body)
    const replaced = await request('PUT', '/api/v1/templates/ignition/site/motd.json', { body: body.replace('/etc/motd', '/etc/motd.d/site') })
    t.equal(replaced.statusCode, 200)
    await request('POST', '/api/v1/profiles', { id: 'motd', ignition_id: 'site/motd.json' })
    await request('POST', '/api/v1/groups', { id: 'motd', profile: 'motd', selector: { role: 'motd' }, metadata: { motd: 'hello world' } })
    const ignition = await app.inject({ method: 'GET', url: '/ignition?role=motd' })
    t.equal(ignition.statusCode, 200, ignition.body)
    t.same(ignition.json().storage.files[0], { path: '/etc/motd.d/site', contents: { source: 'data:,hello%20world' } })
    const listed = (await request('GET', '/api/v1/templates?kind=ignition')).json()
    t.ok(listed.some((template: { id: string; source: string }) => template.id === 'site/motd.json' && template.source === 'api'))
    t.notOk('body' in listed[0], 'the list does not carry bodies')
  })

  t.test('OpenAPI document and Swagger UI', async (t) => {
    const spec = await app.inject({ method: 'GET', url: '/apidocs/json' })
    t.equal(spec.statusCode, 200)
    const document = spec.json()
    t.match(document.openapi, /^3\./)
    for (const route of ['/api/v1/groups', '/api/v1/groups/{id}', '/api/v1/profiles', '/api/v1/profiles/{id}', '/api/v1/templates', '/api/v1/selection']) {
      t.ok(document.paths[route], `documents ${route}`)
    }
    t.same(document.paths['/ipxe']?.get?.security, [], 'machine-facing routes are documented, without the token (see openapi.test)')
    t.match(document.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer' })
    const ui = await app.inject({ method: 'GET', url: '/apidocs/' })
    t.equal(ui.statusCode, 200)
    t.match(ui.body, /swagger-ui/i)
  })

  t.test('restart: API writes survive, file content is re-read, the token still works', async (t) => {
    await request('POST', '/api/v1/profiles', { id: 'persisted', name: 'Persisted', ignition_id: 'discovery.json' })
    await request('PUT', '/api/v1/groups/discovery', { id: 'discovery', profile: 'persisted', metadata: { ssh_authorized_keys: ['ssh-ed25519 AAAA test'] } })
    await first.engine.close()

    const second = await startTestEngine({ dataDir: first.dataDir, contentDir: first.contentDir })
    t.teardown(() => second.engine.close())
    const again = (method: 'GET', url: string) => second.engine.app.inject({ method, url, headers: auth })
    t.equal((await again('GET', '/api/v1/profiles/persisted')).json().name, 'Persisted')
    const discovery = (await again('GET', '/api/v1/groups/discovery')).json()
    t.equal(discovery.profile, 'persisted', 'an API change to a file-defined group wins over the file')
    t.equal(discovery.source, 'api')
    t.equal((await again('GET', '/api/v1/templates/ignition/site/motd.json')).statusCode, 200)
    const ignition = await second.engine.app.inject({ method: 'GET', url: '/ignition?mac=52:54:00:00:00:42' })
    t.same(ignition.json().passwd.users[0].sshAuthorizedKeys, ['ssh-ed25519 AAAA test'])
  })
})
