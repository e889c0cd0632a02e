/**
 * The real `slipway` binary, as a user runs it: help and usage errors (caught before any request),
 * `migrate` on a fresh data folder, and `slipway serve` started as a process that the client commands
 * then talk to over HTTP: tables and --json for machines, clusters and locks, backups and the
 * inventory, and the exit codes of every kind of failure (no or wrong token, unknown objects,
 * rejected input, an engine that is down); SIGTERM stops it.
 */
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import t from 'tap'
import { closedPort, inBatches, REPO_ROOT, slipway, spawnSlipway, tableRows, type RunOptions } from './run-slipway.ts'

const TOKEN = 'cli-test-admin-token-0123456789abcdef'
const macOf = (n: number) => `52:54:00:c1:00:${n.toString(16).padStart(2, '0')}`
const uuidOf = (n: number) => `c1100000-0000-4000-8000-${String(n).padStart(12, '0')}`

/** The engine's settings for a served engine in `scratch`: the repo's sample content (only read), free loopback ports. */
const engineEnv = (scratch: string) => ({
  SLIPWAY_DATA_DIR: path.join(scratch, 'var'),
  SLIPWAY_CONTENT_PROFILES_DIR: path.join(REPO_ROOT, 'profiles'),
  SLIPWAY_CONTENT_IGNITION_DIR: path.join(REPO_ROOT, 'ignition'),
  SLIPWAY_CONTENT_IPXE_DIR: path.join(REPO_ROOT, 'ipxe'),
  SLIPWAY_CONTENT_GENERIC_DIR: path.join(REPO_ROOT, 'generic'),
  SLIPWAY_CONTENT_ASSETS_DIR: path.join(scratch, 'assets'),
  SLIPWAY_AUTH_ADMIN_TOKEN: TOKEN,
  SLIPWAY_HTTP_HOST: '127.0.0.1',
  SLIPWAY_HTTP_PORT: '0',
  SLIPWAY_DNS_PORT: '0',
  SLIPWAY_PROXY_PORT: '0',
  SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0',
  SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0',
})

t.test('without an engine: help, version and usage errors (exit 2, nothing sent)', async (t) => {
  // Every usage error below is checked before a request: against a closed port a sent request would be exit 6.
  const url = `http://127.0.0.1:${await closedPort()}`
  const [help, commandHelp, version] = await Promise.all([slipway(['--help'], { url, token: TOKEN }), slipway(['releases', 'install', '--help'], { url }), slipway(['version', '--json'], { url })])
  t.equal(help.code, 0, help.stderr)
  t.match(help.stdout, /usage: slipway <command>/)
  for (const command of ['serve', 'migrate', 'machines list', 'clusters register <name>', 'releases install <namespace/name>', 'rollouts watch <id>', 'locks release <group> <holder>', 'charts upload', 'backup', 'inventory export']) {
    t.ok(help.stdout.includes(`  ${command}`), `--help lists ${command}`)
  }
  t.match(help.stdout, /exit codes:\n\s+0 {2}success\n\s+1 {2}the operation failed[^]*\n\s+6 {2}the engine could not be reached/, 'the exit codes are documented')
  t.match(help.stdout, /SLIPWAY_TOKEN/)

  t.equal(commandHelp.code, 0)
  t.match(commandHelp.stdout, /usage: slipway releases install <namespace\/name> \[options\][^]*--selector SELECTOR[^]*--wait[^]*--url URL/)

  t.equal(version.code, 0)
  t.match(JSON.parse(version.stdout), { version: /^\d+\.\d+\.\d+/ })
  const [dashed, short] = await Promise.all([slipway(['--version'], { url }), slipway(['-v', '--json'], { url })])
  t.equal(dashed.code, 0, dashed.stderr)
  t.match(dashed.stdout, /^slipway \d+\.\d+\.\d+ \(node v\d+/, '--version, as other CLIs have it')
  t.same(JSON.parse(short.stdout), JSON.parse(version.stdout), '-v --json: the version subcommand')

  const usageCases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['clusters', 'frob'], /unknown command "clusters frob"/],
    [['clusters', 'list', '--colour'], /unknown option --colour for "slipway clusters list"/],
    [['clusters', 'show'], /missing <name>/],
    [['machines', 'show', 'not-a-mac'], /neither a machine UUID nor a MAC address/],
    [['rollouts', 'start', '--cluster', 'roll', '--max-parallel', 'many'], /--max-parallel must be a whole number from 1 to 100, not "many"/],
    [['rollouts', 'watch', 'r1', '--wait-timeout', 'soon'], /--wait-timeout must be a number of seconds/],
    [['releases', 'install', 'shop/web', '--chart', 'web'], /which clusters\? --selector/],
    [['releases', 'install', 'shop/web', '--selector', 'region=eu', '--values', 'no-such-values.yaml', '--chart', 'web'], /cannot read values file "no-such-values.yaml": no such file/],
    [['clusters', 'delete', 'eu-1'], /add --yes to confirm/],
    [['charts', 'upload', 'package.json'], /is not a gzip archive/],
    [['--url', 'ftp://example', 'clusters', 'list'], /not an http\(s\) URL/],
  ]
  // Independent runs, a few at a time: each is a whole node process.
  const results = await inBatches(usageCases, 4, ([args]) => slipway(args, { url, token: TOKEN }))
  for (const [index, [args, message]] of usageCases.entries()) {
    const result = results[index]!
    t.equal(result.code, 2, `${args.join(' ')}: exit 2 (${result.stderr.trim()})`)
    t.match(result.stderr, message, args.join(' '))
    t.match(result.stderr, /^slipway: .+ \([A-Z_]+\)\n$/, 'one line: slipway: <message> (<CODE>)')
    t.equal(result.stdout, '', 'nothing on stdout')
  }
})

