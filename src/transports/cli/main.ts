/**
 * `slipway`: the engine (serve, migrate, lab) and a client of its admin API. Commands are a table
 * (commands/*.ts); this file finds the command, parses its options strictly, and turns every failure
 * into `slipway: <message> (<CODE>)` on stderr and an exit code that means something (cli-error.ts).
 * Only what a command needs is loaded: `--help` and client commands never import the engine.
 */
import { parseArgs } from 'node:util'
import type { ApiClient } from './api-client.ts'
import { CliError, EXIT, EXIT_CODE_HELP, usageError, type ExitCode } from './cli-error.ts'
import type { CommandContext, CommandSpec, OptionSpec } from './command.ts'
import { COMMANDS } from './commands/index.ts'
import { Output, type OutputStream } from './output.ts'

export const DEFAULT_URL = 'http://127.0.0.1:8080'
const DEFAULT_TIMEOUT_SECONDS = 30

/** Options every command takes, before or after its name. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  url: { type: 'string', value: 'URL', help: `the engine's URL (env SLIPWAY_URL; default ${DEFAULT_URL})` },
  token: { type: 'string', value: 'TOKEN', help: 'API token (env SLIPWAY_TOKEN; prefer the variable: arguments show in ps)' },
  json: { type: 'boolean', help: "print the API's JSON instead of tables (progress then goes to stderr)" },
  'request-timeout': { type: 'string', value: 'SECONDS', help: `limit for each request (env SLIPWAY_REQUEST_TIMEOUT; default ${DEFAULT_TIMEOUT_SECONDS})` },
  help: { type: 'boolean', short: 'h', help: 'show help' },
}

export interface CliIo {
  stdout: OutputStream
  stderr: OutputStream
  env: NodeJS.ProcessEnv
  cwd: string
  /** True when a person can answer a question on stdin. */
  interactive: boolean
  ask(question: string): Promise<string>
}

/** Runs one command line; resolves to the exit code, or 'running' when the process must stay up (serve, lab). */
export async function runCli(argv: string[], io: CliIo): Promise<ExitCode | 'running'> {
  let client: ApiClient | undefined
  // `slipway help clusters list` is `slipway clusters list --help`.
  if (argv[0] === 'help') argv = [...argv.slice(1), '--help']
  // `slipway --version` and `-v` are `slipway version`, as other CLIs have it (with --json kept).
  const versionFlag = argv.findIndex((word) => word === '--version' || word === '-v')
  if (versionFlag !== -1 && argv.every((word, index) => index === versionFlag || word === '--json')) argv = ['version', ...argv.filter((word) => word === '--json')]
  try {
    const { command, rest, leadingGlobals } = findCommand(argv)
    if (!command) return printOverview(io, rest, leadingGlobals)
    if (command.passThrough) {
      const passed = rest[0] === '--' ? rest.slice(1) : rest
      return await command.run(contextFor({ values: {}, positionals: passed }, io, () => client, (made) => (client = made)))
    }
    const parsed = parseCommandLine(command, [...leadingGlobals, ...rest])
    if (parsed.values.help) {
      io.stdout.write(commandHelp(command))
      return EXIT.ok
    }
    const [min, max] = command.arity ?? [0, 0]
    if (parsed.positionals.length < min) throw usageError(`missing ${command.args ?? 'argument'}: slipway ${command.path.join(' ')} ${command.args ?? ''}`.trimEnd())
    if (parsed.positionals.length > max) throw usageError(`unexpected argument "${parsed.positionals[max]}" for "slipway ${command.path.join(' ')}"; see --help`)
    return await command.run(contextFor(parsed, io, () => client, (made) => (client = made)))
  } catch (error) {
    return report(error, io)
  } finally {
    await client?.close()
  }
}

