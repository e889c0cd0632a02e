// Machines: every machine with its state, power, place in a cluster, boot NIC, hardware, config drift
// and when it was last heard from, and the open identity conflicts; refreshed while visible.
import { ago, api, bytes, el, fillTable, poll, powerBadge, reportError, stateBadge } from '../lib.js'

const table = document.getElementById('machines')
const filter = document.getElementById('machine-filter')
const counts = document.getElementById('machine-counts')
let machines = []
/** Each machine's BMC by uuid, from one GET /api/v1/bmcs per refresh; or why they could not be read. */
let bmcs = new Map()
let bmcsRefused = null

const bootInterface = (machine) => machine.interfaces.find((nic) => nic.is_boot) ?? machine.interfaces[0]

function hardware(machine) {
  const facts = machine.facts ?? {}
  const cpu = facts.cpu?.cores ? `${facts.cpu.cores} cores` : null
  const memory = facts.memory?.totalBytes ? `${bytes(facts.memory.totalBytes)} RAM` : null
  const disks = machine.disks.length ? `${machine.disks.length} × disk, ${bytes(machine.disks.reduce((sum, disk) => sum + disk.size_bytes, 0))}` : null
  return [cpu, memory, disks].filter(Boolean).join(' · ') || '—'
}

function powerCell(machine) {
  // /api/v1/bmcs is fleet-wide: a tenant's token may not read it, which is not "no BMC".
  if (bmcsRefused) return el('span', { class: 'muted', title: `BMCs not shown: ${bmcsRefused.code}: ${bmcsRefused.message}` }, 'not shown')
  const bmc = bmcs.get(machine.uuid)
  return bmc ? powerBadge(bmc) : el('span', { class: 'muted', title: 'no BMC configured' }, '—')
}

const searchText = (machine) =>
  [machine.uuid, machine.cluster?.hostname, machine.cluster?.name, machine.cluster?.role, machine.state, machine.boot_mac, bootInterface(machine)?.ipv4, machine.drift?.state, bmcs.has(machine.uuid) ? `power=${bmcs.get(machine.uuid).power}` : null, ...Object.entries(machine.labels).map(([k, v]) => `${k}=${v}`)]
    .filter(Boolean)
    .join(' ')
    .toLowerCase()

function render() {
  const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean)
  const shown = machines.filter((machine) => words.every((word) => searchText(machine).includes(word)))
  const byState = {}
  for (const machine of machines) byState[machine.state] = (byState[machine.state] ?? 0) + 1
  counts.textContent = `${machines.length} machines${machines.length ? ': ' + Object.entries(byState).map(([state, count]) => `${count} ${state.replaceAll('_', ' ')}`).join(', ') : ''}${shown.length !== machines.length ? ` (${shown.length} shown)` : ''}`
  fillTable(
    table,
    shown.map((machine) => {
      const nic = bootInterface(machine)
      const name = machine.cluster?.hostname ?? machine.uuid
      return el(
        'tr',
        { 'data-uuid': machine.uuid },
        el('th', { scope: 'row' }, el('a', { href: `/ui/machines/${machine.uuid}` }, name), machine.cluster ? el('div', { class: 'sub' }, machine.uuid) : null),
        el('td', {}, stateBadge(machine.state)),
        el('td', { class: 'power-cell' }, powerCell(machine)),
        el('td', {}, machine.cluster?.role ?? '—'),
        el('td', {}, machine.cluster?.name ?? '—'),
        el('td', { class: 'mono' }, machine.boot_mac),
        el('td', { class: 'mono' }, nic?.ipv4 ?? '—'),
        el('td', {}, hardware(machine)),
        el('td', {}, machine.drift ? stateBadge(machine.drift.state, machine.drift.state === 'up_to_date' ? 'up to date' : machine.drift.state) : el('span', { class: 'muted' }, 'no report')),
        el('td', {}, ago(machine.last_seen_at)),
      )
    }),
    machines.length ? 'No machine matches the filter.' : 'No machine has reported yet: PXE-boot one into discovery.',
  )
}

const conflictsSection = document.getElementById('conflicts-section')
const conflictsTable = document.getElementById('conflicts')
const conflictsError = document.getElementById('conflicts-error')
const CLAIMS = { 'mac-claimed': 'its boot MAC, by another uuid', 'mac-changed': 'its uuid, with another boot MAC', 'address-changed': 'a move to another address' }

function resolveButton(conflict, decision) {
  return el(
    'button',
    {
      type: 'button',
      class: decision === 'accept' ? 'danger' : 'secondary',
      onclick: async (event) => {
        event.target.disabled = true
        try {
          await api(`/api/v1/machines/conflicts/${conflict.id}/${decision}`, { method: 'POST' })
          reportError(conflictsError, null)
          await poller.now()
        } catch (failure) {
          reportError(conflictsError, failure)
          event.target.disabled = false
        }
      },
    },
    decision === 'accept' ? 'Accept' : 'Dismiss',
  )
}

function renderConflicts(conflicts) {
  conflictsSection.hidden = conflicts.length === 0
  fillTable(
    conflictsTable,
    conflicts.map((conflict) =>
      el(
        'tr',
        { 'data-conflict': String(conflict.id) },
        el('th', { scope: 'row' }, el('a', { href: `/ui/machines/${conflict.machine_uuid}` }, conflict.machine_uuid)),
        el('td', {}, CLAIMS[conflict.kind] ?? conflict.kind),
        el('td', { class: 'mono' }, conflict.claimed_uuid),
        el('td', { class: 'mono' }, conflict.claimed_mac),
        el('td', { class: 'mono' }, conflict.claimed_ipv4 ?? '—'),
        el('td', { class: 'mono' }, conflict.source_ip),
        el('td', {}, String(conflict.reports)),
        el('td', {}, ago(conflict.last_seen_at)),
        el('td', {}, el('div', { class: 'actions' }, resolveButton(conflict, 'dismiss'), resolveButton(conflict, 'accept'))),
      ),
    ),
    '—',
  )
}

filter.addEventListener('input', render)
const poller = poll(async () => {
  const [listed, conflicts, bmcList] = await Promise.all([
    api('/api/v1/machines'),
    api('/api/v1/machines/conflicts?state=open').catch(() => []),
    api('/api/v1/bmcs').catch((error) => error),
  ])
  machines = listed
  bmcsRefused = bmcList instanceof Error ? bmcList : null
  bmcs = new Map(bmcsRefused ? [] : bmcList.map((bmc) => [bmc.machine_uuid, bmc]))
  render()
  renderConflicts(conflicts)
})
