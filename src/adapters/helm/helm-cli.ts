import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parse as parseYaml, parseAllDocuments } from 'yaml'
import { invalid } from '../../core/errors.ts'
import type { ChartMetadata, ChartTool } from '../../core/releases/chart-service.ts'
import type { KubeObject, ReleaseRenderer, RenderInput, Rendered } from '../../core/releases/ports.ts'
import { ConcurrencyLimiter } from '../../lib/concurrency-limiter.ts'

export interface HelmCliOptions {
  /** Finds (or extracts) the helm binary once, on first use: the engine starts without helm. */
  locate: () => Promise<string>
  /** helm's cache, config and data homes and the scratch files live here, never in the user's home. */
  workDir: string
  /** helm processes at once (a render is CPU-bound). */
  concurrency?: number
  timeoutMs?: number
}

const SEMVER = /^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/

/** helm's own message, without its "Error: " prefix and the usage text some commands add. */
function helmMessage(stderr: string): string {
  const text = stderr.replace(/\r/g, '').trim()
  const error = text.split('\n').filter((line) => line.startsWith('Error: ') || !/^(Usage:|  helm |Flags:|Global Flags:)/.test(line))
  return (error.join('\n').replace(/^Error: /, '') || text).slice(0, 4000)
}

/**
 * The real helm, as a child process: `helm show chart` to check and read an archive, `helm pull` to
 * fetch from a Helm repository, `helm template` to render (Go templates and Sprig cannot be rendered
 * faithfully in JavaScript). Each call works in its own scratch folder. The rendered objects are
 * applied to clusters by release-applier.ts beside it (server-side apply, Helm's release record).
 */
export class HelmCli implements ChartTool, ReleaseRenderer {
  private binary: Promise<string> | undefined
  private readonly processes: ConcurrencyLimiter

  constructor(private readonly options: HelmCliOptions) {
    this.processes = new ConcurrencyLimiter(options.concurrency ?? 4)
  }

  async inspect(archive: Buffer): Promise<ChartMetadata> {
    return this.withScratch(async (dir) => {
      const file = path.join(dir, 'chart.tgz')
      await writeFile(file, archive)
      const { stdout } = await this.helm(['show', 'chart', file], 'INVALID_CHART', 'the archive is not a chart helm can read')
      const chart = parseYaml(stdout) as Record<string, unknown> | null
      if (!chart || typeof chart.name !== 'string' || typeof chart.version !== 'string') throw invalid('INVALID_CHART', 'Chart.yaml has no name or version')
      const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : value === undefined || value === null ? null : String(value))
      return { name: chart.name, version: chart.version, appVersion: text(chart.appVersion), description: text(chart.description), apiVersion: text(chart.apiVersion) ?? 'v1' }
    })
  }

  async pull(repositoryUrl: string, chart: string, version: string | undefined): Promise<Buffer> {
    return this.withScratch(async (dir) => {
      await this.helm(['pull', chart, '--repo', repositoryUrl, ...(version ? ['--version', version] : []), '--destination', dir], 'CHART_PULL_FAILED', `helm could not pull ${chart} from ${repositoryUrl}`)
      const archive = (await readdir(dir)).find((name) => name.endsWith('.tgz'))
      if (!archive) throw invalid('CHART_PULL_FAILED', `helm pull left no archive for ${chart}`)
      return readFile(path.join(dir, archive))
    })
  }

  async render(input: RenderInput): Promise<Rendered> {
    return this.withScratch(async (dir) => {
      const chartFile = path.join(dir, 'chart.tgz')
      const valuesFile = path.join(dir, 'values.json')
      await writeFile(chartFile, input.archive)
      // JSON is YAML: values go to helm exactly as given.
      await writeFile(valuesFile, JSON.stringify(input.values))
      const kubeVersion = input.kubeVersion && SEMVER.test(input.kubeVersion) ? ['--kube-version', input.kubeVersion] : []
      const { stdout } = await this.helm(
        ['template', input.releaseName, chartFile, '--namespace', input.namespace, '--values', valuesFile, '--include-crds', ...kubeVersion],
        'CHART_RENDER_FAILED',
        `chart ${input.chart.name} ${input.chart.version} does not render`,
      )
      const parsed = parseAllDocuments(stdout)
      const broken = parsed.flatMap((document) => document.errors)[0]
      if (broken) throw invalid('CHART_RENDER_FAILED', `chart ${input.chart.name} ${input.chart.version} rendered YAML that does not parse: ${broken.message.split('\n')[0]}`)
      const documents: unknown[] = parsed.map((document) => document.toJS())
      const objects = documents.filter((document): document is KubeObject => document !== null && typeof document === 'object' && !Array.isArray(document))
      for (const object of objects) {
        const name = (object.metadata as { name?: unknown } | undefined)?.name
        if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string' || typeof name !== 'string') {
          throw invalid('CHART_RENDER_FAILED', `chart ${input.chart.name} ${input.chart.version} rendered an object without apiVersion, kind or metadata.name`)
        }
      }
      return { manifest: stdout, objects, notes: '' }
    })
  }

  private async withScratch<T>(work: (dir: string) => Promise<T>): Promise<T> {
    await mkdir(this.options.workDir, { recursive: true })
    const dir = await mkdtemp(path.join(this.options.workDir, 'call-'))
    try {
      return await work(dir)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }

  /** Runs helm (at most `concurrency` at once); a failure is 400 `code` with helm's own message. */
  private async helm(args: string[], code: string, context: string): Promise<{ stdout: string }> {
    this.binary ??= this.options.locate()
    const binary = await this.binary
    return this.processes.run(() => {
      const homes = path.join(this.options.workDir, 'home')
      const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: homes,
        HELM_CACHE_HOME: path.join(homes, 'cache'),
        HELM_CONFIG_HOME: path.join(homes, 'config'),
        HELM_DATA_HOME: path.join(homes, 'data'),
        // helm must never reach a cluster from here: rendering is offline.
        KUBECONFIG: '/dev/null',
      }
      return new Promise<{ stdout: string }>((resolve, reject) => {
        execFile(binary, args, { env, timeout: this.options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
          if (!error) return resolve({ stdout })
          const timedOut = (error as { killed?: boolean }).killed
          reject(invalid(code, timedOut ? `${context}: helm did not finish in ${(this.options.timeoutMs ?? 60_000) / 1000} s` : `${context}: ${helmMessage(stderr)}`))
        })
      })
    })
  }
}
