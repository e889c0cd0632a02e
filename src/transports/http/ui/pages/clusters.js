// Clusters: the registry as optikon showed it (name, labels, health, nodes ready, pods) and a map of
// their locations, coloured by health; refreshed while visible.
import { api, el, fillTable, labelList, poll, reportError, stateBadge } from '../lib.js'

const SVG = 'http://www.w3.org/2000/svg'
const table = document.getElementById('clusters')
const counts = document.getElementById('cluster-counts')
const points = document.getElementById('map-clusters')
const sweep = document.getElementById('health-sweep')

const svg = (tag, attributes, text) => {
  const node = document.createElementNS(SVG, tag)
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value))
  if (text !== undefined) node.textContent = text
  return node
}
const healthClass = (cluster) => (cluster.health ? cluster.health.status.toLowerCase() : 'unknown')
const ratio = (ready, total) => (total === null || total === undefined ? '—' : `${ready} / ${total}`)

function health(cluster, bootstrap) {
  const status = cluster.health
    ? el('span', { title: cluster.health.message }, stateBadge(cluster.health.status), ' ', el('span', { class: 'sub' }, cluster.health.reason))
    : cluster.provisioning
      ? el('span', {}, stateBadge('pending', `provisioning: ${cluster.provisioning.state}`))
      : el('span', { class: 'muted' }, 'not checked yet')
  return bootstrap?.length ? el('span', {}, status, bootstrapSummary(bootstrap)) : status
}

// A provisioned cluster's members in their kubeadm bootstrap: counts by phase; a failure names its member and message.
function bootstrapSummary(members) {
  const counts = {}
  for (const member of members) counts[member.phase] = (counts[member.phase] ?? 0) + 1
  const text = ['done', 'running', 'waiting_for_endpoint', 'failed'].filter((phase) => counts[phase]).map((phase) => `${counts[phase]} ${phase.replaceAll('_', ' ')}`).join(', ')
  const failed = members.filter((member) => member.phase === 'failed').map((member) => `${member.hostname}: ${member.message}`).join('\n')
  return el('div', { class: failed ? 'sub error' : 'sub', 'data-bootstrap': text, ...(failed ? { title: failed } : {}) }, `kubeadm: ${text}`)
}

function drawMap(clusters) {
  const placed = clusters.filter((cluster) => cluster.location.latitude !== null && cluster.location.longitude !== null)
  points.replaceChildren(
    ...placed.map((cluster) => {
      const x = cluster.location.longitude + 180
      const y = 90 - cluster.location.latitude
      const group = svg('g', { class: `point ${healthClass(cluster)}`, 'data-cluster': cluster.name })
      group.append(svg('title', {}, `${cluster.display_name}: ${cluster.health?.status ?? 'not checked'}`), svg('circle', { cx: x, cy: y, r: 2.2 }), svg('text', { x: x + 3, y: y + 1.2 }, cluster.name))
      return group
    }),
  )
  return placed.length
}

async function refresh() {
  const clusters = await api('/api/v1/clusters')
  const bootstrap = new Map(
    await Promise.all(clusters.filter((cluster) => cluster.provisioning).map(async (cluster) => [cluster.name, await api(`/api/v1/clusters/${encodeURIComponent(cluster.name)}/bootstrap`)])),
  )
  const healthy = clusters.filter((cluster) => cluster.health?.status === 'Healthy').length
  const mapped = drawMap(clusters)
  counts.textContent = `${clusters.length} clusters, ${healthy} healthy; ${mapped} on the map${mapped < clusters.length ? ` (${clusters.length - mapped} without a location)` : ''}`
  fillTable(
    table,
    clusters.map((cluster) =>
      el(
        'tr',
        { 'data-cluster': cluster.name },
        el('th', { scope: 'row' }, cluster.display_name, cluster.display_name !== cluster.name ? el('div', { class: 'sub' }, cluster.name) : null),
        el('td', {}, labelList(cluster.labels)),
        el('td', {}, health(cluster, bootstrap.get(cluster.name))),
        el('td', {}, ratio(cluster.health?.nodes_ready, cluster.health?.nodes_total)),
        el('td', {}, ratio(cluster.health?.pods_running, cluster.health?.pods_total)),
        el('td', {}, cluster.version.kubernetes ?? '—'),
        el('td', {}, [cluster.location.region, cluster.location.site].filter(Boolean).join(' / ') || '—'),
        el('td', {}, cluster.source),
      ),
    ),
    'No cluster yet: register one (POST /api/v1/clusters) or provision one from machines.',
  )
}

const poller = poll(refresh, 3000)
const sweepError = el('p', { class: 'error', role: 'alert', hidden: true })
sweep.after(sweepError)
sweep.addEventListener('click', async () => {
  sweep.disabled = true
  try {
    await api('/api/v1/clusters/health-sweep', { method: 'POST' })
    reportError(sweepError, null)
    await poller.now()
  } catch (error) {
    reportError(sweepError, error)
  } finally {
    sweep.disabled = false
  }
})
