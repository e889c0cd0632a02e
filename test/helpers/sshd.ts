/**
 * A real OpenSSH server for one test: `sshd -D -e` on 127.0.0.1 and a free unprivileged port, with
 * its own config, host keys, authorized_keys and pid file in a temporary folder, for the current user.
 * Sessions get `PATH=<dir>/fakebin:/usr/bin:/bin`, where recorded fakes of `kexec`, `systemctl` and
 * `reboot` stand in for the commands that take a machine down:
 *
 * - every call appends its argv (tab-separated) to `<dir>/calls.log`;
 * - `systemctl reboot|kexec|poweroff|halt` and `reboot` then SIGKILL the session's sshd process, so
 *   the connection closes as it does when systemd stops sshd on the way down;
 * - `kexec -e` SIGSTOPs it instead: the TCP connection stays open but nothing answers any more, as
 *   when the kernel jumps into the new one without closing anything. Only keepalives notice that.
 *
 * `stop()` kills the daemon and whatever it spawned (by PID) and removes the folder.
 * Needs the Debian packages openssh-server (sshd) and openssh-client (ssh-keygen).
 */
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, appendFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export interface Sshd {
  host: string
  port: number
  username: string
  /** The user's ed25519 key, OpenSSH format (what ssh-keygen writes by default). */
  privateKeyPem: string
  /** A second authorized key: RSA in PEM (PKCS#1, `ssh-keygen -m PEM`). */
  rsaPrivateKeyPem: string
  /** The server's ed25519 host key from its .pub, OpenSSH form without comment (`ssh-ed25519 AAAA...`). */
  hostKey: string
  /** The server also holds an RSA host key, as real machines usually hold several. */
  rsaHostKey: string
  /** The temporary folder (config, keys, fakebin, calls.log). */
  dir: string
  /** PID of the listening daemon. */
  pid: number
  /** The fakes' calls so far, each as its argv: `[['kexec', '-l', '/boot/vmlinuz', ...], ...]`. */
  calls(): string[][]
  clearCalls(): void
  /** The daemon's recent log (stderr, LogLevel DEBUG1 when SLIPWAY_SSHD_DEBUG is set). */
  log(): string
  /** Adds a public key (`ssh-ed25519 AAAA...`) to authorized_keys. */
  authorize(publicKey: string): void
  stop(): Promise<void>
}

const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/usr/local/sbin/sshd']
const START_TIMEOUT_MS = 10_000

/** Finds the nearest sshd ancestor of this script: the session process that carries the connection. */
const FIND_SESSION = `session_pid() {
  pid=$$
  listener=$(cat "$SLIPWAY_SSHD_DIR/sshd.pid" 2>/dev/null)
  while [ "$pid" -gt 1 ]; do
    pid=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$pid/status")
    [ -n "$pid" ] || return 1
    [ "$pid" = "$listener" ] && return 1
    if [ "$(cat "/proc/$pid/comm")" = sshd ]; then echo "$pid"; return 0; fi
  done
  return 1
}
record() {
  line=$(basename "$0")
  for arg in "$@"; do line="$line	$arg"; done
  printf '%s\\n' "$line" >> "$SLIPWAY_SSHD_DIR/calls.log"
}
go_down() {
  pid=$(session_pid) || { echo "fake $(basename "$0"): no sshd session process above me" >&2; exit 1; }
  kill "-$1" "$pid"
}
`

const FAKES: Record<string, string> = {
  systemctl: `record "$@"
case "$1" in reboot|kexec|poweroff|halt) go_down KILL ;; esac
exit 0
`,
  reboot: `record "$@"
go_down KILL
exit 0
`,
  kexec: `record "$@"
for arg in "$@"; do
  case "$arg" in -e|--exec) go_down STOP ;; esac
done
exit 0
`,
}

function findSshd(): string {
  const found = SSHD_CANDIDATES.find((candidate) => existsSync(candidate))
  if (!found) {
    throw new Error(
      `sshd is not installed (looked for ${SSHD_CANDIDATES.join(', ')}): the SSH adapter tests need a real OpenSSH server. ` +
        'Install the Debian package openssh-server (apt-get install --no-install-recommends openssh-server openssh-client).',
    )
  }
  return found
}

