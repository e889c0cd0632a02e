/**
 * deploy/slipway.service as systemd reads it: `systemd-analyze verify` (systemd's own parser and
 * checks) finds nothing to say, and says something about a broken copy (so the check is not vacuous);
 * and the unit keeps its promises: a user of its own, state under /var/lib/slipway, the privileged
 * ports with CAP_NET_BIND_SERVICE and no other capability, the engine's own `serve` command.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { REPO_ROOT, removeTree } from '../helpers/engine.ts'

const UNIT = path.join(REPO_ROOT, 'deploy', 'slipway.service')

async function verify(file: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('systemd-analyze', ['verify', file], { timeout: 30_000 })
    return { code: 0, output: `${stdout}${stderr}`.trim() }
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string }
    if (failed.code === 'ENOENT') throw new Error('systemd-analyze is not installed (Debian: systemd); .ci/run installs it')
    return { code: Number(failed.code), output: `${failed.stdout ?? ''}${failed.stderr ?? ''}`.trim() }
  }
}

/** The unit's `key=value` lines, by key (a key may repeat). */
function directives(text: string): Map<string, string[]> {
  const found = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (match) found.set(match[1]!, [...(found.get(match[1]!) ?? []), match[2]!])
  }
  return found
}

t.test('systemd-analyze verify accepts deploy/slipway.service and rejects a broken copy', async (t) => {
  const clean = await verify(UNIT)
  t.equal(clean.code, 0, clean.output)
  t.equal(clean.output, '', 'not one warning')

  const scratch = mkdtempSync(path.join(os.tmpdir(), 'slipway-unit-'))
  t.teardown(() => removeTree(scratch))
  const broken = path.join(scratch, 'slipway.service')
  writeFileSync(broken, readFileSync(UNIT, 'utf8').replace('ExecStart=/usr/bin/node', 'ExecStart=node').replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'))
  const complaint = await verify(broken)
  t.not(complaint.output, '', 'a broken copy draws complaints')
  t.match(complaint.output, /NoNewPrivilege|Unknown key/, 'about the misspelt key')
})

t.test('the unit runs the engine unprivileged, with its state in one place', async (t) => {
  const unit = directives(readFileSync(UNIT, 'utf8'))
  t.same(unit.get('ExecStart'), ['/usr/bin/node /opt/slipway/bin/slipway.js serve'])
  t.same(unit.get('DynamicUser'), ['yes'], 'a user of its own')
  t.same(unit.get('StateDirectory'), ['slipway'])
  t.ok(unit.get('Environment')?.includes('SLIPWAY_DATA_DIR=/var/lib/slipway'), 'the data folder is the state directory')
  t.same(unit.get('CapabilityBoundingSet'), ['CAP_NET_BIND_SERVICE'], 'ports 53, 67 and 69 without root, and nothing more')
  t.same(unit.get('AmbientCapabilities'), ['CAP_NET_BIND_SERVICE'])
  for (const key of ['NoNewPrivileges', 'ProtectHome', 'PrivateTmp', 'PrivateDevices']) t.same(unit.get(key), ['yes'], key)
  t.same(unit.get('ProtectSystem'), ['strict'])
  t.same(unit.get('KillSignal'), ['SIGTERM'], 'the signal the engine stops cleanly on')
  t.notOk(unit.has('MemoryDenyWriteExecute'), "V8's JIT needs writable, executable memory")
})
