/**
 * The SSH adapter against a real OpenSSH server on 127.0.0.1 (test/helpers/sshd.ts), whose sessions
 * find recorded fakes of kexec, systemctl and reboot first in their PATH. Needs the Debian packages
 * openssh-server and openssh-client.
 */
import { execFileSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import t from 'tap'
import { SshMachineShell, fingerprint } from '../../src/adapters/ssh/ssh-machine-shell.ts'
import { SlipwayError } from '../../src/core/errors.ts'
import type { SshTarget } from '../../src/core/lifecycle/ports.ts'
import { startSshd } from '../helpers/sshd.ts'
import { sleep } from '../helpers/wait.ts'

const sshd = await startSshd()
t.teardown(() => sshd.stop())

const shell = new SshMachineShell({ connectTimeoutMs: 5_000, commandTimeoutMs: 20_000 })
const target = (overrides: Partial<SshTarget> = {}): SshTarget => ({
  host: sshd.host,
  port: sshd.port,
  username: sshd.username,
  privateKeyPem: sshd.privateKeyPem,
  ...overrides,
})
const where = `${sshd.username}@127.0.0.1:${sshd.port}`

/** The rejection of `promise`, which must be a SlipwayError. */
async function failure(promise: Promise<unknown>): Promise<SlipwayError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
  if (!('error' in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`)
  if (!(outcome.error instanceof SlipwayError)) throw outcome.error
  return outcome.error
}

/** A fresh public key in OpenSSH form: `ssh-ed25519 AAAA...` or `ecdsa-sha2-nistp256 AAAA...`. */
function randomPublicKey(type: 'ssh-ed25519' | 'ecdsa-sha2-nistp256'): string {
  const string = (data: Buffer) => {
    const length = Buffer.alloc(4)
    length.writeUInt32BE(data.length)
    return Buffer.concat([length, data])
  }
  if (type === 'ssh-ed25519') {
    const { publicKey } = generateKeyPairSync('ed25519')
    const x = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')
    return `${type} ${Buffer.concat([string(Buffer.from(type)), string(x)]).toString('base64')}`
  }
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' })
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])
  return `${type} ${Buffer.concat([string(Buffer.from(type)), string(Buffer.from('nistp256')), string(point)]).toString('base64')}`
}

/** What `ssh-keygen -l` prints as the fingerprint of a .pub file. */
const keygenFingerprint = (file: string) => execFileSync('ssh-keygen', ['-l', '-f', file]).toString().split(' ')[1]!

const privateKeyBody = (pem: string) => pem.split('\n').filter((line) => line !== '' && !line.startsWith('-----'))

t.test('runs a command: stdout, stderr, exit code and the host key seen', async (t) => {
  const ok = await shell.run(target(), 'echo out; echo err >&2')
  t.equal(ok.exitCode, 0)
  t.equal(ok.stdout, 'out\n')
  t.equal(ok.stderr, 'err\n')
  t.notOk(ok.signal)
  t.equal(ok.disconnected, false)
  t.equal(ok.hostKey, sshd.hostKey)

  const failed = await shell.run(target(), 'echo partial; echo "no such thing" >&2; exit 3')
  t.equal(failed.exitCode, 3, 'a non-zero exit resolves')
  t.equal(failed.stdout, 'partial\n')
  t.equal(failed.stderr, 'no such thing\n')

  const killed = await shell.run(target(), 'kill -TERM $$')
  t.equal(killed.exitCode, null)
  t.equal(killed.signal, 'SIGTERM', 'a command ended by a signal reports it')
})

t.test('stdin is passed through, then EOF', async (t) => {
  const text = 'first line\nzweite Zeile: äöü ✓\n'
  const result = await shell.run(target(), 'cat; echo "[$(printf %s "$(cat)" | wc -c)]"', { stdin: text })
  t.equal(result.stdout, `${text}[0]\n`, 'cat sees the bytes, then EOF')
  const noStdin = await shell.run(target(), 'cat; echo done')
  t.equal(noStdin.stdout, 'done\n', 'without stdin a command reading it gets EOF at once')
})

t.test('keys: OpenSSH ed25519, PEM RSA, and PKCS#8 as Node writes it', async (t) => {
  t.match(sshd.rsaPrivateKeyPem, /^-----BEGIN RSA PRIVATE KEY-----/)
  t.equal((await shell.run(target({ privateKeyPem: sshd.rsaPrivateKeyPem }), 'echo rsa')).stdout, 'rsa\n')

  const pkcs8 = generateKeyPairSync('ed25519')
  const x = Buffer.from(pkcs8.publicKey.export({ format: 'jwk' }).x!, 'base64url')
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), x])
  sshd.authorize(`ssh-ed25519 ${blob.toString('base64')}`)
  const pem = pkcs8.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  t.match(pem, /^-----BEGIN PRIVATE KEY-----/)
  t.equal((await shell.run(target({ privateKeyPem: pem }), 'echo pkcs8')).stdout, 'pkcs8\n')

  const rsaPkcs8 = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const rsaPem = rsaPkcs8.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const refused = await failure(shell.run(target({ privateKeyPem: rsaPem }), 'true'))
  t.equal(refused.code, 'SSH_AUTH_FAILED', 'a PKCS#8 RSA key is read (and refused by the server: not authorized)')

  const garbage = await failure(shell.run(target({ privateKeyPem: '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----' }), 'true'))
  t.equal(garbage.code, 'SSH_INVALID_PRIVATE_KEY')
  t.equal(garbage.kind, 'invalid')
})

t.test('writeFile: content and mode, atomically', async (t) => {
  const dir = path.join(sshd.dir, 'etc')
  mkdirSync(dir)
  const file = path.join(dir, "it's a kubelet.conf")
  const content = 'KUBELET_ARGS="--node-ip=10.0.0.5"\nnon-ASCII: ✓\n'
  await shell.writeFile(target(), file, content, 0o640)
  t.equal(readFileSync(file, 'utf8'), content)
  t.equal(statSync(file).mode & 0o7777, 0o640, 'mode on disk')
  const remote = await shell.run(target(), `stat -c '%a %s' "${file.replace(/"/g, '\\"')}"`)
  t.equal(remote.stdout, `640 ${Buffer.byteLength(content)}\n`, 'mode and size over ssh')
  t.notOk(existsSync(`${file}.slipway-tmp`), 'no temporary file left')

  const before = statSync(file).ino
  await shell.writeFile(target(), file, 'secret\n', 0o600)
  t.equal(readFileSync(file, 'utf8'), 'secret\n')
  t.equal(statSync(file).mode & 0o7777, 0o600)
  t.not(statSync(file).ino, before, 'replaced by a rename, not rewritten in place')
  t.notOk(existsSync(`${file}.slipway-tmp`))

  await shell.writeFile(target(), path.join(dir, 'empty'), '', 0o644)
  t.equal(readFileSync(path.join(dir, 'empty'), 'utf8'), '')

  // A leftover from an interrupted write (say, world-readable) is replaced, not reused.
  writeFileSync(`${file}.slipway-tmp`, 'stale', { mode: 0o666 })
  await shell.writeFile(target(), file, 'fresh\n', 0o600)
  t.equal(readFileSync(file, 'utf8'), 'fresh\n')
  t.equal(statSync(file).mode & 0o7777, 0o600)
  t.notOk(existsSync(`${file}.slipway-tmp`))
})

