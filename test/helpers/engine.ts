import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { loadConfig, type Config } from '../../src/config.ts'
import { createEngine, type Engine, type EngineAdapters } from '../../src/engine.ts'
import { testEngineDatabaseEnv } from './backends.ts'

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef'

/** A private copy of the repo's sample content, so tests can change files without touching the repo. */
export function copySampleContent(into: string): void {
  for (const folder of ['profiles', 'ignition', 'ipxe', 'generic']) {
    cpSync(path.join(REPO_ROOT, folder), path.join(into, folder), { recursive: true })
  }
}

export interface TestEngineOptions {
  /** Folder holding profiles/, ignition/, ipxe/, generic/ (and assets/); defaults to a copy of the samples. */
  contentDir?: string
  /** Reuse a data folder, to test what survives a restart. */
  dataDir?: string
  env?: Record<string, string>
  adapters?: EngineAdapters
  /** Every log line (JSON, debug level and up) is pushed here, for tests of what is never logged. */
  logLines?: string[]
}

export interface TestEngine {
  engine: Engine
  config: Config
  contentDir: string
  dataDir: string
}

/** Starts an engine on a real SQLite file in a temporary folder (or PostgreSQL: SLIPWAY_TEST_BACKEND=postgres). */
export async function startTestEngine(options: TestEngineOptions = {}): Promise<TestEngine> {
  // A restart reuses the first start's folders: no new scratch folder (nothing would remove it).
  const reused = Boolean(options.dataDir && options.contentDir)
  const scratch = reused ? path.dirname(options.dataDir!) : mkdtempSync(path.join(os.tmpdir(), 'slipway-test-'))
  try {
    return await startInScratch(options, scratch)
  } catch (error) {
    // A start that fails (as some tests intend) hands no folder to clean up: remove the one made here.
    if (!reused) removeTree(scratch)
    throw error
  }
}

async function startInScratch(options: TestEngineOptions, scratch: string): Promise<TestEngine> {
  const contentDir = options.contentDir ?? path.join(scratch, 'content')
  if (!options.contentDir) copySampleContent(contentDir)
  const dataDir = options.dataDir ?? path.join(scratch, 'var')
  const config = loadConfig({
    cwd: scratch,
    env: {
      SLIPWAY_DATA_DIR: dataDir,
      SLIPWAY_CONTENT_PROFILES_DIR: path.join(contentDir, 'profiles'),
      SLIPWAY_CONTENT_IGNITION_DIR: path.join(contentDir, 'ignition'),
      SLIPWAY_CONTENT_IPXE_DIR: path.join(contentDir, 'ipxe'),
      SLIPWAY_CONTENT_GENERIC_DIR: path.join(contentDir, 'generic'),
      SLIPWAY_CONTENT_ASSETS_DIR: path.join(contentDir, 'assets'),
      SLIPWAY_AUTH_ADMIN_TOKEN: ADMIN_TOKEN,
      // Tests play whole fleets from 127.0.0.1, as from machines behind one NAT address; the limit itself is tested with its own value.
      SLIPWAY_MACHINES_DISCOVERY_REPORTS_PER_MINUTE: '1000000',
      // Many engines run at once: HTTP on a free loopback port unless a test asks for one (never the
      // default 0.0.0.0:8080, which two test files starting engines at once would both take).
      SLIPWAY_HTTP_HOST: '127.0.0.1',
      SLIPWAY_HTTP_PORT: '0',
      // Many engines run at once: the reverse proxy on a free loopback port unless a test asks for one.
      SLIPWAY_PROXY_PORT: '0',
      // Many engines run at once: DNS on a free port unless a test asks for one.
      SLIPWAY_DNS_PORT: '0',
      // SLIPWAY_TEST_BACKEND=postgres: the engine's store is a fresh PostgreSQL database.
      ...(await testEngineDatabaseEnv(dataDir)),
      ...options.env,
    },
  })
  const lines = options.logLines
  const logger = lines ? pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }) : pino({ level: 'silent' })
  const engine = await createEngine(config, logger, options.adapters)
  return { engine, config, contentDir, dataDir }
}

export function removeTree(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}

export const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }

/**
 * A test engine listening on a free loopback port, with no timed scheduler pass and no health sweep
 * (tests trigger what they need), closed and removed when the test ends.
 */
export async function startServingEngine(t: { teardown(fn: () => unknown): void }, env: Record<string, string> = {}, adapters?: EngineAdapters): Promise<TestEngine & { address: string; port: number }> {
  const started = await startTestEngine({
    env: { SLIPWAY_HTTP_PORT: '0', SLIPWAY_HTTP_HOST: '127.0.0.1', SLIPWAY_SCHEDULER_INTERVAL_SECONDS: '0', SLIPWAY_REGISTRY_HEALTH_INTERVAL_SECONDS: '0', ...env },
    ...(adapters ? { adapters } : {}),
  })
  t.teardown(async () => {
    await started.engine.close()
    removeTree(path.dirname(started.dataDir))
  })
  const address = await started.engine.start()
  return { ...started, address, port: Number(new URL(address).port) }
}
