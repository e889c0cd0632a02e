// Releases: install or upgrade a chart on every cluster a label selector matches (the chart uploaded
// here or already stored), then each release's per-cluster status, live; pause, resume, retry, and
// delete everywhere or from the clusters a selector matches.
import { parse as parseYaml } from '../vendor/yaml/index.js'
import { ago, api, el, poll, reportError, stateBadge } from '../lib.js'

const form = document.getElementById('release-form')
const formError = document.getElementById('release-form-error')
const formResult = document.getElementById('release-form-result')
const submit = document.getElementById('release-submit')
const chartRef = document.getElementById('chart-ref')
const list = document.getElementById('releases')
const empty = document.getElementById('releases-empty')
/** One section per release, kept across refreshes so that what is typed in its delete form stays. */
const sections = new Map()

// ----- the install / upgrade form -----

function showChartSource() {
  const upload = document.getElementById('chart-source-upload').checked
  document.getElementById('chart-upload-field').hidden = !upload
  document.getElementById('chart-stored-field').hidden = upload
}
for (const radio of form.elements['chart-source']) radio.addEventListener('change', showChartSource)
document.getElementById('release-upgrade').addEventListener('change', (event) => (submit.textContent = event.target.checked ? 'Upgrade' : 'Install'))

async function refreshCharts() {
  const charts = await api('/api/v1/charts')
  const chosen = chartRef.value
  chartRef.replaceChildren(
    ...(charts.length ? charts.map((chart) => el('option', { value: `${chart.name}@${chart.version}` }, `${chart.name} ${chart.version}${chart.app_version ? ` (app ${chart.app_version})` : ''}`)) : [el('option', { value: '' }, 'no chart stored yet')]),
  )
  if (chosen && [...chartRef.options].some((option) => option.value === chosen)) chartRef.value = chosen
}

function valuesFromYaml(text) {
  if (!text.trim()) return {}
  let values
  try {
    values = parseYaml(text)
  } catch (error) {
    throw Object.assign(new Error(`values are not valid YAML: ${error.message}`), { code: 'INVALID_VALUES' })
  }
  if (values === null || typeof values !== 'object' || Array.isArray(values)) throw Object.assign(new Error('values must be a YAML mapping (key: value)'), { code: 'INVALID_VALUES' })
  return values
}

/** The chart the form names: uploaded now (POST /api/v1/charts), or one already stored. */
async function chartOfForm() {
  if (document.getElementById('chart-source-upload').checked) {
    const file = document.getElementById('chart-file').files[0]
    if (!file) throw Object.assign(new Error('choose a packaged chart (.tgz), or pick a stored one'), { code: 'NO_CHART' })
    const upload = new FormData()
    upload.append('chart', file, file.name)
    const stored = await api('/api/v1/charts', { method: 'POST', form: upload })
    await refreshCharts()
    return { name: stored.name, version: stored.version }
  }
  const [name, version] = chartRef.value.split('@')
  if (!name) throw Object.assign(new Error('no chart stored yet: upload one'), { code: 'NO_CHART' })
  return { name, version }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  reportError(formError, null)
  formResult.textContent = ''
  submit.disabled = true
  try {
    const fields = form.elements
    const values = valuesFromYaml(fields.values.value)
    const rollout = {}
    if (fields.max_parallel.value) rollout.max_parallel = Number(fields.max_parallel.value)
    if (fields.canary_selector.value.trim()) rollout.canary_selector = fields.canary_selector.value.trim()
    const name = fields.name.value.trim()
    const namespace = fields.namespace.value.trim() || 'default'
    const chart = await chartOfForm()
    const upgrade = fields.upgrade.checked
    const release = upgrade
      ? await api(`/api/v1/releases/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`, { method: 'PUT', body: { chart, values, selector: fields.selector.value.trim(), ...(Object.keys(rollout).length ? { rollout } : {}) } })
      : await api('/api/v1/releases', { method: 'POST', body: { name, namespace, chart, selector: fields.selector.value.trim(), values, ...(Object.keys(rollout).length ? { rollout } : {}) } })
    formResult.textContent = `${upgrade ? 'Upgraded' : 'Installed'} ${release.namespace}/${release.name} (revision ${release.revision}, chart ${release.chart.name} ${release.chart.version}): each cluster's status below.`
    await poller.now()
  } catch (error) {
    reportError(formError, error)
  } finally {
    submit.disabled = false
  }
})

// ----- the releases, live -----

const releasePath = (release) => `/api/v1/releases/${encodeURIComponent(release.namespace)}/${encodeURIComponent(release.name)}`

