// One machine: summary, facts, its BMC and power (with power on, off and cycle), interfaces and disks,
// state history, and the iPXE script and Ignition config it is served (rendered by the engine's own
// code; secrets redacted by the API).
import { ago, api, bytes, el, fillTable, poll, powerBadge, reportError, stateBadge } from '../lib.js'

const uuid = document.getElementById('main').dataset.uuid
const title = document.getElementById('machine-title')
/** How the machine is named in questions: its hostname once it has one. */
let machineName = uuid

const definitions = (target, pairs) =>
  target.replaceChildren(...pairs.filter(([, value]) => value !== undefined).flatMap(([term, value]) => [el('dt', {}, term), el('dd', {}, value ?? '—')]))

/** Facts as nested keys flattened to "cpu.cores", for reading. */
function flatten(value, prefix = '', into = []) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) flatten(child, prefix ? `${prefix}.${key}` : key, into)
  } else into.push([prefix, Array.isArray(value) ? JSON.stringify(value) : String(value)])
  return into
}

async function refreshMachine() {
  const machine = await api(`/api/v1/machines/${uuid}`)
  machineName = machine.cluster?.hostname ?? machine.uuid
  title.replaceChildren(machine.cluster?.hostname ?? machine.uuid, ' ', stateBadge(machine.state))
  document.title = `${machine.cluster?.hostname ?? machine.uuid} · Slipway`
  definitions(document.getElementById('machine-summary'), [
    ['UUID', el('span', { class: 'mono' }, machine.uuid)],
    ['State', stateBadge(machine.state)],
    ['Cluster', machine.cluster ? el('a', { href: '/ui/clusters' }, machine.cluster.name) : '—'],
    ['Role', machine.cluster?.role ?? '—'],
    ['Boot MAC', el('span', { class: 'mono' }, machine.boot_mac)],
    ['Config', machine.drift ? stateBadge(machine.drift.state, machine.drift.state === 'up_to_date' ? 'up to date' : machine.drift.state) : 'no report yet'],
    ['Labels', Object.entries(machine.labels).map(([key, value]) => `${key}=${value}`).join(', ') || '—'],
    ['First seen', ago(machine.first_seen_at)],
    ['Last seen', ago(machine.last_seen_at)],
  ])
  const facts = flatten(machine.facts)
  definitions(document.getElementById('machine-facts'), facts.length ? facts.map(([key, value]) => [key, /bytes$/i.test(key) ? `${bytes(Number(value))} (${value})` : value]) : [['Facts', 'none reported']])
  fillTable(
    document.getElementById('machine-interfaces'),
    machine.interfaces.map((nic) =>
      el('tr', {}, el('th', { scope: 'row' }, nic.name), el('td', { class: 'mono' }, nic.mac), el('td', { class: 'mono' }, nic.cidr ?? nic.ipv4 ?? '—'), el('td', { class: 'mono' }, nic.gateway ?? '—'), el('td', {}, nic.fqdn.join(', ') || '—'), el('td', {}, nic.is_boot ? 'yes' : '')),
    ),
    'No interfaces.',
  )
  fillTable(
    document.getElementById('machine-disks'),
    machine.disks.map((disk) => el('tr', {}, el('th', { scope: 'row', class: 'mono' }, disk.path), el('td', {}, bytes(disk.size_bytes)), el('td', {}, disk.model ?? '—'), el('td', {}, disk.serial ?? '—'))),
    'No disks reported.',
  )
  fillTable(
    document.getElementById('machine-events'),
    [...machine.events].reverse().map((event) => el('tr', {}, el('td', {}, ago(event.at)), el('td', {}, event.from_state ? stateBadge(event.from_state) : '—'), el('td', {}, stateBadge(event.to_state)), el('td', {}, event.reason))),
    'No events.',
  )
}

// ----- power -----

const powerFacts = document.getElementById('machine-power')
const powerActions = document.getElementById('power-actions')
const powerResult = document.getElementById('power-result')
const powerError = document.getElementById('power-error')