function keygen(args: string[]): void {
  try {
    execFileSync('ssh-keygen', ['-q', '-N', '', '-C', '', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('ssh-keygen is not installed: install the Debian package openssh-client')
    }
    throw error
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/** `type base64` of a .pub file, without the comment. */
const publicKey = (file: string) => readFileSync(file, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')

/** PIDs of every live descendant of `root` (read from /proc), deepest last. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const ppid = Number(/^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    } catch {
      // exited while we looked
    }
  }
  const found: number[] = []
  const queue = [root]
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child)
      queue.push(child)
    }
  }
  return found
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export async function startSshd(): Promise<Sshd> {
  const sshd = findSshd()
  // Privilege separation directory; Debian's package creates it only when its service starts.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })

  const dir = mkdtempSync(path.join(os.tmpdir(), 'slipway-sshd-'))
  try {
    keygen(['-t', 'ed25519', '-f', path.join(dir, 'ssh_host_ed25519_key')])
    keygen(['-t', 'rsa', '-b', '2048', '-f', path.join(dir, 'ssh_host_rsa_key')])
    keygen(['-t', 'ed25519', '-f', path.join(dir, 'id_ed25519')])
    keygen(['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-f', path.join(dir, 'id_rsa')])
    const authorizedKeys = path.join(dir, 'authorized_keys')
    writeFileSync(authorizedKeys, `${publicKey(path.join(dir, 'id_ed25519.pub'))}\n${publicKey(path.join(dir, 'id_rsa.pub'))}\n`)

    const fakebin = path.join(dir, 'fakebin')
    mkdirSync(fakebin)
    for (const [name, body] of Object.entries(FAKES)) {
      const file = path.join(fakebin, name)
      writeFileSync(file, `#!/bin/sh\nSLIPWAY_SSHD_DIR='${dir}'\n${FIND_SESSION}${body}`)
      chmodSync(file, 0o755)
    }
    writeFileSync(path.join(dir, 'calls.log'), '')

    const username = os.userInfo().username
    const pidFile = path.join(dir, 'sshd.pid')
    const config = path.join(dir, 'sshd_config')
    let lastError = ''
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort()
      writeFileSync(
        config,
        [
          `Port ${port}`,
          'ListenAddress 127.0.0.1',
          `HostKey ${path.join(dir, 'ssh_host_ed25519_key')}`,
          `HostKey ${path.join(dir, 'ssh_host_rsa_key')}`,
          `PidFile ${pidFile}`,
          `AuthorizedKeysFile ${authorizedKeys}`,
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          'PermitRootLogin prohibit-password',
          `AllowUsers ${username}`,
          `SetEnv PATH=${fakebin}:/usr/bin:/bin`,
          'PrintMotd no',
          'Subsystem sftp internal-sftp',
          `LogLevel ${process.env.SLIPWAY_SSHD_DEBUG ? 'DEBUG1' : 'INFO'}`,
          '',
        ].join('\n'),
      )
      const child = spawn(sshd, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] })
      let log = ''
      child.stderr.setEncoding('utf8')
      const listening = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`sshd did not start listening within ${START_TIMEOUT_MS} ms:\n${log}`)), START_TIMEOUT_MS)
        child.stderr.on('data', (text: string) => {
          log = (log + text).slice(-8_000)
          if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
            clearTimeout(timer)
            resolve()
          }
        })
        child.once('exit', (code, signal) => {
          clearTimeout(timer)
          reject(new Error(`sshd exited (${signal ?? code}) before listening:\n${log}`))
        })
        child.once('error', (error) => {
          clearTimeout(timer)
          reject(error)
        })
      })
      try {
        await listening
      } catch (error) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        lastError = (error as Error).message
        if (/Address already in use/.test(lastError)) continue
        throw error
      }
      const pid = child.pid!
      const exited = once(child, 'exit')

      let stopped: Promise<void> | undefined
      const stop = () =>
        (stopped ??= (async () => {
          // Session processes first (found while the daemon still parents them), then the daemon.
          for (const descendant of descendants(pid)) {
            try {
              process.kill(descendant, 'SIGKILL')
            } catch {
              // already gone
            }
          }
          if (alive(pid)) {
            process.kill(pid, 'SIGTERM')
            const timer = setTimeout(() => alive(pid) && process.kill(pid, 'SIGKILL'), 3_000)
            await exited
            clearTimeout(timer)
          }
          rmSync(dir, { recursive: true, force: true })
        })())

      return {
        host: '127.0.0.1',
        port,
        username,
        privateKeyPem: readFileSync(path.join(dir, 'id_ed25519'), 'utf8'),
        rsaPrivateKeyPem: readFileSync(path.join(dir, 'id_rsa'), 'utf8'),
        hostKey: publicKey(path.join(dir, 'ssh_host_ed25519_key.pub')),
        rsaHostKey: publicKey(path.join(dir, 'ssh_host_rsa_key.pub')),
        dir,
        pid,
        calls: () =>
          readFileSync(path.join(dir, 'calls.log'), 'utf8')
            .split('\n')
            .filter((line) => line !== '')
            .map((line) => line.split('\t')),
        log: () => log,
        clearCalls: () => writeFileSync(path.join(dir, 'calls.log'), ''),
        authorize: (key: string) => appendFileSync(authorizedKeys, `${key.trim()}\n`),
        stop,
      }
    }
    throw new Error(`sshd could not bind a free port three times:\n${lastError}`)
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}