/** The command named by the leading words, after any global options given before it. */
function findCommand(argv: string[]): { command: CommandSpec | undefined; rest: string[]; leadingGlobals: string[] } {
  const leadingGlobals: string[] = []
  let index = 0
  while (index < argv.length && argv[index]!.startsWith('-') && argv[index] !== '--') {
    const word = argv[index]!
    const name = word.replace(/^--?/, '').split('=')[0]!
    const spec = GLOBAL_OPTIONS[name] ?? Object.values(GLOBAL_OPTIONS).find((option) => option.short === name)
    if (!spec) throw usageError(`unknown option ${word}; see slipway --help`)
    leadingGlobals.push(word)
    if (spec.type === 'string' && !word.includes('=')) {
      if (index + 1 >= argv.length) throw usageError(`${word} needs a value`)
      leadingGlobals.push(argv[++index]!)
    }
    index++
  }
  const words = argv.slice(index)
  let best: CommandSpec | undefined
  for (const command of COMMANDS) {
    if (command.path.length <= words.length && command.path.every((word, at) => words[at] === word) && (!best || command.path.length > best.path.length)) best = command
  }
  if (best) return { command: best, rest: words.slice(best.path.length), leadingGlobals }
  return { command: undefined, rest: words, leadingGlobals }
}

function parseCommandLine(command: CommandSpec, args: string[]): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  const options = { ...GLOBAL_OPTIONS, ...command.options }
  try {
    const { values, positionals } = parseArgs({
      args,
      options: Object.fromEntries(Object.entries(options).map(([name, spec]) => [name, { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) }])),
      strict: true,
      allowPositionals: true,
    })
    return { values: values as Record<string, string | boolean | string[] | undefined>, positionals }
  } catch (error) {
    const code = (error as { code?: string }).code
    const where = `"slipway ${command.path.join(' ')}"`
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec((error as Error).message)?.[1] ?? ''
      throw usageError(`unknown option ${option} for ${where}; see slipway ${command.path.join(' ')} --help`)
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const option = /'([^']+)'/.exec((error as Error).message)?.[1] ?? 'an option'
      throw usageError(`${option.split(' ')[0]} ${/argument missing/.test((error as Error).message) ? 'needs a value' : 'takes no value'} (${where})`)
    }
    throw usageError(`${(error as Error).message} (${where})`)
  }
}

function contextFor(
  parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] },
  io: CliIo,
  current: () => ApiClient | undefined,
  remember: (client: ApiClient) => void,
): CommandContext {
  const url = (parsed.values.url as string | undefined) ?? io.env.SLIPWAY_URL ?? DEFAULT_URL
  const timeoutText = (parsed.values['request-timeout'] as string | undefined) ?? io.env.SLIPWAY_REQUEST_TIMEOUT
  const timeoutSeconds = timeoutText === undefined ? DEFAULT_TIMEOUT_SECONDS : Number(timeoutText)
  return {
    values: parsed.values,
    positionals: parsed.positionals,
    out: new Output(io.stdout, io.stderr, parsed.values.json === true),
    env: io.env,
    cwd: io.cwd,
    interactive: io.interactive,
    confirm: io.ask,
    async api() {
      const existing = current()
      if (existing) return existing
      let parsedUrl: URL | undefined
      try {
        parsedUrl = new URL(url)
      } catch {
        // reported below
      }
      if (!parsedUrl || !['http:', 'https:'].includes(parsedUrl.protocol)) throw usageError(`the engine URL "${url}" is not an http(s) URL (--url or SLIPWAY_URL)`)
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw usageError(`the request timeout must be a positive number of seconds, not "${timeoutText}"`)
      const token = (parsed.values.token as string | undefined) ?? io.env.SLIPWAY_TOKEN
      if (!token) throw new CliError(EXIT.auth, 'TOKEN_REQUIRED', 'no API token: set SLIPWAY_TOKEN (or pass --token); the engine prints its admin token on first start')
      const { ApiClient } = await import('./api-client.ts')
      const client = new ApiClient({ url, token, timeoutMs: Math.round(timeoutSeconds * 1000) })
      remember(client)
      return client
    },
  }
}