function createSection(key, release) {
  const id = `release-${key.replace(/[^a-z0-9-]/g, '-')}`
  const heading = el('h3', { id })
  const progress = el('div', { class: 'progress-line' })
  const error = el('p', { class: 'error', role: 'alert', hidden: true })
  const action = async (button, run) => {
    button.disabled = true
    try {
      await run()
      reportError(error, null)
      await poller.now()
    } catch (failure) {
      reportError(error, failure)
    } finally {
      button.disabled = false
    }
  }
  const actionButtons = Object.fromEntries(
    ['pause', 'resume', 'retry'].map((verb) => [
      verb,
      el('button', { type: 'button', class: 'secondary', onclick: (event) => action(event.target, () => api(`${releasePath(release)}/${verb}`, { method: 'POST' })) }, verb[0].toUpperCase() + verb.slice(1)),
    ]),
  )
  const selectorId = `${id}-delete-selector`
  const deleteSelector = el('input', { id: selectorId, name: 'labels', maxlength: 4096, placeholder: 'every cluster' })
  const deleteForm = el(
    'form',
    {
      class: 'inline delete',
      onsubmit: (event) => {
        event.preventDefault()
        const selector = deleteSelector.value.trim()
        const where = selector ? `the clusters matching "${selector}"` : 'every cluster'
        if (!confirm(`Delete ${release.namespace}/${release.name} from ${where}?`)) return
        action(event.submitter ?? deleteForm.querySelector('button'), () => api(`${releasePath(release)}${selector ? `?labels=${encodeURIComponent(selector)}` : ''}`, { method: 'DELETE' }))
      },
    },
    el('label', { for: selectorId }, 'Delete from clusters matching'),
    deleteSelector,
    el('button', { type: 'submit', class: 'danger' }, 'Delete'),
  )
  const table = el(
    'table',
    {},
    el('caption', {}, `Per-cluster status of ${release.namespace}/${release.name}`),
    el('thead', {}, el('tr', {}, ['Cluster', 'Phase', 'Revision', 'Objects', 'Attempts', 'Updated', 'Error'].map((header) => el('th', { scope: 'col' }, header)))),
    el('tbody'),
  )
  const section = el('section', { class: 'panel release', 'aria-labelledby': id, 'data-release': key }, heading, progress, el('div', { class: 'actions' }, Object.values(actionButtons), deleteForm), error, table)
  return { section, heading, progress, actionButtons, table }
}

function updateSection(parts, release) {
  const { summary } = release
  parts.heading.replaceChildren(`${release.namespace}/${release.name} `, stateBadge(release.state), ' ', el('span', { class: 'sub' }, `chart ${release.chart.name} ${release.chart.version} · revision ${release.revision} · selector ${release.selector || '(every cluster)'}`))
  parts.progress.replaceChildren(
    el('progress', { max: Math.max(1, summary.clusters), value: summary.ready, 'aria-label': `${release.name}: clusters ready` }),
    ` ${summary.ready} of ${summary.clusters} clusters ready`,
    summary.applying ? `, ${summary.applying} applying` : '',
    summary.pending ? `, ${summary.pending} pending` : '',
    summary.failed ? `, ${summary.failed} failed` : '',
    summary.removing ? `, ${summary.removing} removing` : '',
    release.excluded_clusters.length ? ` · removed from ${release.excluded_clusters.join(', ')}` : '',
  )
  parts.actionButtons.pause.hidden = release.state !== 'active'
  parts.actionButtons.resume.hidden = release.state !== 'paused' && release.state !== 'halted'
  parts.actionButtons.retry.hidden = summary.failed === 0
  const rows = release.clusters.map((status) =>
    el(
      'tr',
      { 'data-cluster': status.cluster, 'data-phase': status.phase },
      el('th', { scope: 'row' }, status.cluster),
      el('td', {}, stateBadge(status.phase)),
      el('td', {}, String(status.revision)),
      el('td', {}, String(status.objects)),
      el('td', {}, String(status.attempts)),
      el('td', {}, ago(status.updated_at)),
      el('td', { class: 'error-text' }, status.error ?? ''),
    ),
  )
  parts.table.tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', { class: 'empty' }, el('td', { colspan: 7 }, 'No cluster matches the selector.'))]))
}

async function refreshReleases() {
  const releases = await api('/api/v1/releases')
  const seen = new Set()
  for (const release of releases) {
    const key = `${release.namespace}/${release.name}`
    seen.add(key)
    let parts = sections.get(key)
    if (!parts) {
      parts = createSection(key, release)
      sections.set(key, parts)
    }
    updateSection(parts, release)
  }
  for (const [key, parts] of sections) {
    if (!seen.has(key)) {
      parts.section.remove()
      sections.delete(key)
    }
  }
  // Moved only when the order changes: moving a section would take the focus from a field being typed in.
  const ordered = releases.map((release) => sections.get(`${release.namespace}/${release.name}`).section)
  if (ordered.some((section, index) => list.children[index] !== section) || list.children.length !== ordered.length) list.replaceChildren(...ordered)
  empty.hidden = releases.length > 0
  empty.textContent = 'No release yet: install one with the form above.'
}

const poller = poll(() => Promise.all([refreshReleases(), refreshCharts()]))
showChartSource()
