import { BOOT_DEVICES, POWER_ACTIONS } from '../../../core/power/bmc.ts'
import type { BmcView, DeprovisionView, FlowView } from '../api-types.ts'
import { CliError, EXIT, usageError, type ExitCode } from '../cli-error.ts'
import { flag, integerValue, positional, secondsValue, stringValue, stringValues, WAIT_OPTIONS, waitSettings, type CommandContext, type CommandSpec } from '../command.ts'
import { readTextFile } from '../documents.ts'
import { ProgressDisplay, watch, type WatchStep } from '../progress.ts'

/** A machine's BMC and its power, from the command line: the password is only ever read from a file. */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

interface BringUpView {
  id: string
  state: 'running' | 'done'
  machines: { uuid: string; batch: number; state: string; error: { code: string; message: string } | null }[]
}

function machineUuid(context: CommandContext, index = 0): string {
  const uuid = positional(context, index)
  if (!UUID.test(uuid)) throw usageError(`"${uuid}" is not a machine UUID`)
  return uuid.toLowerCase()
}

async function printBmc(context: CommandContext, uuid: string): Promise<ExitCode> {
  const answer = await (await context.api()).call<BmcView>('GET', `/api/v1/machines/${uuid}/bmc`)
  if (context.out.json) {
    context.out.printJson(answer.raw)
    return EXIT.ok
  }
  const bmc = answer.data
  context.out.fields([
    ['Machine', bmc.machine_uuid],
    ['Protocol', bmc.protocol],
    ['Address', `${bmc.host}:${bmc.port}`],
    ['User', bmc.username],
    ['Password', 'set (sealed, never shown)'],
    ...(bmc.ipmi ? ([['IPMI', `cipher suite ${bmc.ipmi.cipher_suite}, ${bmc.ipmi.privilege}`]] as [string, unknown][]) : []),
    ...(bmc.redfish ? ([['Redfish', `${bmc.redfish.system_path ?? 'the only system'}, TLS ${bmc.redfish.verify_tls ? (bmc.redfish.ca_bundle ? 'verified (own CA)' : 'verified') : 'NOT verified'}`]] as [string, unknown][]) : []),
    ['Power', `${bmc.power}${bmc.power_checked_at ? ` (read ${bmc.power_checked_at})` : ''}`],
    ['Last error', bmc.last_error ? `${bmc.last_error.code} at ${bmc.last_error.at}: ${bmc.last_error.message}` : '-'],
  ])
  return EXIT.ok
}

function bringUpStep(run: BringUpView): WatchStep {
  const done = run.machines.filter((machine) => machine.state === 'on').length
  const failed = run.machines.filter((machine) => machine.state === 'failed').length
  const moving = run.machines.filter((machine) => machine.state === 'powering-on').map((machine) => machine.uuid.slice(0, 8))
  const counts = { done, failed, total: run.machines.length, ...(moving.length ? { detail: `powering on: ${moving.join(', ')}` } : {}) }
  if (run.state === 'running') return { counts, events: [] }
  return { counts, events: [], outcome: failed === 0 ? 'succeeded' : 'failed' }
}

