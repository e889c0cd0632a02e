// Shared by every page: calls to the JSON API with the session cookie, DOM building without
// innerHTML (every value from the API goes in as text), formatting, and polling while visible.

/** An API error with the engine's stable code and its message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

/**
 * Calls the engine's JSON API. The session cookie authenticates; `X-Slipway-UI: 1` is what lets a
 * cookie-authenticated request change anything (a cross-site form cannot send it).
 */
export async function api(path, { method = 'GET', body, form } = {}) {
  const headers = { accept: 'application/json', 'x-slipway-ui': '1' }
  let payload
  if (form) payload = form
  else if (body !== undefined) {
    headers['content-type'] = 'application/json'
    payload = JSON.stringify(body)
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' })
  if (response.status === 401) {
    // The session expired or its token was revoked: back to the login page, then here again.
    location.assign(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`)
    throw new ApiError(401, 'SESSION_ENDED', 'the session has ended; sign in again')
  }
  const text = await response.text()
  const data = text ? JSON.parse(text) : null
  if (!response.ok) throw new ApiError(response.status, data?.code ?? 'HTTP_' + response.status, data?.message ?? response.statusText)
  return data
}

/** An element with attributes (`class`, `for`, data-*, aria-*; on* as listeners) and children (strings become text). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value)
    else node.setAttribute(key, value === true ? '' : String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    node.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return node
}

/** Replaces a table body's rows; with none, one row saying so across every column. */
export function fillTable(table, rows, emptyText) {
  const body = table.tBodies[0]
  if (rows.length === 0) {
    const columns = table.tHead.rows[0].cells.length
    body.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: columns }, emptyText)))
  } else body.replaceChildren(...rows)
}

/** A coloured word: `kind` picks the colour (ok, warn, bad, busy, idle). */
export const badge = (text, kind) => el('span', { class: `badge ${kind}` }, text)

const KIND_OF = {
  // machine states
  installed: 'ok', discovered: 'idle', booting: 'idle', scheduled: 'busy', installing: 'busy', install_failed: 'bad',
  // drift
  up_to_date: 'ok', outdated: 'warn', unknown: 'idle',
  // cluster health
  Healthy: 'ok', Degraded: 'warn', Unreachable: 'bad',
  // release phases and states
  ready: 'ok', applying: 'busy', pending: 'idle', failed: 'bad', removing: 'busy', active: 'ok', paused: 'warn', halted: 'bad', deleting: 'busy',
  // rollouts
  running: 'busy', completed: 'ok', cancelled: 'idle', waiting: 'idle', done: 'ok', skipped: 'idle',
  locking: 'busy', draining: 'busy', restarting: 'busy', uncordoning: 'busy', releasing: 'busy',
}
export const kindOf = (value) => KIND_OF[value] ?? 'idle'
export const stateBadge = (value, label = value.replaceAll('_', ' ')) => badge(label, kindOf(value))

const POWER_KIND = { on: 'ok', off: 'idle', unknown: 'idle' }

/**
 * A machine's power as its BMC last reported it (GET /api/v1/bmcs, .../bmc). When the last call to the
 * BMC failed, the state is the one from before, so it gets a warning mark and the failure in its title.
 */
export function powerBadge(bmc) {
  const failure = bmc.last_error
  return el(
    'span',
    { class: 'power', 'data-power': bmc.power, 'data-power-error': failure?.code, title: failure ? `last check failed: ${failure.code}: ${failure.message}` : undefined },
    badge(bmc.power, POWER_KIND[bmc.power] ?? 'idle'),
    failure ? el('span', { class: 'warn-mark', role: 'img', 'aria-label': `last check failed: ${failure.code}` }, '⚠') : null,
  )
}

export function bytes(count) {
  if (count === null || count === undefined) return '—'
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB']
  let value = count
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`
}

/** "5 s ago", "3 min ago", … with the exact time in a <time> element for assistive tech and hover. */
export function ago(iso) {
  if (!iso) return '—'
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  const text =
    seconds < 60 ? `${seconds} s ago` : seconds < 3600 ? `${Math.floor(seconds / 60)} min ago` : seconds < 86400 ? `${Math.floor(seconds / 3600)} h ago` : `${Math.floor(seconds / 86400)} d ago`
  return el('time', { datetime: iso, title: new Date(iso).toLocaleString() }, text)
}

export const labelList = (labels) => {
  const entries = Object.entries(labels ?? {})
  return entries.length ? el('ul', { class: 'labels' }, entries.map(([key, value]) => el('li', {}, `${key}=${value}`))) : '—'
}

/** The page's own live-status line in the footer. */
export function showStatus(text, isError = false) {
  const status = document.getElementById('live-status')
  if (!status) return
  status.textContent = text
  status.classList.toggle('error', isError)
}

/**
 * Runs `refresh` now and every `intervalMs` while the tab is visible (a hidden tab costs the engine
 * nothing), at once when it becomes visible again; a failed refresh is shown and retried.
 */
export function poll(refresh, intervalMs = 2500) {
  let timer
  let running = false
  const tick = async () => {
    clearTimeout(timer)
    if (running) return
    running = true
    try {
      await refresh()
      showStatus(`Live: updated ${new Date().toLocaleTimeString()} (every ${intervalMs / 1000} s while this tab is visible)`)
    } catch (error) {
      if (error.code !== 'SESSION_ENDED') showStatus(`Update failed: ${error.message}; retrying`, true)
    } finally {
      running = false
      if (document.visibilityState === 'visible') timer = setTimeout(tick, intervalMs)
    }
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') tick()
    else clearTimeout(timer)
  })
  tick()
  return { now: tick }
}

/** Shows an action's failure next to the control that started it, or clears it. */
export function reportError(target, error) {
  target.hidden = !error
  target.textContent = error ? `${error.code ? error.code + ': ' : ''}${error.message}` : ''
}