/** host:port, an IPv6 address in brackets (as the engine names a BMC). */
const bmcAddress = (bmc) => (bmc.host.includes(':') ? `[${bmc.host}]:${bmc.port}` : `${bmc.host}:${bmc.port}`)

async function refreshPower() {
  let bmc
  try {
    bmc = await api(`/api/v1/machines/${uuid}/bmc`)
  } catch (error) {
    if (error.code !== 'BMC_NOT_CONFIGURED') throw error
    powerActions.hidden = true
    definitions(powerFacts, [['BMC', `none configured (an administrator sets one: slipway machines bmc set ${uuid} …, or PUT /api/v1/machines/${uuid}/bmc)`]])
    return
  }
  powerActions.hidden = false
  definitions(powerFacts, [
    ['Power', powerBadge(bmc)],
    ['Last checked', bmc.power_checked_at ? ago(bmc.power_checked_at) : 'never'],
    ['Last error', bmc.last_error ? el('span', { class: 'error-text' }, `${bmc.last_error.code}: ${bmc.last_error.message} (`, ago(bmc.last_error.at), ')') : '—'],
    ['Protocol', bmc.protocol === 'ipmi' ? 'IPMI' : 'Redfish'],
    ['BMC address', el('span', { class: 'mono' }, bmcAddress(bmc))],
    ['User', el('span', { class: 'mono' }, bmc.username)],
  ])
}

/** The page's power actions: each asks first, as every change of the UI that cannot be taken back does. */
const POWER_ACTIONS = [
  { action: 'on', label: 'Power on', question: (name) => `Power on ${name}? It boots from its next boot device.` },
  { action: 'off', label: 'Power off', question: (name) => `Power off ${name} now? Its power is cut at once, without shutting its operating system down.` },
  { action: 'cycle', label: 'Power cycle', question: (name) => `Power-cycle ${name}? Its power is cut and restored at once, without shutting its operating system down.` },
]

powerActions.replaceChildren(
  ...POWER_ACTIONS.map(({ action, label, question }) =>
    el(
      'button',
      {
        type: 'button',
        class: action === 'on' ? 'secondary' : 'danger',
        'data-power-action': action,
        onclick: async () => {
          if (!confirm(question(machineName))) return
          const buttons = [...powerActions.querySelectorAll('button')]
          for (const button of buttons) button.disabled = true
          reportError(powerError, null)
          powerResult.textContent = ''
          try {
            const result = await api(`/api/v1/machines/${uuid}/power`, { method: 'POST', body: { action } })
            powerResult.textContent = `${label}: the BMC now reports ${result.power} (${result.ms} ms${result.attempts > 1 ? `, ${result.attempts} attempts` : ''}).`
          } catch (failure) {
            reportError(powerError, failure)
          } finally {
            for (const button of buttons) button.disabled = false
            await refreshPower().catch(() => {})
          }
        },
      },
      label,
    ),
  ),
)

function showRendered(prefix, rendered, pretty) {
  document.getElementById(`${prefix}-url`).textContent = `GET ${rendered.url}`
  const body = document.getElementById(`${prefix}-body`)
  body.classList.toggle('error', rendered.error !== null)
  body.textContent = rendered.error ? `${rendered.error.status} ${rendered.error.code}: ${rendered.error.message}` : pretty(rendered.body)
}

async function refreshBoot() {
  const boot = await api(`/api/v1/machines/${uuid}/boot`)
  showRendered('ipxe', boot.ipxe, (body) => body)
  // The served body is compact JSON; indented here for reading.
  showRendered('ignition', boot.ignition, (body) => JSON.stringify(JSON.parse(body), null, 2))
  document.getElementById('ignition-redacted').textContent = boot.redacted.length ? `Redacted: ${boot.redacted.join(', ')}` : 'Nothing redacted: this config carries no secret.'
}

document.getElementById('boot-refresh').addEventListener('click', () => refreshBoot().catch((error) => (document.getElementById('ignition-body').textContent = error.message)))
refreshBoot().catch((error) => (document.getElementById('ignition-body').textContent = error.message))
// The machine and its BMC side by side: a BMC may be enrolled before its machine has ever reported.
poll(() => Promise.all([refreshMachine(), refreshPower()]))
