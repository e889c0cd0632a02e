/**
 * The Containerfile, checked where no container engine runs (these machines have the docker client
 * but no daemon, and no podman or buildah): every path it copies from the repository exists, the
 * engine's own files are all copied (what `npm start` needs at run time), it runs the engine's serve
 * command as a user that is not root, and stops it with the signal the engine stops cleanly on.
 */
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { REPO_ROOT } from '../helpers/engine.ts'

const lines = readFileSync(path.join(REPO_ROOT, 'Containerfile'), 'utf8')
  .split('\n')
  .filter((line) => line.trim() && !line.trim().startsWith('#'))

t.test('the Containerfile copies what exists and what the engine needs, and runs it unprivileged', async (t) => {
  const copied = lines.filter((line) => line.startsWith('COPY ') && !line.includes('--from=')).flatMap((line) => line.split(/\s+/).slice(1, -1))
  for (const source of copied) t.ok(existsSync(path.join(REPO_ROOT, source)), `${source} exists in the repository`)
  for (const needed of ['package.json', 'package-lock.json', 'bin', 'src', 'migrations', 'profiles', 'ignition', 'ipxe', 'generic', 'tsconfig.json']) t.ok(copied.includes(needed), `${needed} is in the image`)
  t.ok(lines.some((line) => line === 'RUN npm ci --omit=dev --no-audit --no-fund'), 'dependencies as the lock file pins them, without dev tools')
  const users = lines.filter((line) => line.startsWith('USER '))
  t.same(users, ['USER node'], 'not root')
  t.same(lines.filter((line) => line.startsWith('CMD ')), ['CMD ["node", "bin/slipway.js", "serve"]'], "the engine's serve command")
  t.ok(existsSync(path.join(REPO_ROOT, 'bin', 'slipway.js')))
  t.same(lines.filter((line) => line.startsWith('STOPSIGNAL ')), ['STOPSIGNAL SIGTERM'])
  const bases = lines.filter((line) => line.startsWith('FROM ')).map((line) => line.split(/\s+/)[1])
  const declared = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node
  for (const base of bases) t.match(base, new RegExp(`/node:${/\d+/.exec(declared)![0]}-`), `${base}: the Node line package.json declares (${declared})`)
})
