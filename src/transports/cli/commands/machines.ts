import { bmcAddress } from '../../../core/power/bmc.ts'
import { normalizeMac } from '../../../lib/mac.ts'
import type { ApiClient } from '../api-client.ts'
import type { BmcView, MachineDetail, MachineSummary } from '../api-types.ts'
import { CliError, EXIT, usageError } from '../cli-error.ts'
import { positional, stringValue, stringValues, type CommandSpec } from '../command.ts'
import { formatAge, formatBytes, formatLabels } from '../table.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const bootIp = (machine: MachineSummary) => machine.interfaces.find((nic) => nic.is_boot)?.ipv4 ?? machine.interfaces.find((nic) => nic.ipv4)?.ipv4 ?? null

/** A machine's BMC, or null when it has none (404 BMC_NOT_CONFIGURED); any other failure is the command's. */
async function bmcOf(api: ApiClient, uuid: string): Promise<BmcView | null> {
  try {
    return (await api.call<BmcView>('GET', `/api/v1/machines/${encodeURIComponent(uuid)}/bmc`)).data
  } catch (error) {
    if (error instanceof CliError && error.code === 'BMC_NOT_CONFIGURED') return null
    throw error
  }
}

/** The power state as the engine's poll last read it; when that read failed, the state is the one from before, so the failure is named. */
const powerText = (bmc: BmcView, failure: (code: string) => string) => (bmc.last_error ? `${bmc.power} ${failure(bmc.last_error.code)}` : bmc.power)