t.test('migrate applies every migration to a fresh database, then none', async (t) => {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'slipway-cli-migrate-'))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  const env = { SLIPWAY_DATA_DIR: path.join(scratch, 'var') }
  const migrations = (await readdir(path.join(REPO_ROOT, 'migrations'))).filter((file) => file.endsWith('.ts')).map((file) => file.replace(/\.ts$/, '')).sort()
  const database = path.join(scratch, 'var', 'slipway.db')
  const described = `sqlite:${database}`

  const first = await slipway(['migrate'], { env, cwd: scratch })
  t.equal(first.code, 0, first.stderr)
  t.equal(first.stdout, [`${described}: applied ${migrations.length} migration(s):`, ...migrations.map((name) => `  ${name}`), ''].join('\n'), 'every migration, in order')
  const stored = new SQLite(database, { readonly: true })
  t.same((stored.prepare('select name from kysely_migration order by name').all() as { name: string }[]).map((row) => row.name), migrations, 'recorded in the database')
  stored.close()

  const [second, json, invalid] = await Promise.all([
    slipway(['migrate'], { env, cwd: scratch }),
    slipway(['migrate', '--json'], { env, cwd: scratch }),
    slipway(['migrate'], { env: { ...env, SLIPWAY_HTTP_PORT: 'eighty' }, cwd: scratch }),
  ])
  t.equal(second.code, 0, second.stderr)
  t.equal(second.stdout, `${described}: up to date, no pending migrations\n`)
  t.same(JSON.parse(json.stdout), { database: described, applied: [] })
  t.equal(invalid.code, 2, 'a configuration that does not validate is a usage error')
  t.match(invalid.stderr, /http\.port: must be integer .*SLIPWAY_HTTP_PORT/)
})

