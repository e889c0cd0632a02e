import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, statSync, unlinkSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { REPO_ROOT, removeTree } from '../helpers/engine.ts'
import { validateWithOfficialSchema } from '../helpers/ignition-schema.ts'

const run = promisify(execFile)

interface Started {
  child: ChildProcess
  address: string
  stderr: () => string
  stdout: () => string
}

/** Starts the engine the way `npm start` does (tsx src/main.ts), on a free loopback port. */
async function startEngineProcess(dataDir: string): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO_ROOT,
    env: { ...process.env, SLIPWAY_DATA_DIR: dataDir, SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_HTTP_PORT: '0', SLIPWAY_DNS_PORT: '0', SLIPWAY_PROXY_PORT: '0', SLIPWAY_AUTH_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stderr!.on('data', (chunk) => (stderr += chunk))
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`engine did not start: ${stderr}`)), 30_000)
    child.stdout!.on('data', (chunk) => {
      stdout += chunk
      const match = /"address":"(http:\/\/127\.0\.0\.1:\d+)".*"msg":"slipway is serving"/.exec(stdout)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    })
    child.once('exit', (code) => reject(new Error(`engine exited with ${code}: ${stderr}`)))
  })
  return { child, address, stderr: () => stderr, stdout: () => stdout }
}

async function stop(started: Started): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => started.child.once('exit', (code) => resolve(code)))
  started.child.kill('SIGTERM')
  return exited
}

const curl = async (url: string, ...args: string[]) => (await run('curl', ['--silent', '--show-error', '--fail-with-body', ...args, url])).stdout

t.test('the engine process serves iPXE and valid Ignition from the sample profiles, and restarts cleanly', async (t) => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-e2e-'))
  t.teardown(() => removeTree(scratch))
  const first = await startEngineProcess(path.join(scratch, 'var'))
  t.teardown(() => void first.child.kill('SIGKILL'))

  const ipxe = await curl(`${first.address}/ipxe?mac=52:54:00:00:00:01`)
  t.match(ipxe, /^#!ipxe\n/)
  t.match(ipxe, /\nkernel \S+ /)
  t.match(ipxe, /\nboot\n$/)
  const ignition = JSON.parse(await curl(`${first.address}/ignition?mac=52:54:00:00:00:01`))
  const report = validateWithOfficialSchema(ignition)
  t.ok(report.ok, report.errors.join('; '))

  // No terminal (a service manager's journal keeps both streams): the token goes to a file, never to a stream.
  const tokenFile = path.join(scratch, 'var', 'generated-admin-token')
  const token = readFileSync(tokenFile, 'utf8').trim()
  t.match(token, /^[A-Za-z0-9_-]{43}$/, 'a generated admin token is written once on first start')
  t.equal(statSync(tokenFile).mode & 0o777, 0o600, 'readable by the engine user only')
  t.notOk(first.stdout().includes(token) || first.stderr().includes(token), 'and never logged')
  t.match(first.stdout(), /the generated admin API token is in \S+generated-admin-token \(mode 0600\)/, 'the log says where it is')
  unlinkSync(tokenFile)
  const groups = JSON.parse(await curl(`${first.address}/api/v1/groups`, '-H', `Authorization: Bearer ${token}`))
  t.ok(groups.some((group: { id: string }) => group.id === 'discovery'))
  t.equal(await stop(first), 0, 'SIGTERM shuts down cleanly')

  const second = await startEngineProcess(path.join(scratch, 'var'))
  t.teardown(() => void second.child.kill('SIGKILL'))
  t.notMatch(second.stderr() + second.stdout(), /generated (the )?admin API token/, 'not handed out again')
  t.notOk(existsSync(tokenFile), 'nor written again')
  const again = JSON.parse(await curl(`${second.address}/api/v1/profiles/discovery`, '-H', `Authorization: Bearer ${token}`))
  t.equal(again.id, 'discovery', 'the same token works after a restart')
  t.equal(await stop(second), 0)
})

t.test('a bad configuration stops start-up with a message naming the setting', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO_ROOT,
    env: { ...process.env, SLIPWAY_HTTP_PORT: 'eighty', SLIPWAY_DATA_DIR: path.join(os.tmpdir(), 'slipway-never-created') },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (chunk) => (stderr += chunk))
  const code = await new Promise((resolve) => child.once('exit', resolve))
  t.equal(code, 1)
  t.match(stderr, /invalid configuration:\n {2}- http\.port: must be integer \(file key http\.port or SLIPWAY_HTTP_PORT\)/)
})
