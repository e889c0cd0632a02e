import { spawn } from 'node:child_process'
import type { BmcTarget, BootDevice, PowerAction } from '../../core/power/bmc.ts'
import { BmcError, type BmcClient } from '../../core/power/bmc-client.ts'

/**
 * IPMI 2.0 through ipmitool's lanplus interface (RMCP+), the client bmclib and most operators use.
 * The password goes in the child's environment (`-E` reads IPMI_PASSWORD), never in its arguments,
 * where any user of the host could read it in /proc. `-v` makes ipmitool say why a session failed,
 * which is what tells a wrong password from a BMC that is not there.
 */

const ACTIONS: Record<PowerAction, string> = { on: 'on', off: 'off', 'soft-off': 'soft', cycle: 'cycle', reset: 'reset' }
const DEVICES: Record<BootDevice, string> = { network: 'pxe', disk: 'disk' }
const MAX_OUTPUT_BYTES = 64 * 1024

export interface IpmitoolOptions {
  binary?: string
  /** ipmitool's own wait for one answer (-N, seconds) and its resends (-R), inside one attempt. */
  answerTimeoutSeconds?: number
  resends?: number
}

export class IpmitoolClient implements BmcClient {
  private readonly binary: string
  private readonly answerTimeoutSeconds: number
  private readonly resends: number

  constructor(options: IpmitoolOptions = {}) {
    this.binary = options.binary ?? 'ipmitool'
    this.answerTimeoutSeconds = options.answerTimeoutSeconds ?? 2
    this.resends = options.resends ?? 1
  }

  async powerState(target: BmcTarget, signal: AbortSignal): Promise<'on' | 'off'> {
    const output = await this.run(target, ['chassis', 'power', 'status'], signal)
    const state = /Chassis Power is (on|off)/.exec(output)?.[1]
    if (state !== 'on' && state !== 'off') throw new BmcError('BMC_PROTOCOL', `unexpected answer to "chassis power status": ${firstLine(output)}`)
    return state
  }

  async power(target: BmcTarget, action: PowerAction, signal: AbortSignal): Promise<void> {
    await this.run(target, ['chassis', 'power', ACTIONS[action]], signal)
  }

  async setBootDevice(target: BmcTarget, device: BootDevice, persistent: boolean, signal: AbortSignal): Promise<void> {
    await this.run(target, ['chassis', 'bootdev', DEVICES[device], ...(persistent ? ['options=persistent'] : [])], signal)
  }

  private run(target: BmcTarget, command: string[], signal: AbortSignal): Promise<string> {
    const options = target.ipmi
    if (!options) throw new BmcError('BMC_PROTOCOL', 'this BMC is not an IPMI BMC')
    const args = [
      '-I', 'lanplus', '-H', target.host, '-p', String(target.port), '-U', target.username, '-E',
      '-C', String(options.cipherSuite), '-L', options.privilege,
      '-N', String(this.answerTimeoutSeconds), '-R', String(this.resends), '-v',
      ...command,
    ]
    return new Promise((resolve, reject) => {
      // Only what ipmitool needs: nothing of the engine's own environment (tokens, database URL) goes along.
      const child = spawn(this.binary, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', IPMI_PASSWORD: target.password }, stdio: ['ignore', 'pipe', 'pipe'], signal })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (chunk: Buffer) => {
        if (stdout.length < MAX_OUTPUT_BYTES) stdout += chunk.toString('utf8')
      })
      child.stderr.on('data', (chunk: Buffer) => {
        if (stderr.length < MAX_OUTPUT_BYTES) stderr += chunk.toString('utf8')
      })
      child.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') reject(new BmcError('BMC_CLIENT_MISSING', `${this.binary} is not installed on the engine's host (Debian and Ubuntu: apt install ipmitool)`))
        else if (error.name === 'AbortError') reject(new BmcError('BMC_TIMEOUT', 'no answer in time'))
        else reject(new BmcError('BMC_PROTOCOL', `${this.binary} could not run: ${error.message}`))
      })
      child.on('close', (code) => {
        if (signal.aborted) return reject(new BmcError('BMC_TIMEOUT', 'no answer in time'))
        if (code === 0) return resolve(stdout)
        reject(classifyFailure(`${stderr}\n${stdout}`, command.join(' ')))
      })
    })
  }
}

/** ipmitool's words for each failure, as version 1.8.19 prints them with -v. */
export function classifyFailure(output: string, command: string): BmcError {
  const lines = output.split('\n').map((line) => line.trim().replace(/^> /, '')).filter((line) => line && !NOISE.some((noise) => noise.test(line)))
  const text = lines.join('\n')
  if (/RAKP 2 HMAC is invalid|unauthorized name|invalid (user ?name|password)/i.test(text)) return new BmcError('BMC_AUTH_FAILED', 'the BMC refused the user name or password')
  if (/unauthorized role or privilege/i.test(text)) return new BmcError('BMC_REFUSED', 'the BMC does not grant this user the privilege level asked for (ipmi.privilege)')
  if (/Get Auth Capabilities error|Error issuing Get Channel Authentication|No response from remote controller|Unable to establish LAN session|Address lookup .* failed/i.test(text)) {
    return new BmcError('BMC_UNREACHABLE', 'no IPMI answer from the BMC (address, port, network, or IPMI over LAN disabled)')
  }
  const refused = lines.find((line) => / failed: /.test(line))
  if (refused) return new BmcError('BMC_REFUSED', `"${command}" was refused: ${refused.slice(refused.indexOf(' failed: ') + 9)}`)
  if (/Unable to establish IPMI v2 \/ RMCP\+ session/.test(text)) return new BmcError('BMC_UNREACHABLE', 'no RMCP+ session could be established (cipher suite, network)')
  return new BmcError('BMC_PROTOCOL', `"${command}" failed: ${lines.at(-1) ?? 'ipmitool said nothing'}`)
}

const NOISE = [/^Loading IANA PEN Registry/, /^Unable to Get Channel Cipher Suites/, /^Get HPM\.x Capabilities request failed/]

const firstLine = (text: string): string => text.split('\n').find((line) => line.trim())?.trim() ?? '(nothing)'
