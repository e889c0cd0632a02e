import { MAP_VIEW_BOX, worldLandPath } from './land-map.ts'

/** Text for HTML content and attribute values. */
export const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char]!)

export const UI_PAGES = [
  { id: 'machines', title: 'Machines' },
  { id: 'clusters', title: 'Clusters' },
  { id: 'releases', title: 'Releases' },
  { id: 'rollouts', title: 'Rolling updates' },
] as const
export type UiPageId = (typeof UI_PAGES)[number]['id'] | 'machine'

export interface ShellOptions {
  /** Where the static assets are served, ending in '/'. */
  assets: string
  title: string
  /** The script module under `pages/` that drives the page; none on the login page. */
  script?: string
  /** The navigation entry shown as current. */
  current?: string
  /** Who is logged in, shown beside the logout button; no navigation without one (the login page). */
  principal?: { name: string; role: string }
  body: string
  data?: Record<string, string>
}

/** Every page: the same header, navigation and live-status footer around a page-specific <main>. */
export function pageShell(options: ShellOptions): string {
  const nav = options.principal
    ? `<nav aria-label="Main"><ul>${UI_PAGES.map((page) => `<li><a href="/ui/${page.id}"${page.id === options.current ? ' aria-current="page"' : ''}>${page.title}</a></li>`).join('')}</ul></nav>
      <form class="session" method="post" action="/ui/logout"><span class="who">${escapeHtml(options.principal.name)} <span class="role">${escapeHtml(options.principal.role)}</span></span><button type="submit" class="secondary">Log out</button></form>`
    : ''
  const data = Object.entries(options.data ?? {})
    .map(([key, value]) => ` data-${key}="${escapeHtml(value)}"`)
    .join('')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(options.title)} · Slipway</title>
<link rel="stylesheet" href="${options.assets}app.css">
<link rel="icon" href="${options.assets}favicon.svg" type="image/svg+xml">
${options.script ? `<script type="module" src="${options.assets}pages/${options.script}"></script>` : ''}
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="/ui/machines">Slipway</a>${nav}</header>
<main id="main"${data}>
${options.body}
</main>
${options.principal ? '<footer><p id="live-status" role="status" aria-live="polite">Loading…</p></footer>' : ''}
</body>
</html>
`
}

export function loginBody(error: string | undefined, next: string): string {
  return `<section class="login">