export const powerCommands: CommandSpec[] = [
  {
    path: ['machines', 'bmc', 'set'],
    summary: "set a machine's BMC (it need not be discovered yet); the password is read from a file",
    args: '<uuid>',
    arity: [1, 1],
    options: {
      protocol: { type: 'string', value: 'ipmi|redfish', help: 'how the engine talks to the BMC (required)' },
      address: { type: 'string', value: 'HOST[:PORT]', help: "the BMC (port: 623 for IPMI, 443 for Redfish); left out: the address the machine's discovery agent read from its BMC" },
      user: { type: 'string', value: 'NAME', help: 'the BMC user' },
      'password-file': { type: 'string', value: 'FILE', help: 'file holding the password (left out: keep the stored one)' },
      'cipher-suite': { type: 'string', value: 'N', help: 'IPMI: RMCP+ cipher suite (default 3)' },
      privilege: { type: 'string', value: 'LEVEL', help: 'IPMI: OPERATOR or ADMINISTRATOR (default)' },
      'system-path': { type: 'string', value: 'PATH', help: 'Redfish: /redfish/v1/Systems/<id> (default: the only one)' },
      'ca-file': { type: 'string', value: 'FILE', help: "Redfish: PEM CA certificates of the BMC's certificate" },
      'no-verify-tls': { type: 'boolean', help: "Redfish: do not verify the BMC's certificate" },
    },
    async run(context) {
      const uuid = machineUuid(context)
      const protocol = stringValue(context, 'protocol')
      if (protocol !== 'ipmi' && protocol !== 'redfish') throw usageError('--protocol is ipmi or redfish')
      const address = stringValue(context, 'address')
      const user = stringValue(context, 'user')
      if (!user) throw usageError('--user is required')
      const parsed = address === undefined ? undefined : /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(address)
      if (address !== undefined && !parsed) throw usageError(`--address "${address}" is HOST or HOST:PORT`)
      const passwordFile = stringValue(context, 'password-file')
      const password = passwordFile === undefined ? undefined : (await readTextFile(passwordFile, context.cwd, 'BMC password file')).replace(/\r?\n$/, '')
      const cipherSuite = stringValue(context, 'cipher-suite')
      const caFile = stringValue(context, 'ca-file')
      const body = {
        protocol,
        ...(parsed ? { host: parsed[1]!.replace(/^\[|\]$/g, '') } : {}),
        ...(parsed?.[2] ? { port: Number(parsed[2]) } : {}),
        username: user,
        ...(password !== undefined ? { password } : {}),
        ...(protocol === 'ipmi'
          ? { ipmi: { ...(cipherSuite ? { cipher_suite: Number(cipherSuite) } : {}), ...(stringValue(context, 'privilege') ? { privilege: stringValue(context, 'privilege') } : {}) } }
          : {
              redfish: {
                ...(stringValue(context, 'system-path') ? { system_path: stringValue(context, 'system-path') } : {}),
                ...(caFile ? { ca_bundle: await readTextFile(caFile, context.cwd, 'CA file') } : {}),
                ...(flag(context, 'no-verify-tls') ? { verify_tls: false } : {}),
              },
            }),
      }
      await (await context.api()).call('PUT', `/api/v1/machines/${uuid}/bmc`, { json: body })
      return printBmc(context, uuid)
    },
  },
  {
    path: ['machines', 'bmc', 'show'],
    summary: "a machine's BMC and the power state it last reported (never the password)",
    args: '<uuid>',
    arity: [1, 1],
    run: (context) => printBmc(context, machineUuid(context)),
  },
  {
    path: ['machines', 'bmc', 'remove'],
    summary: "forget a machine's BMC",
    args: '<uuid>',
    arity: [1, 1],
    async run(context) {
      const uuid = machineUuid(context)
      await (await context.api()).call('DELETE', `/api/v1/machines/${uuid}/bmc`)
      context.out.print(`BMC of ${uuid} removed`)
      return EXIT.ok
    },
  },
  {
    path: ['machines', 'power'],
    summary: `ask a machine's BMC for its power state, or ${POWER_ACTIONS.join(', ')} it`,
    args: '<uuid> [action]',
    arity: [1, 2],
    async run(context) {
      const uuid = machineUuid(context)
      const action = context.positionals[1]
      if (action !== undefined && !(POWER_ACTIONS as readonly string[]).includes(action)) throw usageError(`the action is one of ${POWER_ACTIONS.join(', ')}`)
      const api = await context.api()
      const answer = action === undefined ? await api.call<{ power: string; attempts: number; ms: number }>('POST', `/api/v1/machines/${uuid}/power/query`) : await api.call<{ power: string; attempts: number; ms: number }>('POST', `/api/v1/machines/${uuid}/power`, { json: { action } })
      if (context.out.json) context.out.printJson(answer.raw)
      else context.out.print(`${uuid}: power ${answer.data.power} (${answer.data.ms} ms${answer.data.attempts > 1 ? `, ${answer.data.attempts} attempts` : ''})`)
      return EXIT.ok
    },
  },
  {
    path: ['machines', 'boot-device'],
    summary: 'set the device a machine boots from next (network or disk)',
    args: '<uuid> <network|disk>',
    arity: [2, 2],
    options: { persistent: { type: 'boolean', help: 'every boot until changed, not only the next one' } },
    async run(context) {
      const uuid = machineUuid(context)
      const device = positional(context, 1)
      if (!(BOOT_DEVICES as readonly string[]).includes(device)) throw usageError(`the device is one of ${BOOT_DEVICES.join(', ')}`)
      await (await context.api()).call('PUT', `/api/v1/machines/${uuid}/boot-device`, { json: { device, persistent: flag(context, 'persistent') } })
      context.out.print(`${uuid} boots from the ${device} ${flag(context, 'persistent') ? 'from now on' : 'next time'}`)
      return EXIT.ok
    },
  },
  {
    path: ['machines', 'reinstall'],
    summary: 're-provision a machine with a role: next boot from the network, power cycle; it installs its role again',
    args: '<uuid>',
    arity: [1, 1],
    run: (context) => runFlow(context, 'reinstall'),
  },
  {
    path: ['machines', 'deprovision'],
    summary: 'take a machine out of service: its disks are wiped on its next (network) boot, then it is powered off',
    args: '<uuid>',
    arity: [1, 1],
    options: { status: { type: 'boolean', help: 'show where a deprovision stands instead of starting one' } },
    async run(context) {
      if (!flag(context, 'status')) return runFlow(context, 'deprovision')
      const uuid = machineUuid(context)
      const answer = await (await context.api()).call<DeprovisionView>('GET', `/api/v1/machines/${uuid}/deprovision`)
      if (context.out.json) context.out.printJson(answer.raw)
      else printDeprovision(context, answer.data)
      return EXIT.ok
    },
  },
  {
    path: ['machines', 'return'],
    summary: 'return a deprovisioned machine to the pool (the scheduler may place it again)',
    args: '<uuid>',
    arity: [1, 1],
    async run(context) {
      const uuid = machineUuid(context)
      await (await context.api()).call('DELETE', `/api/v1/machines/${uuid}/deprovision`)
      context.out.print(`${uuid} is back in the pool`)
      return EXIT.ok
    },
  },
  {
    path: ['machines', 'bring-up'],
    summary: 'power machines on (listed, or by --label) in batches with a pause between them (next boot from the network first)',
    args: '[uuid...]',
    arity: [0, 1000],
    options: {
      label: { type: 'string', value: 'KEY=VALUE', multiple: true, help: 'instead of UUIDs: every known machine with this label (all labels given)' },
      batch: { type: 'string', value: 'N', help: 'machines powered on together (default 4)' },
      pause: { type: 'string', value: 'SECONDS', help: 'wait between batches (default 30)' },
      boot: { type: 'string', value: 'network|disk|unchanged', help: 'next boot device set first (default network)' },
      ...WAIT_OPTIONS,
      wait: { type: 'boolean', help: 'follow the bring-up to its end (progress bar); exit 1 if a machine failed' },
    },
    async run(context) {
      const machines = context.positionals.map((_, index) => machineUuid(context, index))
      const labels = stringValues(context, 'label')
      if ((machines.length > 0) === (labels.length > 0)) throw usageError('name the machines by UUID or by --label, one of the two')
      const selector: Record<string, string> = {}
      for (const label of labels) {
        const split = label.indexOf('=')
        if (split <= 0) throw usageError(`--label takes key=value, not "${label}"`)
        selector[label.slice(0, split)] = label.slice(split + 1)
      }
      const boot = stringValue(context, 'boot') ?? 'network'
      if (!['network', 'disk', 'unchanged'].includes(boot)) throw usageError('--boot is network, disk or unchanged')
      const body = {
        ...(machines.length ? { machines } : { labels: selector }),
        batch_size: integerValue(context, 'batch', 1, 100) ?? 4,
        pause_seconds: secondsValue(context, 'pause', 30_000) / 1000,
        boot_device: boot === 'unchanged' ? null : boot,
      }
      const api = await context.api()
      const started = await api.call<BringUpView>('POST', '/api/v1/power/bring-ups', { json: body })
      const id = started.data.id
      if (!flag(context, 'wait')) {
        if (context.out.json) context.out.printJson(started.raw)
        else context.out.print(`bring-up ${id} started: ${started.data.machines.length} machine(s) in batches of ${body.batch_size}, ${body.pause_seconds} s apart (follow it: slipway machines bring-up-status ${id})`)
        return EXIT.ok
      }
      return followBringUp(context, id)
    },
  },
  {
    path: ['machines', 'bring-up-status'],
    summary: 'a bring-up machine by machine (--wait follows it to its end)',
    args: '<id>',
    arity: [1, 1],
    options: { ...WAIT_OPTIONS, wait: { type: 'boolean', help: 'follow it to its end (progress bar)' } },
    async run(context) {
      const id = positional(context, 0)
      if (flag(context, 'wait')) return followBringUp(context, id)
      const answer = await (await context.api()).call<BringUpView>('GET', `/api/v1/power/bring-ups/${encodeURIComponent(id)}`)
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.print(`bring-up ${id}: ${answer.data.state}`)
      context.out.table(
        [{ header: 'MACHINE' }, { header: 'BATCH', align: 'right' }, { header: 'STATE' }, { header: 'ERROR', shrink: true }],
        answer.data.machines.map((machine) => [machine.uuid, machine.batch, machine.state, machine.error ? `${machine.error.code}: ${machine.error.message}` : '']),
        '  none',
      )
      return EXIT.ok
    },
  },
]