t.test('writeFile fails loudly with the remote stderr and leaves nothing behind', async (t) => {
  const missing = path.join(sshd.dir, 'no-such-dir', 'file.conf')
  const error = await failure(shell.writeFile(target(), missing, 'x', 0o644))
  t.equal(error.code, 'SSH_WRITE_FILE_FAILED')
  t.match(error.message, /No such file or directory/)
  t.match(error.message, where)
  t.equal(error.details?.step, 'write')

  const folder = path.join(sshd.dir, 'a-folder')
  mkdirSync(folder)
  const ontoFolder = await failure(shell.writeFile(target(), folder, 'x', 0o644))
  t.equal(ontoFolder.details?.step, 'rename')
  t.match(ontoFolder.message, /is a directory/)
  t.ok(statSync(folder).isDirectory(), 'the folder is untouched')
  t.notOk(existsSync(`${folder}.slipway-tmp`), 'the temporary file is removed')

  t.equal((await failure(shell.writeFile(target(), 'relative/path', 'x', 0o644))).code, 'SSH_INVALID_PATH')
  t.equal((await failure(shell.writeFile(target(), '/tmp/x', 'x', 0o10000))).code, 'SSH_INVALID_MODE')
})

t.test('host key: first use reports it, a pinned key is checked', async (t) => {
  const firstUse = await shell.run(target(), 'true')
  t.equal(firstUse.hostKey, sshd.hostKey, 'the key seen is the server .pub')

  const pinned = await shell.run(target({ hostKey: `${sshd.hostKey} root@machine-1` }), 'echo pinned')
  t.equal(pinned.stdout, 'pinned\n', 'a matching pin (with a known_hosts comment) connects')

  // The server holds ed25519 and RSA host keys: a pinned RSA key must be compared with its RSA key,
  // not refused because the server preferred to show its ed25519 one.
  const rsa = await shell.run(target({ hostKey: sshd.rsaHostKey }), 'echo rsa')
  t.equal(rsa.stdout, 'rsa\n')
  t.equal(rsa.hostKey, sshd.rsaHostKey)

  const invalidPin = await failure(shell.run(target({ hostKey: 'not a key' }), 'true'))
  t.equal(invalidPin.code, 'SSH_INVALID_HOST_KEY')
})