export const machineCommands: CommandSpec[] = [
  {
    path: ['machines', 'list'],
    summary: 'list the inventory (filters combine)',
    options: {
      state: { type: 'string', value: 'STATE', help: 'only machines in this state (booting, discovered, scheduled, installing, installed, install_failed)' },
      label: { type: 'string', value: 'KEY=VALUE', multiple: true, help: 'only machines with this label' },
      mac: { type: 'string', value: 'MAC', help: 'only the machine with an interface of this MAC' },
      cluster: { type: 'string', value: 'NAME', help: 'only the members of this cluster' },
    },
    async run(context) {
      const labels = stringValues(context, 'label')
      for (const label of labels) if (!/^[^=]+=/.test(label)) throw usageError(`--label takes key=value, not "${label}"`)
      const mac = stringValue(context, 'mac')
      if (mac !== undefined && !normalizeMac(mac)) throw usageError(`--mac "${mac}" is not a MAC address (52:54:00:aa:bb:cc)`)
      const api = await context.api()
      const listing = api.call<MachineSummary[]>('GET', '/api/v1/machines', {
        query: { state: stringValue(context, 'state'), mac: mac && normalizeMac(mac), label: labels.length ? labels : undefined, cluster: stringValue(context, 'cluster') },
      })
      if (context.out.json) {
        context.out.printJson((await listing).raw)
        return EXIT.ok
      }
      // Every BMC in one request beside the list. GET /api/v1/bmcs is fleet-wide: a token that may not
      // read it (a tenant's) gets the table without the column rather than a column of wrong "-".
      const [answer, bmcs] = await Promise.all([
        listing,
        api.call<BmcView[]>('GET', '/api/v1/bmcs').then(
          (listed) => new Map(listed.data.map((bmc) => [bmc.machine_uuid, bmc])),
          (error: unknown) => {
            if (error instanceof CliError && error.exitCode === EXIT.auth) return error
            throw error
          },
        ),
      ])
      const withPower = bmcs instanceof Map
      if (!withPower && answer.data.length > 0) context.out.stderr.write(`slipway: POWER not shown: this token may not list BMCs (${bmcs.code})\n`)
      const power = (machine: MachineSummary) => {
        const bmc = withPower ? bmcs.get(machine.uuid) : undefined
        return bmc ? powerText(bmc, (code) => `(${code})`) : null
      }
      context.out.table(
        [
          { header: 'UUID' },
          { header: 'BOOT MAC' },
          { header: 'IP' },
          { header: 'STATE' },
          ...(withPower ? [{ header: 'POWER', shrink: true }] : []),
          { header: 'CLUSTER' },
          { header: 'HOSTNAME' },
          { header: 'LABELS', shrink: true },
          { header: 'SEEN', align: 'right' as const },
        ],
        answer.data.map((machine) => [
          machine.uuid,
          machine.boot_mac,
          bootIp(machine),
          machine.state,
          ...(withPower ? [power(machine)] : []),
          machine.cluster?.name,
          machine.cluster?.hostname,
          formatLabels(machine.labels),
          formatAge(machine.last_seen_at),
        ]),
        'no machines',
      )
      return EXIT.ok
    },
  },
  {
    path: ['machines', 'show'],
    summary: 'a machine with its power and BMC, interfaces, disks, labels and state history',
    args: '<uuid|mac>',
    arity: [1, 1],
    async run(context) {
      const id = positional(context, 0)
      const mac = UUID.test(id) ? undefined : normalizeMac(id)
      if (!UUID.test(id) && !mac) throw usageError(`"${id}" is neither a machine UUID nor a MAC address`)
      const api = await context.api()
      let uuid = id.toLowerCase()
      if (mac) {
        const found = await api.call<MachineSummary[]>('GET', '/api/v1/machines', { query: { mac } })
        if (found.data.length === 0) throw new CliError(EXIT.notFound, 'MACHINE_NOT_FOUND', `no machine has an interface with MAC ${mac}`)
        uuid = found.data[0]!.uuid
      }
      const [answer, bmc] = await Promise.all([api.call<MachineDetail>('GET', `/api/v1/machines/${encodeURIComponent(uuid)}`), bmcOf(api, uuid)])
      if (context.out.json) {
        // The API's machine document with one more key: its BMC as GET .../bmc answers it, or null.
        context.out.printJson(JSON.stringify({ ...(answer.data as unknown as Record<string, unknown>), bmc }))
        return EXIT.ok
      }
      const machine = answer.data
      const out = context.out
      out.fields([
        ['UUID', machine.uuid],
        ['Boot MAC', machine.boot_mac],
        ['State', `${machine.state} (since ${machine.state_changed_at})`],
        ['Power', bmc ? powerText(bmc, (code) => `(last check failed: ${code})`) : 'no BMC'],
        ...(machine.cluster ? ([['Cluster', `${machine.cluster.name} (${machine.cluster.role}, ${machine.cluster.hostname})`]] as [string, unknown][]) : []),
        ...(machine.drift ? ([['Ignition', `${machine.drift.state}${machine.drift.reason ? `: ${machine.drift.reason}` : ''}`]] as [string, unknown][]) : []),
        ['Labels', formatLabels(machine.labels)],
        ['First seen', machine.first_seen_at],
        ['Last seen', machine.last_seen_at],
      ])
      if (bmc) {
        out.section('BMC:')
        out.fields([
          ['Protocol', bmc.protocol],
          ['Address', bmcAddress(bmc)],
          ['User', bmc.username],
          ['Last checked', bmc.power_checked_at ?? 'never'],
          ['Last error', bmc.last_error ? `${bmc.last_error.code} at ${bmc.last_error.at}: ${bmc.last_error.message}` : '-'],
        ])
      }
      out.section('Interfaces:')
      out.table(
        [{ header: 'NAME' }, { header: 'MAC' }, { header: 'IPV4' }, { header: 'CIDR' }, { header: 'GATEWAY' }, { header: 'BOOT' }, { header: 'FQDN', shrink: true }],
        machine.interfaces.map((nic) => [nic.name, nic.mac, nic.ipv4, nic.cidr, nic.gateway, nic.is_boot ? 'yes' : '', nic.fqdn.join(',') || '-']),
        '  none',
      )
      out.section('Disks:')
      out.table(
        [{ header: 'PATH' }, { header: 'SIZE', align: 'right' }, { header: 'MODEL', shrink: true }, { header: 'SERIAL' }],
        machine.disks.map((disk) => [disk.path, formatBytes(disk.size_bytes), disk.model, disk.serial]),
        '  none',
      )
      out.section('History:')
      out.table(
        [{ header: 'AT' }, { header: 'FROM' }, { header: 'TO' }, { header: 'REASON', shrink: true }],
        machine.events.map((event) => [event.at, event.from_state, event.to_state, event.reason]),
        '  none',
      )
      return EXIT.ok
    },
  },
]