<h1>Sign in to Slipway</h1>
<p>Paste an API token (the engine's admin token, or one made with <code>POST /api/v1/tokens</code>). It is kept in an HttpOnly cookie, sealed with the engine's key, for 12 hours.</p>
${error ? `<p class="error" role="alert" id="login-error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/ui/login">
<input type="hidden" name="next" value="${escapeHtml(next)}">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required minlength="1" maxlength="512"${error ? ' aria-describedby="login-error" aria-invalid="true"' : ''} autofocus>
<button type="submit">Sign in</button>
</form>
</section>`
}

const table = (id: string, caption: string, headers: string[], empty: string) =>
  `<table id="${id}"><caption>${caption}</caption><thead><tr>${headers.map((header) => `<th scope="col">${header}</th>`).join('')}</tr></thead><tbody><tr class="empty"><td colspan="${headers.length}">${empty}</td></tr></tbody></table>`

export const PAGE_BODIES: Record<UiPageId, () => string> = {
  machines: () => `<h1>Machines</h1>
<div class="toolbar"><label for="machine-filter">Filter</label><input id="machine-filter" type="search" placeholder="hostname, MAC, IP, cluster, state…"><p id="machine-counts" class="counts"></p></div>
<section id="conflicts-section" aria-labelledby="conflicts-heading" hidden><h2 id="conflicts-heading">Identity conflicts</h2>
<p>Discovery reports that claimed a known machine's boot MAC, uuid or address. Nothing was changed: accept one to apply the report, or dismiss it.</p>
${table('conflicts', 'Open identity conflicts, newest first', ['Machine', 'Claim', 'Claimed uuid', 'Claimed MAC', 'Claimed IP', 'From', 'Reports', 'Last seen', ''], '—')}
<p id="conflicts-error" class="error" role="alert" hidden></p>
</section>
${table('machines', 'Every machine that has reported, with its place in a cluster', ['Machine', 'State', 'Power', 'Role', 'Cluster', 'Boot MAC', 'Boot IP', 'Hardware', 'Config', 'Last seen'], 'Loading…')}`,

  machine: () => `<p class="crumbs"><a href="/ui/machines">Machines</a> /</p>
<h1 id="machine-title">Machine</h1>
<div class="columns">
<section aria-labelledby="summary-heading"><h2 id="summary-heading">Summary</h2><dl id="machine-summary" class="facts"></dl></section>
<section aria-labelledby="facts-heading"><h2 id="facts-heading">Facts</h2><dl id="machine-facts" class="facts"></dl></section>
</div>
<section aria-labelledby="power-heading"><h2 id="power-heading">Power</h2>
<dl id="machine-power" class="facts"><dt>BMC</dt><dd>Loading…</dd></dl>
<div id="power-actions" class="actions" hidden></div>
<p id="power-result" class="ok" role="status"></p>
<p id="power-error" class="error" role="alert" hidden></p>
</section>
<section aria-labelledby="hardware-heading"><h2 id="hardware-heading">Interfaces and disks</h2>
${table('machine-interfaces', 'Network interfaces', ['Name', 'MAC', 'IPv4', 'Gateway', 'FQDN', 'Boot'], '—')}
${table('machine-disks', 'Disks', ['Path', 'Size', 'Model', 'Serial'], '—')}
</section>
<section aria-labelledby="events-heading"><h2 id="events-heading">State history</h2>
${table('machine-events', 'Every state change, newest first', ['When', 'From', 'To', 'Reason'], '—')}
</section>
<section aria-labelledby="boot-heading"><h2 id="boot-heading">What it is served</h2>
<p>Rendered now by the same code as the machine's own requests. Secrets (private keys, the bootstrap token, the machine's credential) show as <code>REDACTED-…</code>; everything else is exactly what the machine receives. <button type="button" id="boot-refresh" class="secondary">Render again</button></p>
<h3>iPXE script <code id="ipxe-url" class="url"></code></h3>
<pre id="ipxe-body" class="code" tabindex="0">Loading…</pre>
<h3>Ignition config <code id="ignition-url" class="url"></code></h3>
<p id="ignition-redacted" class="note"></p>
<pre id="ignition-body" class="code" tabindex="0">Loading…</pre>
</section>`,

  clusters: () => `<h1>Clusters</h1>
<div class="toolbar"><p id="cluster-counts" class="counts"></p><button type="button" id="health-sweep" class="secondary">Check health now</button></div>
${table('clusters', 'The cluster registry (health from each API server)', ['Name', 'Labels', 'Health', 'Nodes ready', 'Pods', 'Kubernetes', 'Location', 'Source'], 'Loading…')}
<section aria-labelledby="map-heading"><h2 id="map-heading">Locations</h2>
<figure class="map">
<svg id="cluster-map" viewBox="${MAP_VIEW_BOX.x} ${MAP_VIEW_BOX.y} ${MAP_VIEW_BOX.width} ${MAP_VIEW_BOX.height}" role="img" aria-labelledby="map-caption">
<rect class="sea" x="${MAP_VIEW_BOX.x}" y="${MAP_VIEW_BOX.y}" width="${MAP_VIEW_BOX.width}" height="${MAP_VIEW_BOX.height}"/>
<path class="land" d="${worldLandPath()}"/>
<g id="map-clusters"></g>
</svg>
<figcaption id="map-caption">Clusters by latitude and longitude, colored by health: <span class="legend healthy">Healthy</span> <span class="legend degraded">Degraded</span> <span class="legend unreachable">Unreachable</span> <span class="legend unknown">Not checked</span></figcaption>
</figure>
</section>`,

  releases: () => `<h1>Releases</h1>
<section aria-labelledby="install-heading" class="panel"><h2 id="install-heading">Install or upgrade</h2>
<form id="release-form">
<fieldset><legend>Chart</legend>
<div class="choice"><input type="radio" id="chart-source-upload" name="chart-source" value="upload" checked><label for="chart-source-upload">Upload a packaged chart (.tgz)</label></div>
<div class="choice"><input type="radio" id="chart-source-stored" name="chart-source" value="stored"><label for="chart-source-stored">A chart already stored</label></div>
<div class="field" id="chart-upload-field"><label for="chart-file">Chart archive</label><input id="chart-file" name="chart" type="file" accept=".tgz,.tar.gz,application/gzip"></div>
<div class="field" id="chart-stored-field" hidden><label for="chart-ref">Chart and version</label><select id="chart-ref" name="chart-ref"></select></div>
</fieldset>
<div class="grid">
<div class="field"><label for="release-name">Release name</label><input id="release-name" name="name" required maxlength="53" pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?" placeholder="web"></div>
<div class="field"><label for="release-namespace">Namespace</label><input id="release-namespace" name="namespace" required maxlength="63" value="default"></div>
<div class="field wide"><label for="release-selector">Cluster label selector</label><input id="release-selector" name="selector" maxlength="4096" placeholder="region in (eu,us),tier!=test" aria-describedby="selector-help"><small id="selector-help">Kubernetes selector syntax over cluster labels; empty selects every cluster.</small></div>
<div class="field"><label for="release-max-parallel">Clusters at once</label><input id="release-max-parallel" name="max_parallel" type="number" min="1" max="1000" placeholder="all"></div>
<div class="field"><label for="release-canary">Canary selector</label><input id="release-canary" name="canary_selector" maxlength="4096" placeholder="tier=canary"></div>
</div>
<div class="field"><label for="release-values">Values (YAML)</label><textarea id="release-values" name="values" rows="6" spellcheck="false" placeholder="replicas: 2"></textarea></div>
<p class="field"><input type="checkbox" id="release-upgrade" name="upgrade"><label for="release-upgrade">Upgrade the release if it exists (a new revision)</label></p>
<p id="release-form-error" class="error" role="alert" hidden></p>
<p id="release-form-result" class="ok" role="status"></p>
<button type="submit" id="release-submit">Install</button>
</form>
</section>
<section aria-labelledby="list-heading"><h2 id="list-heading">Releases and their clusters</h2>
<p id="releases-empty">Loading…</p>
<div id="releases"></div>
</section>`,

  rollouts: () => `<h1>Rolling updates</h1>
<section aria-labelledby="locks-heading"><h2 id="locks-heading">Reboot slots (lock groups)</h2>
${table('lock-groups', 'Each lock group: how many machines may restart at once, and who holds a slot', ['Group', 'Slots', 'Free', 'Holders', 'Slot TTL'], 'Loading…')}
</section>
<section aria-labelledby="runs-heading"><h2 id="runs-heading">Runs</h2>
<p id="runs-empty">Loading…</p>
<div id="runs"></div>
</section>`,
}