async function runFlow(context: CommandContext, flow: 'reinstall' | 'deprovision'): Promise<ExitCode> {
  const uuid = machineUuid(context)
  const answer = await (await context.api()).call<FlowView>('POST', `/api/v1/machines/${uuid}/${flow}`)
  if (context.out.json) {
    context.out.printJson(answer.raw)
    return EXIT.ok
  }
  const { power_action: action, power, state } = answer.data
  const powered = action === 'cycle' ? 'power-cycled' : 'powered on'
  if (flow === 'reinstall') context.out.print(`${uuid} is ${state} and ${powered} (power ${power}): it boots from the network and installs its role again`)
  else context.out.print(`${uuid} is out of the pool and ${powered} (power ${power}): its disks are wiped on this boot, then it is powered off (slipway machines deprovision --status ${uuid})`)
  return EXIT.ok
}

function printDeprovision(context: CommandContext, deprovision: DeprovisionView): void {
  context.out.fields([
    ['Machine', deprovision.machine_uuid],
    ['State', deprovision.state],
    ['Requested', `${deprovision.requested_at} by ${deprovision.requested_by}`],
    ['Wiped', deprovision.wiped_at ?? '-'],
    ['Powered off', deprovision.powered_off_at ?? '-'],
    ['Message', deprovision.message ?? '-'],
  ])
}

async function followBringUp(context: CommandContext, id: string): Promise<ExitCode> {
  const api = await context.api()
  const { timeoutMs, intervalMs } = waitSettings(context)
  let last: { raw: string; data: BringUpView } | undefined
  const code = await watch({
    display: new ProgressDisplay(context.out.progressStream, `bring-up ${id}`, 'powered on'),
    intervalMs,
    timeoutMs,
    goesOn: `the bring-up goes on in the engine (slipway machines bring-up-status ${id})`,
    poll: async (signal) => {
      last = await api.call<BringUpView>('GET', `/api/v1/power/bring-ups/${encodeURIComponent(id)}`, { signal })
      return bringUpStep(last.data)
    },
  })
  if (context.out.json) context.out.printJson(last!.raw)
  else {
    const failed = last!.data.machines.filter((machine) => machine.state === 'failed')
    context.out.print(`bring-up ${id} ${last!.data.state}: ${last!.data.machines.length - failed.length} powered on, ${failed.length} failed`)
    for (const machine of failed) context.out.print(`  ${machine.uuid}: ${machine.error?.code}: ${machine.error?.message}`)
  }
  if (!last) throw new CliError(EXIT.failed, 'NO_ANSWER', 'the bring-up was never read')
  return code
}