t.test('slipway serve, and the client commands against it', async (t) => {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'slipway-cli-'))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  const engine = spawnSlipway(['serve'], { env: engineEnv(scratch), cwd: scratch })
  let exited = false
  engine.once('exit', () => (exited = true))
  t.teardown(() => {
    if (!exited) engine.kill('SIGKILL')
  })
  let log = ''
  engine.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()))
  const url = await new Promise<string>((resolve, reject) => {
    let lines = ''
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${lines}${log}`)), 60_000)
    engine.stdout!.on('data', (chunk: Buffer) => {
      lines += chunk.toString()
      const serving = lines.split('\n').map((line) => (line.startsWith('{') ? (JSON.parse(line) as { msg?: string; address?: string }) : {})).find((entry) => entry.msg === 'slipway is serving')
      if (serving?.address) {
        clearTimeout(timer)
        resolve(serving.address)
      }
    })
    engine.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${log}`)))
  })
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const run = (args: string[], options: RunOptions = {}) => slipway(args, { url, token: TOKEN, ...options })
  const api = async (method: string, route: string, body?: unknown) => {
    const headers = { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }
    const response = await fetch(`${url}${route}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    return { status: response.status, text: await response.text() }
  }

  t.test('the engine down, no token, a wrong token', async (t) => {
    const port = await closedPort()
    const [down, noToken, wrong, flagToken] = await Promise.all([
      run(['clusters', 'list'], { url: `http://127.0.0.1:${port}` }),
      run(['clusters', 'list'], { token: undefined }),
      run(['machines', 'list'], { token: 'not-the-token-0123456789' }),
      slipway(['machines', 'list', '--token', TOKEN, '--url', url]),
    ])
    t.equal(down.code, 6, down.stderr)
    t.match(down.stderr, new RegExp(`^slipway: cannot reach the engine at http://127\\.0\\.0\\.1:${port}: connection refused \\(ECONNREFUSED\\).*\\(ENGINE_UNREACHABLE\\)\\n$`))
    t.equal(noToken.code, 3)
    t.match(noToken.stderr, /no API token: set SLIPWAY_TOKEN .*\(TOKEN_REQUIRED\)/)
    t.equal(wrong.code, 3)
    t.match(wrong.stderr, /the bearer token is not valid; set SLIPWAY_TOKEN .*\(TOKEN_INVALID\)/)
    t.equal(flagToken.code, 0, '--token and --url work as the variables do')
  })

  t.test('machines: a table, the API JSON, show by MAC or UUID', async (t) => {
    for (const n of [1, 2]) {
      const report = { 'boot-info': { uuid: uuidOf(n), mac: macOf(n) }, interfaces: [{ name: 'eth0', mac: macOf(n), ipv4: `10.7.0.${n}`, cidrv4: '10.7.0.0/24' }], disks: [{ path: '/dev/vda', 'size-bytes': 8 * 1024 ** 3 }] }
      const response = await fetch(`${url}/discovery`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report) })
      t.equal(response.status, 200)
    }
    t.equal((await api('PUT', `/api/v1/machines/${uuidOf(2)}/labels`, { rack: 'r7', zone: 'a' })).status, 200)

    const listed = await run(['machines', 'list'])
    t.equal(listed.code, 0, listed.stderr)
    const lines = listed.stdout.trimEnd().split('\n')
    const rows = tableRows(listed.stdout)
    t.same(rows[0], ['UUID', 'BOOT MAC', 'IP', 'STATE', 'POWER', 'CLUSTER', 'HOSTNAME', 'LABELS', 'SEEN'])
    t.same(rows.slice(1).map((row) => row.slice(0, 5)), [
      [uuidOf(1), macOf(1), '10.7.0.1', 'discovered', '-'],
      [uuidOf(2), macOf(2), '10.7.0.2', 'discovered', '-'],
    ], 'no BMC: no power state (cli-machines-power.test.ts has machines with one)')
    t.equal(rows[2]![7], 'rack=r7,zone=a')
    t.same(lines.map((line) => line.indexOf('discovered') === -1 ? line.indexOf('STATE') : line.indexOf('discovered')), [lines[0]!.indexOf('STATE'), lines[0]!.indexOf('STATE'), lines[0]!.indexOf('STATE')], 'columns are aligned')

    const json = await run(['machines', 'list', '--json', '--label', 'rack=r7'])
    t.equal(json.code, 0)
    t.equal(json.stdout, `${(await api('GET', '/api/v1/machines?label=rack%3Dr7')).text}\n`, "--json prints the API's JSON as it came")
    t.same((JSON.parse(json.stdout) as { uuid: string }[]).map((machine) => machine.uuid), [uuidOf(2)], 'filters reach the API')

    const byMac = await run(['machines', 'show', macOf(1).toUpperCase().replaceAll(':', '-')])
    t.equal(byMac.code, 0, byMac.stderr)
    t.match(byMac.stdout, new RegExp(`^UUID: +${uuidOf(1)}\\nBoot MAC: +${macOf(1)}\\nState: +discovered`))
    t.match(byMac.stdout, /Interfaces:\nNAME +MAC +IPV4 +CIDR[^\n]*\neth0 +52:54:00:c1:00:01 +10\.7\.0\.1 +10\.7\.0\.0\/24/)
    t.match(byMac.stdout, /Disks:\nPATH +SIZE[^\n]*\n\/dev\/vda +8\.0 GiB/)
    t.match(byMac.stdout, /History:\n[^\n]*\n[^\n]*discovered +first discovery report/)
    const byUuid = await run(['machines', 'show', uuidOf(2), '--json'])
    t.match(JSON.parse(byUuid.stdout), { uuid: uuidOf(2), labels: { rack: 'r7' }, events: [{ to_state: 'discovered' }] })

    const unknownMac = await run(['machines', 'show', '52:54:00:ff:ff:ff'])
    t.equal(unknownMac.code, 4)
    t.match(unknownMac.stderr, /^slipway: no machine has an interface with MAC 52:54:00:ff:ff:ff \(MACHINE_NOT_FOUND\)\n$/)
    const unknownUuid = await run(['machines', 'show', uuidOf(9)])
    t.equal(unknownUuid.code, 4)
    t.match(unknownUuid.stderr, /machine .* does not exist.*\(MACHINE_NOT_FOUND\)/)
  })

  t.test('clusters: register from files, list, show, health, conflicts, unknown names, delete; locks', async (t) => {
    await writeFile(path.join(scratch, 'eu.token'), 'eu-cluster-token-0123456789\n')

    const registered = await run(
      ['clusters', 'register', 'eu-1', '--server', 'https://127.0.0.1:6443', '--cluster-token-file', 'eu.token', '--label', 'region=eu', '--label', 'tier=prod', '--region', 'eu-west', '--latitude', '48.85', '--longitude', '2.35'],
      { url, cwd: scratch },
    )
    t.equal(registered.code, 0, registered.stderr)
    t.equal(registered.stdout, 'cluster eu-1 registered\n')
    const second = await run(['clusters', 'register', 'us-1', '--server', 'https://127.0.0.2:6443', '--cluster-token-file', 'eu.token', '--label', 'region=us', '--json'], { cwd: scratch })
    t.equal(second.code, 0, second.stderr)
    t.match(JSON.parse(second.stdout), { name: 'us-1', labels: { region: 'us' }, credential_kind: 'token', source: 'manual' })
    t.notMatch(second.stdout, /eu-cluster-token/, 'the credential is never printed')

    const listed = await run(['clusters', 'list'])
    t.equal(listed.code, 0, listed.stderr)
    const rows = tableRows(listed.stdout)
    t.same(rows[0], ['NAME', 'SOURCE', 'HEALTH', 'NODES', 'VERSION', 'REGION', 'LABELS', 'AGE'])
    t.same(rows.slice(1).map((row) => row.slice(0, 7)), [
      ['eu-1', 'manual', 'unchecked', '-', '-', 'eu-west', 'region=eu,tier=prod'],
      ['us-1', 'manual', 'unchecked', '-', '-', '-', 'region=us'],
    ])
    const selected = await run(['clusters', 'list', '--labels', 'region=eu', '--json'])
    t.same((JSON.parse(selected.stdout) as { name: string }[]).map((cluster) => cluster.name), ['eu-1'])

    const shown = await run(['clusters', 'show', 'eu-1'])
    t.equal(shown.code, 0, shown.stderr)
    t.match(shown.stdout, /^Name: +eu-1\nSource: +manual\nServer: +https:\/\/127\.0\.0\.1:6443\nCredential: +token\n/)
    t.match(shown.stdout, /Location: +eu-west 48\.85,2\.35\n/)
    t.match(shown.stdout, /Health: +not checked yet/)
    const health = await run(['clusters', 'health', 'eu-1'])
    t.equal(health.code, 0)
    t.match(health.stdout, /Health: +not checked yet\n\nStatus changes:\n +none/)

    const unknown = await run(['clusters', 'show', 'nope'])
    t.equal(unknown.code, 4)
    t.equal(unknown.stderr, 'slipway: cluster "nope" does not exist (CLUSTER_NOT_FOUND)\n')
    const duplicate = await run(['clusters', 'register', 'eu-1', '--server', 'https://127.0.0.1:6443', '--cluster-token-file', 'eu.token'], { cwd: scratch })
    t.equal(duplicate.code, 5, duplicate.stderr)
    t.match(duplicate.stderr, /^slipway: .*eu-1.* \([A-Z_]+\)\n$/)
    const plainHttp = await run(['clusters', 'register', 'ap-1', '--server', 'http://127.0.0.1:6443', '--cluster-token-file', 'eu.token'], { cwd: scratch })
    t.equal(plainHttp.code, 5)
    t.match(plainHttp.stderr, /over https.*\(INVALID_SERVER_URL\)/, "the API's message and code")
    t.equal((await api('GET', '/api/v1/clusters/ap-1')).status, 404, 'a rejected registration stored nothing')

    const deleted = await run(['clusters', 'delete', 'us-1', '--yes'])
    t.equal(deleted.code, 0, deleted.stderr)
    t.equal(deleted.stdout, 'cluster us-1 deleted\n')
    t.same((JSON.parse((await run(['clusters', 'list', '--json'])).stdout) as { name: string }[]).map((cluster) => cluster.name), ['eu-1'])

    t.equal((await api('PUT', '/api/v1/locks/rack-7', { slots: 2, ttl_seconds: 600 })).status, 200)
    const locks = await run(['locks', 'list'])
    t.equal(locks.code, 0, locks.stderr)
    t.same(tableRows(locks.stdout), [
      ['GROUP', 'SLOTS', 'FREE', 'TTL', 'HOLDERS'],
      ['rack-7', '2', '2', '600s', '-'],
    ])
    const release = await run(['locks', 'release', 'rack-7', 'machine-that-holds-nothing'])
    t.equal(release.code, 4)
    t.match(release.stderr, /holds no slot of lock group "rack-7" \(LOCK_HOLDER_NOT_FOUND\)/)
  })

  t.test('backup and the inventory', async (t) => {
    const backupFile = path.join(scratch, 'engine.sqlite3')
    const backup = await run(['backup', '--out', backupFile])
    t.equal(backup.code, 0, backup.stderr)
    t.match(backup.stdout, new RegExp(`^wrote [\\d.]+ (?:KiB|MiB) to ${backupFile.replaceAll('.', '\\.')} \\(SQLite database, taken at \\S+, schema \\S+\\)\\n$`))
    t.notOk(existsSync(`${backupFile}.partial`), 'no partial file left')
    const copy = new SQLite(backupFile, { readonly: true })
    t.same(copy.prepare('select uuid from machines order by uuid').all(), [{ uuid: uuidOf(1) }, { uuid: uuidOf(2) }], 'the backup is a database holding the machines')
    copy.close()
    const [again, forced] = await Promise.all([run(['backup', '--out', backupFile]), run(['backup', '-o', backupFile, '--force'])])
    t.equal(again.code, 2, 'an existing file is not replaced without --force')
    t.match(again.stderr, /exists; add --force to replace it \(FILE_EXISTS\)/)
    t.equal(forced.code, 0, `--force replaces it: ${forced.stderr}`)
    const inUse = await slipway(['restore', '--from', backupFile], { env: engineEnv(scratch), cwd: scratch })
    t.equal(inUse.code, 5, 'restore refuses while the engine has the database open')
    t.match(inUse.stderr, /\(DATABASE_IN_USE\)\n$/)

    const inventoryFile = path.join(scratch, 'inventory.json')
    const [exported, toFile] = await Promise.all([run(['inventory', 'export']), run(['inventory', 'export', '--out', inventoryFile])])
    t.equal(exported.code, 0, exported.stderr)
    const inventory = JSON.parse(exported.stdout) as { slipway_inventory: number; machines: { uuid: string }[] }
    t.equal(inventory.slipway_inventory, 1)
    t.same(inventory.machines.map((machine) => machine.uuid).sort(), [uuidOf(1), uuidOf(2)])
    t.equal(toFile.code, 0, toFile.stderr)
    t.match(JSON.parse(readFileSync(inventoryFile, 'utf8')), { slipway_inventory: 1 })
    await writeFile(path.join(scratch, 'bad.json'), JSON.stringify({ slipway_inventory: 99 }))
    await writeFile(path.join(scratch, 'not.json'), 'machines: []\n')
    const [imported, refused, notJson] = await Promise.all([run(['inventory', 'import', inventoryFile]), run(['inventory', 'import', 'bad.json'], { cwd: scratch }), run(['inventory', 'import', 'not.json'], { cwd: scratch })])
    t.equal(imported.code, 0, imported.stderr)
    t.match(imported.stdout, /^KIND +CREATED +UPDATED\nmachines +0 +2\n/, 'the import report as a table')
    t.equal(refused.code, 5, `an inventory the engine refuses: exit 5 (${refused.stderr.trim()})`)
    t.equal(notJson.code, 2, 'not JSON: a usage error, nothing sent')
  })

  t.test('SIGTERM stops it; a configuration that does not validate does not start', async (t) => {
    engine.kill('SIGTERM')
    const [code] = (await once(engine, 'exit')) as [number | null]
    t.equal(code, 0, 'SIGTERM: a graceful stop, exit 0')
    const database = path.join(scratch, 'var', 'slipway.db')
    const [restored, noSnapshot, missing] = await Promise.all([
      slipway(['restore', '--from', 'engine.sqlite3'], { env: engineEnv(scratch), cwd: scratch }),
      slipway(['restore'], { env: engineEnv(scratch), cwd: scratch }),
      slipway(['restore', '--from', 'nowhere.sqlite3'], { env: engineEnv(scratch), cwd: scratch }),
    ])
    t.equal(restored.code, 0, restored.stderr)
    t.match(restored.stdout, new RegExp(`^restored ${database.replaceAll('.', '\\.')} from engine\\.sqlite3 \\(schema \\S+, \\d+ migrations\\)\nthe previous database is kept as \\S+before-restore-\\S+\n$`))
    const restoredDb = new SQLite(database, { readonly: true })
    t.same(restoredDb.prepare('select uuid from machines order by uuid').all(), [{ uuid: uuidOf(1) }, { uuid: uuidOf(2) }], 'the restored database holds the snapshot')
    restoredDb.close()
    t.equal(noSnapshot.code, 2, 'restore without --from: a usage error')
    t.equal(missing.code, 2, 'a snapshot that does not exist: a usage error')
    t.match(missing.stderr, /\(SNAPSHOT_NOT_FOUND\)\n$/)
    const broken = await slipway(['serve'], { env: { ...engineEnv(scratch), SLIPWAY_DHCP_MODE: 'sometimes' }, cwd: scratch })
    t.equal(broken.code, 2, 'serve with a configuration that does not validate: exit 2')
    t.match(broken.stderr, /^slipway: invalid configuration:\n {2}- dhcp\.mode: /)
  })
})
