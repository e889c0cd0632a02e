/**
 * The CLI's output pieces on their own: tables fitted to a terminal's width, the progress bar on a
 * terminal (redrawn with \r) and as plain lines on a pipe, and when a watched fan-out or run has ended.
 */
import t from 'tap'
import type { ReleaseDetail, RolloutDetail } from '../../../src/transports/cli/api-types.ts'
import { fanoutStep } from '../../../src/transports/cli/commands/releases.ts'
import { rolloutStep } from '../../../src/transports/cli/commands/rollouts.ts'
import { ProgressDisplay } from '../../../src/transports/cli/progress.ts'
import { displayWidth, formatAge, formatBytes, formatTable, truncate } from '../../../src/transports/cli/table.ts'

class RecordingStream {
  text = ''
  constructor(
    readonly isTTY: boolean,
    readonly columns = 80,
  ) {}
  write(chunk: string) {
    this.text += chunk
    return true
  }
}

t.test('tables: aligned columns, right-aligned numbers, shrinkable columns cut to the width, nothing cut on a pipe', async (t) => {
  const columns = [{ header: 'NAME' }, { header: 'NODES', align: 'right' as const }, { header: 'LABELS', shrink: true }]
  const rows = [
    ['eu-1', '3/3', 'region=eu,tier=prod,team=payments,owner=someone-with-a-long-name'],
    ['ap-southeast-1', '12/12', null],
  ]
  t.equal(
    formatTable(columns, rows),
    ['NAME            NODES  LABELS', 'eu-1              3/3  region=eu,tier=prod,team=payments,owner=someone-with-a-long-name', 'ap-southeast-1  12/12  -', ''].join('\n'),
    'piped: every character kept, null shown as "-", no trailing spaces',
  )
  const fitted = formatTable(columns, rows, 50)
  const lines = fitted.trimEnd().split('\n')
  t.ok(lines.every((line) => displayWidth(line) <= 50), fitted)
  t.equal(lines[1], 'eu-1              3/3  region=eu,tier=prod,team=p…', 'the labels column cut to fill the 50 cells exactly')
  t.equal(lines[2], 'ap-southeast-1  12/12  -', 'identifiers are never cut')
  const narrow = formatTable(columns, rows, 20).trimEnd().split('\n')
  t.equal(narrow[1], 'eu-1              3/3  region=…', 'a shrinkable column keeps at least 8 cells even when the table cannot fit')

  t.equal(formatTable([{ header: 'NAME' }, { header: 'X' }], [['東京-1', 'a'], ['osaka', 'b']]), 'NAME    X\n東京-1  a\nosaka   b\n', 'wide characters count two cells')
  t.equal(formatTable([{ header: 'MESSAGE' }], [['line one\nline two\u001b[31m']]), 'MESSAGE\nline one line two [31m\n', 'control characters cannot break a row or reach the terminal')
  t.equal(truncate('abcdef', 4), 'abc…')
  t.equal(formatBytes(512), '512 B')
  t.equal(formatBytes(8 * 1024 ** 3), '8.0 GiB')
  t.equal(formatAge(new Date(Date.now() - 90_000).toISOString()), '90s')
  t.equal(formatAge(new Date(Date.now() - 3 * 3600_000).toISOString()), '3h')
  t.equal(formatAge(null), '-')
})

