/**
 * The machine itself, reached over SSH with ssh2: the MachineShell port for rolling updates (write a
 * file, `kexec -l`, `systemctl kexec`, `systemctl reboot`).
 *
 * One connection per call (`run` or `writeFile`): a rollout sends a handful of commands to a machine
 * that reboots between them, so a pool would hold connections that are about to die anyway.
 */
import { createHash, createPrivateKey, randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import ssh2 from 'ssh2'
import type { ClientChannel, ClientErrorExtensions, ConnectConfig, ParsedKey, ServerHostKeyAlgorithm } from 'ssh2'
import { SlipwayError, forbidden, invalid, unavailable } from '../../core/errors.ts'
import type { CommandResult, MachineShell, SshTarget } from '../../core/lifecycle/ports.ts'

// ssh2 is CommonJS and Node's ESM loader sees only some of its names (`utils` is not one of them).
const { Client, utils } = ssh2
type Client = InstanceType<typeof Client>

export interface SshMachineShellOptions {
  /** TCP connect plus SSH handshake and authentication (ssh2's readyTimeout). */
  connectTimeoutMs?: number
  /** For a `run` that gives no timeoutMs, and for each step of `writeFile`. */
  commandTimeoutMs?: number
  /**
   * SSH-level keepalives: a machine that went away without closing the TCP connection (`kexec -e`
   * jumps into the new kernel without a FIN) is noticed after interval × count instead of the
   * kernel's TCP timeout (many minutes).
   */
  keepaliveIntervalMs?: number
  keepaliveCountMax?: number
}

export interface SshRunOptions {
  /** Sent to the command's stdin, then EOF. Without it the command gets EOF at once. */
  stdin?: string
  /**
   * Fails with SSH_TIMEOUT this long after the command was sent (connecting has connectTimeoutMs), asks
   * sshd to KILL it and drops the connection. Defaults to the shell's commandTimeoutMs.
   */
  timeoutMs?: number
  /**
   * The command takes the machine down (`systemctl reboot`, `kexec -e`): a connection that drops before
   * the exit status arrives resolves with `exitCode: null`, `signal: 'SIGHUP'` and `disconnected: true`
   * instead of failing with SSH_CONNECTION_LOST.
   */
  expectDisconnect?: boolean
}

export interface SshCommandResult extends CommandResult {
  /** The host key the machine presented, OpenSSH form (`ssh-ed25519 AAAA...`), to pin on first use. */
  hostKey: string
  /** The connection dropped before the command's exit status arrived (only with expectDisconnect). */
  disconnected: boolean
}

/** SSH names exit signals without "SIG"; ssh2 adds it. A dropped connection reads as a hang-up. */
const DISCONNECT_SIGNAL = 'SIGHUP'
const RETRY_AFTER_SECONDS = 5

export class SshMachineShell implements MachineShell {
  private readonly connectTimeoutMs: number
  private readonly commandTimeoutMs: number
  private readonly keepaliveIntervalMs: number
  private readonly keepaliveCountMax: number

  constructor(options: SshMachineShellOptions = {}) {
    this.connectTimeoutMs = options.connectTimeoutMs ?? 20_000
    this.commandTimeoutMs = options.commandTimeoutMs ?? 10 * 60_000
    this.keepaliveIntervalMs = options.keepaliveIntervalMs ?? 5_000
    this.keepaliveCountMax = options.keepaliveCountMax ?? 3
  }

  async run(target: SshTarget, command: string, options: SshRunOptions = {}): Promise<SshCommandResult> {
    const session = await this.open(target)
    try {
      const result = await session.exec(command, {
        stdin: options.stdin,
        timeoutMs: options.timeoutMs ?? this.commandTimeoutMs,
        expectDisconnect: options.expectDisconnect ?? false,
      })
      return { ...result, hostKey: session.hostKey }
    } finally {
      session.close()
    }
  }

  /**
   * `<path>.slipway-tmp` is written by `cat` from stdin (created 0600 under umask 077, so a secret is
   * never readable by others on its way), given its mode, fsynced, then renamed over `path`, and the
   * folder fsynced: a reader sees the old file or the new one, and a `kexec -e` right after (which
   * skips the shutdown's sync) cannot leave an empty file. Plain exec channels rather than SFTP:
   * every target with sshd has a shell and coreutils, not every one has an SFTP server (Dropbear,
   * minimal images), and one mechanism means one set of failure messages.
   */
  async writeFile(target: SshTarget, path: string, content: string, mode: number): Promise<void> {
    if (!posix.isAbsolute(path) || path.endsWith('/') || path.includes('\0')) {
      throw invalid('SSH_INVALID_PATH', `writeFile needs an absolute file path, not ${JSON.stringify(path)}`)
    }
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
      throw invalid('SSH_INVALID_MODE', `file mode must be an integer from 0 to 0o7777, not ${mode}`)
    }
    const tmp = quote(`${path}.slipway-tmp`)
    const file = quote(path)
    const folder = quote(posix.dirname(path))
    const octal = mode.toString(8).padStart(4, '0')
    // `sync FILE` (coreutils, busybox) fsyncs just that file; plain `sync` where it is not understood.
    const steps: Array<{ step: string; command: string; stdin?: string }> = [
      { step: 'write', command: `rm -f ${tmp} && umask 077 && cat > ${tmp}`, stdin: content },
      { step: 'chmod', command: `chmod ${octal} ${tmp} && { sync ${tmp} 2>/dev/null || sync; }` },
      {
        // mv onto a directory would move the file into it instead of replacing it.
        step: 'rename',
        command: `if [ -d ${file} ]; then echo ${quote(`${path} is a directory`)} >&2; exit 1; fi; mv -f ${tmp} ${file} && { sync ${folder} 2>/dev/null || sync; }`,
      },
    ]

    const session = await this.open(target)
    try {
      for (const { step, command, stdin } of steps) {
        const result = await session.exec(command, { stdin, timeoutMs: this.commandTimeoutMs, expectDisconnect: false })
        if (result.exitCode !== 0) {
          await session.exec(`rm -f ${tmp}`, { timeoutMs: this.commandTimeoutMs, expectDisconnect: false }).catch(() => undefined)
          const why = result.stderr.trim() || (result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`)
          throw unavailable('SSH_WRITE_FILE_FAILED', `writing ${path} on ${where(target)} failed (${step}): ${why}`, RETRY_AFTER_SECONDS, {
            ...about(target),
            path,
            step,
            exitCode: result.exitCode,
            signal: result.signal,
            stderr: result.stderr,
          })
        }
      }
    } finally {
      session.close()
    }
  }

  /** Connects, verifies the host key and authenticates; the session is ready for commands. */
  private open(target: SshTarget): Promise<Session> {
    const privateKey = loadPrivateKey(target)
    const pinned = target.hostKey === undefined ? undefined : parseHostKey(target.hostKey)

    return new Promise((resolve, reject) => {
      const client = new Client()
      let presented: Buffer | undefined
      let refused = false
      let session: Session | undefined
      let failed = false

      const fail = (error: SlipwayError) => {
        if (session || failed) return
        failed = true
        client.removeAllListeners('ready')
        client.destroy()
        reject(error)
      }

      client.on('ready', () => {
        session = new Session(client, target, presented ? openSshKey(presented) : '')
        resolve(session)
      })
      // Listening for errors for the whole life of the client: an unhandled 'error' would crash the engine.
      client.on('error', (error: Error & ClientErrorExtensions) => {
        if (session) return session.lost(error.message)
        fail(this.connectError(target, error, { pinned, presented, refused, privateKey }))
      })
      client.on('end', () => session?.lost('the server closed the connection'))
      client.on('close', () => {
        if (session) return session.lost('the connection closed')
        fail(unavailable('SSH_CONNECT_FAILED', `could not connect to ${where(target)}: the connection closed before authentication`, RETRY_AFTER_SECONDS, about(target)))
      })

      const config: ConnectConfig = {
        host: target.host,
        port: target.port,
        username: target.username,
        privateKey: privateKey.pem,
        readyTimeout: this.connectTimeoutMs,
        keepaliveInterval: this.keepaliveIntervalMs,
        keepaliveCountMax: this.keepaliveCountMax,
        // Given the raw key blob (no hostHash). ssh2 asks before checking the server's signature of the
        // key exchange; a server showing the pinned key without its private half fails right after, so
        // either way nothing authenticates, let alone runs, on a machine that is not the pinned one.
        hostVerifier: (key: Buffer) => {
          presented = key
          if (!pinned || key.equals(pinned.blob)) return true
          refused = true
          return false
        },
      }
      // A server usually holds several host keys (ed25519, ecdsa, rsa) and ssh2 negotiates its own
      // favourite; a pinned key must be compared with the key of its own type, as OpenSSH does.
      if (pinned) config.algorithms = { serverHostKey: hostKeyAlgorithms(pinned.type) }
      try {
        client.connect(config)
      } catch (error) {
        fail(invalid('SSH_INVALID_CONFIG', `cannot connect to ${where(target)}: ${(error as Error).message}`, about(target)))
      }
    })
  }

  private connectError(
    target: SshTarget,
    error: Error & ClientErrorExtensions,
    seen: { pinned?: HostKey; presented?: Buffer; refused: boolean; privateKey: PrivateKey },
  ): SlipwayError {
    const { pinned, presented, refused, privateKey } = seen
    const noKeyOfPinnedType = pinned !== undefined && /no matching host key format/i.test(error.message)
    if (pinned && (refused || noKeyOfPinnedType)) {
      const expected = `${fingerprint(pinned.blob)} (${pinned.type})`
      const got = presented
        ? `${fingerprint(presented)} (${keyType(presented)})`
        : `no ${pinned.type} host key at all (${error.message})`
      return forbidden(
        'SSH_HOST_KEY_MISMATCH',
        `host key of ${where(target)} does not match the pinned key: expected ${expected}, the server presented ${got}. ` +
          'Nothing was run. If the machine was reinstalled, pin its new key; otherwise someone may be intercepting the connection.',
        {
          ...about(target),
          expectedFingerprint: fingerprint(pinned.blob),
          presentedFingerprint: presented ? fingerprint(presented) : undefined,
          presentedKey: presented ? openSshKey(presented) : undefined,
        },
      )
    }
    switch (error.level) {
      case 'client-authentication':
        return forbidden(
          'SSH_AUTH_FAILED',
          `SSH authentication as ${where(target)} failed: the server refused the ${privateKey.type} key ${privateKey.fingerprint} (${error.message})`,
          { ...about(target), keyFingerprint: privateKey.fingerprint },
        )
      case 'client-timeout':
        return unavailable(
          'SSH_TIMEOUT',
          `connecting to ${where(target)} timed out after ${this.connectTimeoutMs} ms (${error.message})`,
          RETRY_AFTER_SECONDS,
          { ...about(target), timeoutMs: this.connectTimeoutMs },
        )
      default:
        return unavailable('SSH_CONNECT_FAILED', `could not connect to ${where(target)}: ${error.message}`, RETRY_AFTER_SECONDS, {
          ...about(target),
          cause: (error as NodeJS.ErrnoException).code ?? error.level,
        })
    }
  }
}

/** An authenticated connection; commands run one after another on their own channels. */
class Session {
  private lostReason: string | undefined

  constructor(
    private readonly client: Client,
    private readonly target: SshTarget,
    readonly hostKey: string,
  ) {}

  lost(reason: string): void {
    this.lostReason ??= reason
  }

  /** A polite disconnect (which also flushes a pending signal request), forced if the server does not answer. */
  close(): void {
    this.client.end()
    setTimeout(() => this.client.destroy(), 2_000).unref()
  }

  exec(
    command: string,
    options: { stdin?: string; timeoutMs: number; expectDisconnect: boolean },
  ): Promise<Omit<SshCommandResult, 'hostKey'>> {
    const { target } = this
    return new Promise((resolve, reject) => {
      const stdout: Buffer[] = []
      const stderr: Buffer[] = []
      const output = () => ({ stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') })
      let channel: ClientChannel | undefined
      let settled = false
      const settle = (outcome: () => void) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        outcome()
      }
      const connectionLost = () => {
        if (options.expectDisconnect) {
          return resolve({ exitCode: null, signal: DISCONNECT_SIGNAL, disconnected: true, ...output() })
        }
        reject(
          unavailable(
            'SSH_CONNECTION_LOST',
            `the connection to ${where(target)} dropped while running ${describe(command)} (${this.lostReason ?? 'no reason given'}); ` +
              'it may or may not have completed',
            RETRY_AFTER_SECONDS,
            { ...about(target), ...output() },
          ),
        )
      }

      const timer = setTimeout(() => {
        settle(() => {
          if (channel) requestSignal(channel, 'KILL')
          // Ends the whole connection: a hung command must not keep it (or the next step) waiting.
          this.close()
          reject(
            unavailable('SSH_TIMEOUT', `${describe(command)} on ${where(target)} did not finish within ${options.timeoutMs} ms`, RETRY_AFTER_SECONDS, {
              ...about(target),
              timeoutMs: options.timeoutMs,
              ...output(),
            }),
          )
        })
      }, options.timeoutMs)

      if (this.lostReason !== undefined) return settle(connectionLost)

      const opening = (error: Error | undefined, opened: ClientChannel) => {
        if (error) {
          return settle(() =>
            this.lostReason !== undefined
              ? connectionLost()
              : reject(unavailable('SSH_CHANNEL_FAILED', `${where(target)} refused a session for ${describe(command)}: ${error.message}`, RETRY_AFTER_SECONDS, about(target))),
          )
        }
        if (settled) return opened.close()
        channel = opened
        let exit: { code: number | null; signal?: string } | undefined
        opened.on('data', (chunk: Buffer) => stdout.push(chunk))
        opened.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
        // Writing stdin to a command that already exited; the exit status is what matters.
        opened.on('error', () => undefined)
        opened.on('exit', (code: number | null, signal?: string) => {
          exit = { code: code ?? null, ...(signal ? { signal } : {}) }
        })
        opened.on('close', () =>
          settle(() => {
            if (exit) return resolve({ exitCode: exit.code, ...(exit.signal ? { signal: exit.signal } : {}), disconnected: false, ...output() })
            // Channels close without an exit status when the connection goes (ssh2 closes them all then).
            if (this.lostReason !== undefined) return connectionLost()
            resolve({ exitCode: null, disconnected: false, ...output() })
          }),
        )
        opened.end(options.stdin)
      }
      try {
        this.client.exec(command, opening)
      } catch (error) {
        // ssh2 throws "Not connected" when the socket is already gone.
        this.lost((error as Error).message)
        settle(connectionLost)
      }
    })
  }
}

/**
 * Asks sshd to signal the command's process group (RFC 4254 6.9; OpenSSH 7.9 and later, and only for
 * sessions of a non-root user: for root, sshd 9.x runs no privilege-separated child and logs
 * "session signalling requires privilege separation"). Without a pty, sshd does not kill a command
 * whose connection went away, so this is the only way to stop it.
 * ssh2's `channel.signal()` sends nothing once stdin has been ended (it checks `writable`), although
 * the channel stays open for requests until it closes; and stdin is always ended at once here, so the
 * request goes through ssh2's protocol object when it is there.
 */
function requestSignal(channel: ClientChannel, name: string): void {
  const internals = channel as unknown as {
    outgoing?: { id: number; state: string }
    _client?: { _protocol?: { signal?: (id: number, name: string) => void } }
  }
  const protocol = internals._client?._protocol
  try {
    if (internals.outgoing && (internals.outgoing.state === 'open' || internals.outgoing.state === 'eof') && typeof protocol?.signal === 'function') {
      protocol.signal(internals.outgoing.id, name)
    } else {
      channel.signal(name)
    }
  } catch {
    // the connection is already going
  }
}

interface HostKey {
  type: string
  blob: Buffer
}

interface PrivateKey {
  /** What ssh2 is given: OpenSSH or PKCS#1/SEC1 PEM. */
  pem: string
  type: string
  fingerprint: string
}

/** `ssh-ed25519 AAAA... [comment]` → the key type and its wire-format blob. */
function parseHostKey(text: string): HostKey {
  const [type, base64] = text.trim().split(/\s+/)
  const blob = base64 !== undefined && /^[A-Za-z0-9+/]+={0,2}$/.test(base64) ? Buffer.from(base64, 'base64') : undefined
  if (!type || !blob || keyType(blob) !== type || utils.parseKey(`${type} ${base64}`) instanceof Error) {
    throw invalid('SSH_INVALID_HOST_KEY', `the pinned host key is not an OpenSSH public key ("ssh-ed25519 AAAA..."): ${describe(text)}`)
  }
  return { type, blob }
}

/**
 * ssh2 reads OpenSSH keys and PKCS#1/SEC1 PEM ("BEGIN RSA/EC PRIVATE KEY") but not PKCS#8 ("BEGIN
 * PRIVATE KEY"), which is what Node's crypto and `ssh-keygen -m PKCS8` write: those are converted.
 * Messages name the key by its public fingerprint only.
 */
function loadPrivateKey(target: SshTarget): PrivateKey {
  let pem = target.privateKeyPem.trim()
  if (/^-----BEGIN PRIVATE KEY-----/.test(pem)) pem = fromPkcs8(pem, target)
  const parsed = utils.parseKey(pem)
  const key: ParsedKey | Error | undefined = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed
  if (key === undefined || key instanceof Error || !key.isPrivateKey()) {
    const why = key instanceof Error ? key.message : 'not a private key'
    throw invalid('SSH_INVALID_PRIVATE_KEY', `the private key for ${where(target)} cannot be used: ${why}`, about(target))
  }
  const publicBlob = key.getPublicSSH()
  return { pem, type: key.type, fingerprint: fingerprint(publicBlob) }
}

function fromPkcs8(pem: string, target: SshTarget): string {
  let key
  try {
    key = createPrivateKey(pem)
  } catch (error) {
    throw invalid('SSH_INVALID_PRIVATE_KEY', `the private key for ${where(target)} cannot be read: ${(error as Error).message}`, about(target))
  }
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return key.export({ type: 'pkcs1', format: 'pem' }).toString().trim()
    case 'ec':
      return key.export({ type: 'sec1', format: 'pem' }).toString().trim()
    case 'ed25519': {
      const jwk = key.export({ format: 'jwk' })
      return openSshEd25519(Buffer.from(jwk.d!, 'base64url'), Buffer.from(jwk.x!, 'base64url'))
    }
    default:
      throw invalid('SSH_INVALID_PRIVATE_KEY', `the private key for ${where(target)} is ${key.asymmetricKeyType}: use ed25519, RSA or ECDSA`, about(target))
  }
}

/** An unencrypted "openssh-key-v1" private key (OpenSSH's PROTOCOL.key) holding one ed25519 key. */
function openSshEd25519(seed: Buffer, publicKey: Buffer): string {
  const type = Buffer.from('ssh-ed25519')
  const publicBlob = Buffer.concat([sshString(type), sshString(publicKey)])
  const check = randomBytes(4)
  let secret = Buffer.concat([check, check, sshString(type), sshString(publicKey), sshString(Buffer.concat([seed, publicKey])), sshString(Buffer.alloc(0))])
  const padding = (8 - (secret.length % 8)) % 8
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: padding }, (_, i) => i + 1))])
  const none = sshString(Buffer.from('none'))
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    none,
    none,
    sshString(Buffer.alloc(0)),
    uint32(1),
    sshString(publicBlob),
    sshString(secret),
  ])
  const lines = body.toString('base64').match(/.{1,70}/g) ?? []
  return ['-----BEGIN OPENSSH PRIVATE KEY-----', ...lines, '-----END OPENSSH PRIVATE KEY-----'].join('\n')
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32BE(value)
  return buffer
}

const sshString = (data: Buffer) => Buffer.concat([uint32(data.length), data])

/** The type name at the start of a wire-format key blob. */
function keyType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined
  const length = blob.readUInt32BE(0)
  return length > 0 && 4 + length <= blob.length ? blob.subarray(4, 4 + length).toString('latin1') : undefined
}

const openSshKey = (blob: Buffer) => `${keyType(blob) ?? 'unknown'} ${blob.toString('base64')}`

/** As ssh-keygen -l prints it: SHA256 of the key blob, unpadded base64. */
export const fingerprint = (blob: Buffer) => `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`

/** The host-key algorithms that present a key of this type (an RSA key signs with SHA-2 or SHA-1). */
function hostKeyAlgorithms(type: string): ServerHostKeyAlgorithm[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type as ServerHostKeyAlgorithm]
}

/** POSIX shell single quoting. */
const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`

const where = (target: SshTarget) => `${target.username}@${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`

const about = (target: SshTarget) => ({ host: target.host, port: target.port, username: target.username })

/** A command as quoted in messages: one line, not too long. */
function describe(command: string): string {
  const line = command.replace(/\s+/g, ' ').trim()
  return JSON.stringify(line.length > 120 ? `${line.slice(0, 117)}...` : line)
}
