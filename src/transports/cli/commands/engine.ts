import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { EXIT, usageError } from '../cli-error.ts'
import { stringValue, type CommandContext, type CommandSpec } from '../command.ts'

export const CONFIG_OPTION = { config: { type: 'string' as const, value: 'FILE', help: 'the YAML configuration (default: SLIPWAY_CONFIG, else ./slipway.yaml if present)' } }
const LAB_SCRIPT = new URL('../../../../lab/run.ts', import.meta.url)

/** The package's version, read from package.json (no engine import). */
export function cliVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}

/** The engine's configuration as `serve` would read it; undefined (reported on stderr) when it does not validate. */
export async function loadCommandConfig(context: CommandContext) {
  const { loadConfig } = await import('../../../config.ts')
  const file = stringValue(context, 'config')
  try {
    return loadConfig({ env: context.env, cwd: context.cwd, ...(file !== undefined ? { file } : {}) })
  } catch (error) {
    context.out.stderr.write(`slipway: ${(error as Error).message} (INVALID_CONFIG)\n`)
    return undefined
  }
}

export const engineCommands: CommandSpec[] = [
  {
    path: ['serve'],
    summary: 'run the engine (HTTP, and DHCP, TFTP, DNS, proxy as configured) until SIGTERM/SIGINT',
    options: CONFIG_OPTION,
    details: 'Every setting can also come from the environment (SLIPWAY_HTTP_PORT, SLIPWAY_DATA_DIR, ...; see the README).\nLogs are JSON lines on stdout.',
    async run(context) {
      // Imported here: only `serve` pays for loading the engine.
      const [{ serve, reportStartupFailure }, { ConfigError }] = await Promise.all([import('../../../serve.ts'), import('../../../config.ts')])
      const file = stringValue(context, 'config')
      try {
        await serve({ env: context.env, cwd: context.cwd, ...(file !== undefined ? { file } : {}) })
      } catch (error) {
        reportStartupFailure(error, context.out.stderr)
        // A configuration that does not validate is a usage error, as for migrate.
        return error instanceof ConfigError ? EXIT.usage : EXIT.failed
      }
      return 'running'
    },
  },
  {
    path: ['migrate'],
    summary: 'apply pending database migrations to the configured database, and print them',
    options: CONFIG_OPTION,
    details: 'The engine also migrates on start; this runs them alone (before an upgrade, or to check a database).',
    async run(context) {
      const [config, { describeDatabase, migrateToLatest, openStore }] = await Promise.all([loadCommandConfig(context), import('../../../storage/db.ts')])
      if (config === undefined) return EXIT.usage
      // The one place the CLI opens the store: the same settings createEngine opens it with.
      const store = openStore(config.database)
      const database = describeDatabase(config.database)
      try {
        const applied = await migrateToLatest(store)
        if (context.out.json) context.out.print(JSON.stringify({ database, applied }))
        else if (applied.length === 0) context.out.print(`${database}: up to date, no pending migrations`)
        else context.out.print([`${database}: applied ${applied.length} migration(s):`, ...applied.map((name) => `  ${name}`)].join('\n'))
        return EXIT.ok
      } catch (error) {
        context.out.stderr.write(`slipway: ${(error as Error).message} (MIGRATION_FAILED)\n`)
        return EXIT.failed
      } finally {
        await store.destroy()
      }
    },
  },
  {
    path: ['restore'],
    summary: "replace the configured SQLite database with a snapshot (offline: stop the engine first)",
    options: {
      ...CONFIG_OPTION,
      from: { type: 'string', value: 'FILE', help: 'the snapshot (slipway backup --out FILE, GET /api/v1/backup)' },
    },
    details:
      'Checks the snapshot (integrity, foreign keys, a Slipway schema this engine knows, sealed values that open\n' +
      'with secrets.keyFile), keeps the current database as <database>.before-restore-<timestamp>, then installs\n' +
      'the snapshot with one rename. Refused, with nothing changed, while any process has the database open.',
    async run(context) {
      const snapshot = stringValue(context, 'from')
      if (snapshot === undefined) throw usageError('which snapshot? --from FILE')
      const [config, { restoreDatabase, RestoreError }] = await Promise.all([loadCommandConfig(context), import('../../../storage/restore.ts')])
      if (config === undefined) return EXIT.usage
      if (config.database.driver !== 'sqlite') {
        context.out.stderr.write('slipway: restore replaces a SQLite database; for PostgreSQL use pg_restore (see the README) (RESTORE_NOT_SQLITE)\n')
        return EXIT.usage
      }
      try {
        const result = restoreDatabase({
          snapshotFile: path.resolve(context.cwd, snapshot),
          databaseFile: config.database.path,
          secretsKeyFile: config.secrets.keyFile,
        })
        if (context.out.json) context.out.print(JSON.stringify({ database: config.database.path, ...result }))
        else
          context.out.print(
            [
              `restored ${config.database.path} from ${snapshot} (schema ${result.latestMigration}, ${result.migrations} migrations)`,
              result.previousDatabase ? `the previous database is kept as ${result.previousDatabase}` : 'there was no previous database',
            ].join('\n'),
          )
        return EXIT.ok
      } catch (error) {
        if (!(error instanceof RestoreError)) throw error
        context.out.stderr.write(`slipway: ${error.message} (${error.code})\n`)
        // A missing file is the caller's mistake; the rest is a snapshot or a database state the engine refuses.
        return error.code === 'SNAPSHOT_NOT_FOUND' ? EXIT.usage : EXIT.rejected
      }
    },
  },
  {
    path: ['lab'],
    summary: 'boot QEMU machines through the engine (npm run lab; needs root); options go to the lab (slipway lab --help)',
    passThrough: true,
    async run(context) {
      // The lab reads its options with parseArgs from process.argv, and exits by itself when done.
      process.argv = [process.argv[0]!, fileURLToPath(LAB_SCRIPT), ...context.positionals]
      await import(LAB_SCRIPT.href)
      return 'running'
    },
  },
  {
    path: ['completion'],
    summary: 'print the shell completion script: source <(slipway completion bash), or zsh',
    args: '<bash|zsh>',
    arity: [1, 1],
    async run(context) {
      const shell = context.positionals[0]
      if (shell !== 'bash' && shell !== 'zsh') throw usageError(`completion is for bash or zsh, not "${shell}"`)
      // Loaded here: the command list includes this command.
      const [{ COMMANDS }, { GLOBAL_OPTIONS }, { bashCompletion, zshCompletion }] = await Promise.all([import('./index.ts'), import('../main.ts'), import('../completion.ts')])
      context.out.stdout.write((shell === 'bash' ? bashCompletion : zshCompletion)(COMMANDS, GLOBAL_OPTIONS))
      return EXIT.ok
    },
  },
  {
    path: ['version'],
    summary: "print the CLI's version",
    async run(context) {
      const version = cliVersion()
      context.out.print(context.out.json ? JSON.stringify({ version, node: process.version }) : `slipway ${version} (node ${process.version})`)
      return EXIT.ok
    },
  },
]