t.test('progress: a bar redrawn in place on a terminal, plain lines that never repeat on a pipe', async (t) => {
  const terminal = new RecordingStream(true, 100)
  const bar = new ProgressDisplay(terminal, 'shop/web', 'clusters ready')
  bar.update({ done: 0, failed: 0, total: 4, detail: 'applying: eu-1' })
  bar.update({ done: 2, failed: 1, total: 4 })
  bar.log('eu-3: failed')
  bar.update({ done: 3, failed: 1, total: 4 })
  bar.end()
  t.equal(
    terminal.text,
    '\rshop/web [........................] 0/4 clusters ready (applying: eu-1)\x1b[K' +
      '\rshop/web [############xxxxxx......] 2/4 clusters ready, 1 failed\x1b[K' +
      '\r\x1b[Keu-3: failed\nshop/web [############xxxxxx......] 2/4 clusters ready, 1 failed' +
      '\rshop/web [##################xxxxxx] 3/4 clusters ready, 1 failed\x1b[K\n',
    'redrawn with \\r, failures drawn as x, an event printed above the bar',
  )
  const narrow = new RecordingStream(true, 30)
  new ProgressDisplay(narrow, 'shop/web', 'clusters ready').update({ done: 1, failed: 0, total: 2 })
  t.ok(displayWidth(narrow.text.replace('\r', '').replace('\x1b[K', '')) <= 29, 'the bar line fits the terminal')

  const pipe = new RecordingStream(false)
  const lines = new ProgressDisplay(pipe, 'rollout r1', 'machines updated')
  lines.update({ done: 0, failed: 0, total: 3 })
  lines.update({ done: 0, failed: 0, total: 3 })
  lines.log('roll-node-1: draining')
  lines.update({ done: 1, failed: 0, total: 3, detail: 'roll-cp-1 restarting' })
  lines.end()
  t.equal(pipe.text, 'rollout r1: 0/3 machines updated\nroll-node-1: draining\nrollout r1: 1/3 machines updated (roll-cp-1 restarting)\n')
})

t.test('when a watch ends: fan-outs by the current revision on the targets, runs by finished_at', async (t) => {
  const status = (cluster: string, revision: number, phase: string) => ({ cluster, revision, phase, error: null, attempts: 0, retry_at: null, updated_at: '' })
  const release = (state: string, revision: number, clusters: ReturnType<typeof status>[]) => ({ state, revision, clusters }) as unknown as ReleaseDetail

  t.same(fanoutStep(release('active', 1, []), ['eu-1', 'eu-2'], []), { counts: { done: 0, failed: 0, total: 2 }, events: [] }, 'no status yet: going on, not done')
  t.same(fanoutStep(release('active', 2, [status('eu-1', 1, 'ready'), status('eu-2', 2, 'ready')]), ['eu-1', 'eu-2'], []).outcome, undefined, 'ready at an older revision is not done')
  t.same(fanoutStep(release('active', 2, [status('eu-1', 2, 'applying'), status('eu-2', 2, 'ready')]), ['eu-1', 'eu-2'], []).counts, { done: 1, failed: 0, total: 2, detail: 'applying: eu-1' })
  t.equal(fanoutStep(release('active', 2, [status('eu-1', 2, 'ready'), status('eu-2', 2, 'ready'), status('old', 1, 'removing')]), ['eu-1', 'eu-2'], []).outcome, 'succeeded', 'a cluster being left does not count')
  t.equal(fanoutStep(release('active', 1, [status('eu-1', 1, 'ready'), status('eu-2', 1, 'failed')]), ['eu-1', 'eu-2'], []).outcome, 'failed')
  t.equal(fanoutStep(release('halted', 1, [status('eu-1', 1, 'failed')]), ['eu-1', 'eu-2'], []).outcome, 'failed', 'halted: failed even with clusters left')
  t.same(fanoutStep(release('paused', 1, [status('eu-1', 1, 'ready')]), ['eu-1', 'eu-2'], []), { counts: { done: 1, failed: 0, total: 2, detail: 'paused' }, events: [] })
  t.equal(fanoutStep(release('active', 1, []), [], []).outcome, 'succeeded', 'no cluster matches: nothing to wait for')

  const machine = (hostname: string, phase: string) => ({ uuid: hostname, cluster: 'roll', hostname, role: 'node', phase, error: null, started_at: null, finished_at: null })
  const run = (state: string, finished: boolean, machines: ReturnType<typeof machine>[]) => ({ state, finished_at: finished ? 'now' : null, machines }) as unknown as RolloutDetail
  t.same(rolloutStep(run('running', false, [machine('a', 'done'), machine('b', 'draining'), machine('c', 'waiting')]), []), { counts: { done: 1, failed: 0, total: 3, detail: 'b draining' }, events: [] })
  t.equal(rolloutStep(run('completed', true, [machine('a', 'done'), machine('b', 'skipped')]), []).outcome, 'succeeded')
  t.equal(rolloutStep(run('cancelled', true, [machine('a', 'done'), machine('b', 'waiting')]), []).outcome, 'failed', 'a cancelled run did not do its job')
  t.equal(rolloutStep(run('paused', false, [machine('a', 'waiting')]), []).counts.detail, 'paused')
})
