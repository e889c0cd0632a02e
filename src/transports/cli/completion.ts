import type { CommandSpec, OptionSpec } from './command.ts'

/** A shell word, single-quoted. */
const quoted = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`

/**
 * The bash completion of `slipway`, generated from the commands themselves so that it never lags
 * behind them: command words at each level, then the command's options (its own and the global
 * ones). Words after an option that takes a value are that value, not a command word; positionals
 * end the command's path. zsh loads the same function through bashcompinit.
 */
export function bashCompletion(commands: readonly CommandSpec[], globalOptions: Record<string, OptionSpec>): string {
  const flags = (options: Record<string, OptionSpec>) => Object.entries(options).flatMap(([name, option]) => [`--${name}`, ...(option.short ? [`-${option.short}`] : [])])
  const global = flags(globalOptions)
  const next = new Map<string, Set<string>>([['', new Set()]])
  const optionsOf = new Map<string, string[]>()
  const valued = new Set<string>()
  const takesValue = (options: Record<string, OptionSpec>) => {
    for (const [name, option] of Object.entries(options)) {
      if (option.type !== 'string') continue
      valued.add(`--${name}`)
      if (option.short) valued.add(`-${option.short}`)
    }
  }
  takesValue(globalOptions)
  for (const command of commands) {
    for (let depth = 0; depth < command.path.length; depth++) {
      const prefix = command.path.slice(0, depth).join(' ')
      if (!next.has(prefix)) next.set(prefix, new Set())
      next.get(prefix)!.add(command.path[depth]!)
    }
    optionsOf.set(command.path.join(' '), [...flags(command.options ?? {}), ...global])
    takesValue(command.options ?? {})
  }
  const cases: string[] = []
  for (const [prefix, words] of next) {
    const own = optionsOf.get(prefix) ?? []
    const candidates = [...words, ...(prefix === '' ? ['--version', ...global] : own)]
    cases.push(`    ${quoted(prefix)}) words=${quoted(candidates.join(' '))} ;;`)
  }
  for (const [path, options] of optionsOf) if (!next.has(path)) cases.push(`    ${quoted(path)}) words=${quoted(options.join(' '))} ;;`)
  const known = [...new Set([...next.keys(), ...optionsOf.keys()])].filter(Boolean).map(quoted).join('|')
  const commandPaths = [...optionsOf.keys()].map(quoted).join('|')
  return `# bash completion for slipway: source <(slipway completion bash), or save it under
# /etc/bash_completion.d/slipway. Generated from the CLI's own commands.
_slipway() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path='' candidate word words i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    case $word in
      ${[...valued].sort().join('|')}) ((i++)); continue ;;
      -*) continue ;;
    esac
    candidate=\${path:+$path }$word
    case $candidate in
      ${known}) path=$candidate ;;
      *)
        # After a command, a positional; anywhere else, a word that names nothing: offer nothing.
        case $path in ${commandPaths}) ;; *) path='?' ;; esac
        break
        ;;
    esac
  done
  case $path in
${cases.join('\n')}
    *) words='' ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _slipway slipway
`
}

/** The same function for zsh, through its bash completion layer. */
export function zshCompletion(commands: readonly CommandSpec[], globalOptions: Record<string, OptionSpec>): string {
  return `# zsh completion for slipway: source <(slipway completion zsh) in ~/.zshrc.\nautoload -U +X bashcompinit && bashcompinit\n${bashCompletion(commands, globalOptions)}`
}
