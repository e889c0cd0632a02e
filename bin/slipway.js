#!/usr/bin/env node
// The slipway command. The package runs from its TypeScript sources: tsx compiles them on load
// (cached), so the bin works right after `npm install`, with no build.
import { createInterface } from 'node:readline/promises'
import { register } from 'tsx/esm/api'

register()
const { runCli } = await import('../src/transports/cli/main.ts')
const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  interactive: Boolean(process.stdin.isTTY),
  async ask(question) {
    const prompt = createInterface({ input: process.stdin, output: process.stderr })
    try {
      return await prompt.question(question)
    } finally {
      prompt.close()
    }
  },
})
// Not process.exit(): that could cut piped output short. 'running' (serve, lab): the process lives on.
if (code !== 'running') process.exitCode = code
