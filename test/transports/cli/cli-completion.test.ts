/**
 * `slipway completion bash` loaded into a real bash, its function asked as bash asks it on Tab
 * (COMP_WORDS / COMP_CWORD), for command words, options, and past an option's value and a positional.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { slipway } from './run-slipway.ts'

/** What bash would offer for the words typed so far (the last one being completed; '' after a space). */
async function offered(script: string, typed: string[]): Promise<string[]> {
  const words = typed.map((word) => `'${word}'`).join(' ')
  const { stdout } = await promisify(execFile)('bash', ['--norc', '-c', `source /dev/stdin <<'SCRIPT'\n${script}\nSCRIPT\nCOMP_WORDS=(${words}); COMP_CWORD=${typed.length - 1}; _slipway; printf '%s\\n' "\${COMPREPLY[@]}"`])
  return stdout.split('\n').filter(Boolean).sort()
}

t.test('bash completion from the CLI itself', async (t) => {
  const bash = await slipway(['completion', 'bash'])
  t.equal(bash.code, 0, bash.stderr)
  t.match(bash.stdout, /\ncomplete -F _slipway slipway\n$/, 'it registers itself for slipway')
  const script = bash.stdout
  t.same(await offered(script, ['slipway', 'clu']), ['clusters'])
  t.same(await offered(script, ['slipway', 'clusters', 'r']), ['register', 'renew-certificates'])
  t.same(await offered(script, ['slipway', 'releases', 'install', '--sel']), ['--selector'])
  t.same(await offered(script, ['slipway', '--url', 'http://engine:8080', 'rollouts', 'wa']), ['watch'], "an option's value is not a command word")
  t.ok((await offered(script, ['slipway', 'clusters', 'show', 'prod', '--'])).includes('--live'), "past a positional, the command's options")
  t.same(await offered(script, ['slipway', 'assets', 'mirror', '--kubernetes-b']), ['--kubernetes-binaries'], 'a new option is offered as soon as it exists')
  t.same(await offered(script, ['slipway', '--vers']), ['--version'])
  t.same(await offered(script, ['slipway', 'frobnicate', '']), [], 'nothing for what is not a command')

  const zsh = await slipway(['completion', 'zsh'])
  t.equal(zsh.code, 0)
  t.match(zsh.stdout, /^# zsh completion[\s\S]*autoload -U \+X bashcompinit && bashcompinit\n[\s\S]*complete -F _slipway slipway/, 'zsh loads the same function through bashcompinit')
  const fish = await slipway(['completion', 'fish'])
  t.equal(fish.code, 2, 'another shell is a usage error')
  t.match(fish.stderr, /bash or zsh, not "fish"/)
})