t.test('host key mismatch: refused before anything runs, with both fingerprints', async (t) => {
  sshd.clearCalls()
  const wrong = randomPublicKey('ssh-ed25519')
  const error = await failure(shell.run(target({ hostKey: wrong }), 'systemctl reboot', { expectDisconnect: true }))
  t.equal(error.code, 'SSH_HOST_KEY_MISMATCH')
  t.equal(error.kind, 'forbidden')
  const expected = fingerprint(Buffer.from(wrong.split(' ')[1]!, 'base64'))
  const presented = keygenFingerprint(path.join(sshd.dir, 'ssh_host_ed25519_key.pub'))
  t.match(presented, /^SHA256:[A-Za-z0-9+/]{43}$/)
  t.ok(error.message.includes(expected), `names the pinned key ${expected}`)
  t.ok(error.message.includes(presented), `names the presented key as ssh-keygen does: ${presented}`)
  t.match(error.message, where)
  t.equal(error.details?.presentedKey, sshd.hostKey, 'the presented key is there to pin after a reinstall')
  const everything = `${error.message} ${JSON.stringify(error.details)}`
  t.notOk(
    privateKeyBody(sshd.privateKeyPem).some((line) => everything.includes(line)),
    'nothing of the private key',
  )
  t.same(sshd.calls(), [], 'the command never ran')

  // Pinned to a key type the server does not hold at all: also a mismatch, not a vague handshake error.
  const ecdsa = await failure(shell.run(target({ hostKey: randomPublicKey('ecdsa-sha2-nistp256') }), 'systemctl reboot'))
  t.equal(ecdsa.code, 'SSH_HOST_KEY_MISMATCH')
  t.match(ecdsa.message, /no ecdsa-sha2-nistp256 host key/)
  t.same(sshd.calls(), [])
})

t.test('a private key the server does not accept: SSH_AUTH_FAILED', async (t) => {
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()
  const error = await failure(shell.run(target({ privateKeyPem: stranger }), 'true'))
  t.equal(error.code, 'SSH_AUTH_FAILED')
  t.equal(error.kind, 'forbidden')
  t.match(error.message, where)
  t.match(error.message, /SHA256:/, 'names the key by its public fingerprint')
  t.notOk(privateKeyBody(stranger).some((line) => error.message.includes(line)))
})

t.test('nobody listening: SSH_CONNECT_FAILED', async (t) => {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  const error = await failure(shell.run(target({ port }), 'true'))
  t.equal(error.code, 'SSH_CONNECT_FAILED')
  t.equal(error.kind, 'unavailable')
  t.match(error.message, `${sshd.username}@127.0.0.1:${port}`)
  t.match(error.message, /ECONNREFUSED/)
})

t.test('a server that never speaks: SSH_TIMEOUT after the connect timeout', async (t) => {
  const sockets = new Set<net.Socket>()
  const silent = net.createServer((socket) => sockets.add(socket)).listen(0, '127.0.0.1')
  await new Promise((resolve) => silent.once('listening', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    silent.close()
  })
  const { port } = silent.address() as net.AddressInfo
  const started = Date.now()
  const error = await failure(new SshMachineShell({ connectTimeoutMs: 500 }).run(target({ port }), 'true'))
  t.equal(error.code, 'SSH_TIMEOUT')
  t.equal(error.kind, 'unavailable')
  t.match(error.message, `127.0.0.1:${port}`)
  t.ok(Date.now() - started < 3_000, 'gave up after about 500 ms')
})

