import { normalizeMac } from '../../../lib/mac.ts'
import type { MachineDetail, MachineSummary } from '../api-types.ts'
import { CliError, EXIT, usageError } from '../cli-error.ts'
import { positional, stringValue, stringValues, type CommandSpec } from '../command.ts'
import { formatAge, formatBytes, formatLabels } from '../table.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const bootIp = (machine: MachineSummary) => machine.interfaces.find((nic) => nic.is_boot)?.ipv4 ?? machine.interfaces.find((nic) => nic.ipv4)?.ipv4 ?? null

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
      const answer = await api.call<MachineSummary[]>('GET', '/api/v1/machines', {
        query: { state: stringValue(context, 'state'), mac: mac && normalizeMac(mac), label: labels.length ? labels : undefined, cluster: stringValue(context, 'cluster') },
      })
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.table(
        [{ header: 'UUID' }, { header: 'BOOT MAC' }, { header: 'IP' }, { header: 'STATE' }, { header: 'CLUSTER' }, { header: 'HOSTNAME' }, { header: 'LABELS', shrink: true }, { header: 'SEEN', align: 'right' }],
        answer.data.map((machine) => [machine.uuid, machine.boot_mac, bootIp(machine), machine.state, machine.cluster?.name, machine.cluster?.hostname, formatLabels(machine.labels), formatAge(machine.last_seen_at)]),
        'no machines',
      )
      return EXIT.ok
    },
  },
  {
    path: ['machines', 'show'],
    summary: 'a machine with its interfaces, disks, labels and state history',
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
      const answer = await api.call<MachineDetail>('GET', `/api/v1/machines/${encodeURIComponent(uuid)}`)
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      const machine = answer.data
      const out = context.out
      out.fields([
        ['UUID', machine.uuid],
        ['Boot MAC', machine.boot_mac],
        ['State', `${machine.state} (since ${machine.state_changed_at})`],
        ...(machine.cluster ? ([['Cluster', `${machine.cluster.name} (${machine.cluster.role}, ${machine.cluster.hostname})`]] as [string, unknown][]) : []),
        ...(machine.drift ? ([['Ignition', `${machine.drift.state}${machine.drift.reason ? `: ${machine.drift.reason}` : ''}`]] as [string, unknown][]) : []),
        ['Labels', formatLabels(machine.labels)],
        ['First seen', machine.first_seen_at],
        ['Last seen', machine.last_seen_at],
      ])
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
