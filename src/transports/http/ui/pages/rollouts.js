// Rolling updates: the reboot lock groups with their holders, and each run with every machine's
// phase, with pause, resume and cancel; refreshed while visible.
import { ago, api, el, fillTable, poll, reportError, stateBadge } from '../lib.js'

const lockTable = document.getElementById('lock-groups')
const runsBox = document.getElementById('runs')
const runsEmpty = document.getElementById('runs-empty')
/** Finished runs shown with their machines (the API lists every run; older ones are summarised). */
const DETAILED_FINISHED_RUNS = 3

const ACTIONS = { running: ['pause', 'cancel'], paused: ['resume', 'cancel'] }

function runSection(run) {
  const done = run.machines.filter((machine) => ['done', 'failed', 'skipped'].includes(machine.phase)).length
  const error = el('p', { class: 'error', role: 'alert', hidden: true })
  const buttons = (ACTIONS[run.state] ?? []).map((action) =>
    el(
      'button',
      {
        type: 'button',
        class: action === 'cancel' ? 'danger' : 'secondary',
        onclick: async (event) => {
          event.target.disabled = true
          try {
            await api(`/api/v1/rollouts/${encodeURIComponent(run.id)}/${action}`, { method: 'POST' })
            reportError(error, null)
            await poller.now()
          } catch (failure) {
            reportError(error, failure)
            event.target.disabled = false
          }
        },
      },
      { pause: 'Pause', resume: 'Resume', cancel: 'Cancel' }[action],
    ),
  )
  const headingId = `run-${run.id}`
  const table = el(
    'table',
    {},
    el('caption', {}, `Machines of run ${run.id}`),
    el('thead', {}, el('tr', {}, ['Machine', 'Cluster', 'Role', 'Phase', 'Started', 'Finished', 'Error'].map((header) => el('th', { scope: 'col' }, header)))),
    el(
      'tbody',
      {},
      run.machines.map((machine) =>
        el(
          'tr',
          { 'data-uuid': machine.uuid },
          el('th', { scope: 'row' }, el('a', { href: `/ui/machines/${machine.uuid}` }, machine.hostname)),
          el('td', {}, machine.cluster),
          el('td', {}, machine.role),
          el('td', {}, stateBadge(machine.phase)),
          el('td', {}, ago(machine.started_at)),
          el('td', {}, ago(machine.finished_at)),
          el('td', { class: 'error-text' }, machine.error ?? ''),
        ),
      ),
    ),
  )
  return el(
    'section',
    { class: 'panel run', 'aria-labelledby': headingId, 'data-run': run.id },
    el('h3', { id: headingId }, `Run ${run.id} `, stateBadge(run.state), ' ', el('span', { class: 'sub' }, `clusters ${run.clusters.join(', ') || '—'} · started `, ago(run.created_at))),
    el('div', { class: 'progress-line' }, el('progress', { max: Math.max(1, run.machines.length), value: done, 'aria-label': `Run ${run.id} progress` }), ` ${done} of ${run.machines.length} machines finished, ${run.failures} failed`),
    buttons.length ? el('div', { class: 'actions' }, buttons) : null,
    error,
    table,
  )
}

async function refresh() {
  const [groups, runs] = await Promise.all([api('/api/v1/locks'), api('/api/v1/rollouts')])
  fillTable(
    lockTable,
    groups.map((group) =>
      el(
        'tr',
        { 'data-group': group.name },
        el('th', { scope: 'row' }, group.name),
        el('td', {}, String(group.slots)),
        el('td', {}, String(group.free)),
        el('td', {}, group.holders.length ? el('ul', { class: 'plain' }, group.holders.map((holder) => el('li', {}, el('a', { class: 'mono', href: `/ui/machines/${holder.id}` }, holder.id), ' since ', ago(holder.acquired_at)))) : '—'),
        el('td', {}, group.ttl_seconds ? `${group.ttl_seconds} s` : 'none'),
      ),
    ),
    'No lock group yet: one appears with the first reboot slot taken.',
  )
  const newestFirst = [...runs].reverse()
  const active = newestFirst.filter((run) => run.state === 'running' || run.state === 'paused')
  const finished = newestFirst.filter((run) => run.state !== 'running' && run.state !== 'paused').slice(0, DETAILED_FINISHED_RUNS)
  const details = await Promise.all([...active, ...finished].map((run) => api(`/api/v1/rollouts/${encodeURIComponent(run.id)}`)))
  runsEmpty.hidden = runs.length > 0
  runsEmpty.textContent = 'No rolling update yet: start one with POST /api/v1/rollouts (a cluster or selector with outdated machines).'
  runsBox.replaceChildren(...details.map(runSection))
}

const poller = poll(refresh)