function report(error: unknown, io: CliIo): ExitCode {
  if (error instanceof CliError) {
    // Messages may carry the engine's text: no terminal escapes from it reach the terminal.
    const message = error.message.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]+/g, ' ')
    io.stderr.write(`slipway: ${message} (${error.code})\n`)
    return error.exitCode
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
  io.stderr.write(`slipway: unexpected failure: ${message} (INTERNAL)\n`)
  return EXIT.failed
}

// ----- help -----

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => [`${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.value ? ` ${spec.value}` : ''}`, `${spec.help}${spec.multiple ? ' (repeatable)' : ''}`])
  const width = Math.max(...rows.map(([left]) => left!.length))
  return rows.map(([left, right]) => `  ${left!.padEnd(width)}  ${right}`)
}

function commandHelp(command: CommandSpec): string {
  const lines = [`usage: slipway ${command.path.join(' ')}${command.args ? ` ${command.args}` : ''}${command.options ? ' [options]' : ''}`, '', command.summary]
  if (command.options && Object.keys(command.options).length > 0) lines.push('', 'options:', ...optionLines(command.options))
  lines.push('', 'global options:', ...optionLines(GLOBAL_OPTIONS))
  if (command.details) lines.push('', command.details.trimEnd())
  lines.push('', 'Exit codes: see slipway --help.')
  return `${lines.join('\n')}\n`
}

/** `slipway`, `slipway --help`, `slipway clusters`: the commands (of a group), globals, environment and exit codes. */
function printOverview(io: CliIo, words: string[], leadingGlobals: string[]): ExitCode {
  const group = words.find((word) => !word.startsWith('-'))
  const asksHelp = [...words, ...leadingGlobals].some((word) => word === '--help' || word === '-h')
  const inGroup = group ? COMMANDS.filter((command) => command.path[0] === group) : COMMANDS
  if (group && inGroup.length === 0) {
    io.stderr.write(`slipway: unknown command "${group}"; see slipway --help (USAGE)\n`)
    return EXIT.usage
  }
  const width = Math.max(...inGroup.map((command) => `${command.path.join(' ')}${command.args ? ` ${command.args}` : ''}`.length))
  const commandLines = inGroup.map((command) => `  ${`${command.path.join(' ')}${command.args ? ` ${command.args}` : ''}`.padEnd(width)}  ${command.summary}`)
  const lines = group
    ? [`usage: slipway ${group} <command> [options]`, '', 'commands:', ...commandLines, '', `slipway ${group} <command> --help shows its options.`]
    : [
        'usage: slipway <command> [options]',
        '',
        'Slipway: the engine (serve, migrate, lab) and a client of its admin API.',
        '',
        'commands:',
        ...commandLines,
        '',
        'global options:',
        ...optionLines(GLOBAL_OPTIONS),
        '',
        'environment:',
        `  SLIPWAY_URL              the engine's URL (default ${DEFAULT_URL})`,
        '  SLIPWAY_TOKEN            the API token (Authorization: Bearer)',
        '  SLIPWAY_REQUEST_TIMEOUT  seconds each request may take (default 30)',
        '  SLIPWAY_CONFIG           the configuration file serve and migrate read (and every SLIPWAY_* setting)',
        '',
        'exit codes:',
        ...EXIT_CODE_HELP.map(([code, meaning]) => `  ${String(code).padStart(3)}  ${meaning}`),
        '',
        'Errors go to stderr as "slipway: <message> (<CODE>)". slipway <command> --help shows its options.',
      ]
  const text = `${lines.join('\n')}\n`
  if (asksHelp) {
    io.stdout.write(text)
    return EXIT.ok
  }
  const named = words.filter((word) => !word.startsWith('-'))
  if (named.length > (group ? 1 : 0)) {
    io.stderr.write(`slipway: unknown command "${named.join(' ')}"; see slipway ${group ? `${group} ` : ''}--help (USAGE)\n`)
  } else {
    // No command given: what there is, on stderr (stdout stays clean for scripts), as a usage error.
    io.stderr.write(text)
  }
  return EXIT.usage
}