t.test('a command running past timeoutMs: SSH_TIMEOUT, and a KILL is requested', async (t) => {
  const started = Date.now()
  // Long enough for the connection and the echo on a loaded machine; short next to the sleep.
  const error = await failure(shell.run(target(), 'echo started; exec sleep 31337', { timeoutMs: 3000 }))
  t.equal(error.code, 'SSH_TIMEOUT')
  t.equal(error.kind, 'unavailable')
  t.match(error.message, /sleep 31337/)
  t.match(error.message, where)
  t.equal(error.details?.stdout, 'started\n', 'output so far is kept')
  t.ok(Date.now() - started < 8_000)
  const sleeping = () =>
    readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x0031337\x00'
        } catch {
          return false
        }
      })
      .map(Number)
  if (process.getuid?.() === 0) {
    // sshd 9.x refuses signals to root sessions (no privilege-separated child): the request is all
    // there is to check, then the test ends its own stray sleep.
    for (let i = 0; i < 30 && !/session_signal_req/.test(sshd.log()); i++) await sleep(100)
    t.match(sshd.log(), /session_signal_req/, 'the KILL request reached sshd')
    for (const pid of sleeping()) process.kill(pid, 'SIGKILL')
  } else {
    for (let i = 0; i < 20 && sleeping().length > 0; i++) await sleep(100)
    t.same(sleeping(), [], 'sshd killed the command')
  }
})

t.test('kexec: the load and the reboot land in the fakes with their arguments; the drop resolves', async (t) => {
  sshd.clearCalls()
  const command =
    "kexec -l /boot/vmlinuz-6.1.0-18-amd64 --initrd=/boot/initrd.img-6.1.0-18-amd64 --append='root=/dev/sda2 ro console=ttyS0' && systemctl kexec"
  const result = await shell.run(target(), command, { expectDisconnect: true, timeoutMs: 10_000 })
  t.equal(result.exitCode, null)
  t.equal(result.signal, 'SIGHUP')
  t.equal(result.disconnected, true)
  t.same(sshd.calls(), [
    ['kexec', '-l', '/boot/vmlinuz-6.1.0-18-amd64', '--initrd=/boot/initrd.img-6.1.0-18-amd64', '--append=root=/dev/sda2 ro console=ttyS0'],
    ['systemctl', 'kexec'],
  ])
})

t.test('the connection dropping mid-command (systemctl reboot kills the session)', async (t) => {
  sshd.clearCalls()
  const expected = await shell.run(target(), 'echo before; systemctl reboot; sleep 1; echo after', { expectDisconnect: true })
  t.equal(expected.disconnected, true, 'ssh2 saw the connection close: the session really died')
  t.equal(expected.exitCode, null)
  t.equal(expected.signal, 'SIGHUP')
  // Output still in flight when the session is killed may be lost, as on a machine that reboots.
  t.ok(['before\n', ''].includes(expected.stdout), `output until the drop at most (${JSON.stringify(expected.stdout)})`)
  t.notMatch(expected.stdout, /after/, 'nothing after the drop')
  t.same(sshd.calls(), [['systemctl', 'reboot']])

  const unexpected = await failure(shell.run(target(), 'echo before; reboot; sleep 1'))
  t.equal(unexpected.code, 'SSH_CONNECTION_LOST', 'without expectDisconnect the drop is an error')
  t.equal(unexpected.kind, 'unavailable')
  t.equal(unexpected.details?.stdout, 'before\n')

  const after = await shell.run(target(), 'echo still serving')
  t.equal(after.stdout, 'still serving\n', 'only that session died, the daemon serves on')

  const normal = await shell.run(target(), 'systemctl daemon-reload', { expectDisconnect: true })
  t.equal(normal.exitCode, 0, 'a command that does not drop the connection exits as usual')
  t.equal(normal.disconnected, false)
})

t.test('kexec -e: the machine vanishes without closing TCP, keepalives notice', async (t) => {
  sshd.clearCalls()
  const quick = new SshMachineShell({ keepaliveIntervalMs: 300, keepaliveCountMax: 2 })
  const started = Date.now()
  const result = await quick.run(target(), 'echo jumping; kexec -e', { expectDisconnect: true, timeoutMs: 20_000 })
  t.equal(result.disconnected, true)
  t.equal(result.exitCode, null)
  t.equal(result.stdout, 'jumping\n')
  t.ok(Date.now() - started < 5_000, `noticed in ${Date.now() - started} ms`)
  t.same(sshd.calls(), [['kexec', '-e']])
})
