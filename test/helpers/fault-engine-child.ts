/**
 * An engine process (run by EngineProcess with `entry`) whose two adapters that reach machines are
 * replaced by doubles that write a journal (`SLIPWAY_TEST_JOURNAL`, one JSON line per call, written
 * synchronously before answering): a machine shell and a node drainer. The journal outlives a
 * SIGKILL, so that the test can play the machines (a restart issued is a restart that happens) and
 * replay cordons to see what a killed engine left cordoned.
 */
import { appendFileSync } from 'node:fs'
import type { CommandResult, DrainOptions, DrainReport, MachineShell, NodeDrainer, SshTarget } from '../../src/core/lifecycle/ports.ts'
import { loadConfig } from '../../src/config.ts'
import { createEngine } from '../../src/engine.ts'
import { createLogger } from '../../src/lib/logger.ts'

export type JournalEntry =
  | { kind: 'write'; host: string; file: string; content: string; at: number }
  | { kind: 'run'; host: string; command: string; at: number }
  | { kind: 'cordon' | 'drain' | 'uncordon'; node: string; at: number }

const journalFile = process.env.SLIPWAY_TEST_JOURNAL
if (!journalFile) throw new Error('SLIPWAY_TEST_JOURNAL must name the journal file')
const record = (entry: JournalEntry) => appendFileSync(journalFile, `${JSON.stringify(entry)}\n`)

class JournalShell implements MachineShell {
  async writeFile(target: SshTarget, file: string, content: string) {
    record({ kind: 'write', host: target.host, file, content, at: Date.now() })
  }
  async run(target: SshTarget, command: string): Promise<CommandResult & { hostKey: string }> {
    record({ kind: 'run', host: target.host, command, at: Date.now() })
    // The machine restarts: the connection drops, as it does for a real reboot or kexec.
    return { exitCode: null, signal: 'SIGHUP', stdout: '', stderr: '', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaultSuiteDoubleHostKey' }
  }
}

class JournalDrainer implements NodeDrainer {
  async cordon(node: string) {
    record({ kind: 'cordon', node, at: Date.now() })
  }
  async drain(node: string, _options: DrainOptions): Promise<DrainReport> {
    record({ kind: 'drain', node, at: Date.now() })
    return { evicted: [`default/${node}-pod`], skipped: [] }
  }
  async uncordon(node: string) {
    record({ kind: 'uncordon', node, at: Date.now() })
  }
  async isReady() {
    return true
  }
}

const config = loadConfig()
const logger = createLogger(config.log.level)
const drainer = new JournalDrainer()
const engine = await createEngine(config, logger, { shell: new JournalShell(), drainerFrom: () => drainer })
await engine.start()
process.on('SIGTERM', () => {
  void engine.close().then(() => process.exit(0))
})
