import { createHash } from 'node:crypto'
import { conflict, invalid, notFound, tooLarge } from '../errors.ts'

/** A chart version the engine stores and serves as a Helm repository. */
export interface StoredChart {
  name: string
  version: string
  appVersion: string | null
  description: string | null
  /** Chart.yaml's apiVersion: v1 (Helm 2 charts) or v2. */
  apiVersion: string
  /** sha256 of the archive, as index.yaml's `digest`. */
  digest: string
  sizeBytes: number
  source: 'upload' | 'repository'
  /** The Helm repository it was pulled from. */
  sourceUrl: string | null
  createdAt: string
}

export interface ChartMetadata {
  name: string
  version: string
  appVersion: string | null
  description: string | null
  apiVersion: string
}

export interface ChartRepository {
  list(): Promise<StoredChart[]>
  find(name: string, version: string): Promise<StoredChart | undefined>
  archive(name: string, version: string): Promise<Buffer | undefined>
  insert(chart: StoredChart, archive: Buffer): Promise<void>
  delete(name: string, version: string): Promise<void>
}

/** What the helm binary does for charts (adapters/helm implements it). */
export interface ChartTool {
  /** `helm show chart`: 400 INVALID_CHART with helm's message when the archive is not a chart. */
  inspect(archive: Buffer): Promise<ChartMetadata>
  /** `helm pull --repo`: 400 CHART_PULL_FAILED with helm's message. */
  pull(repositoryUrl: string, chart: string, version: string | undefined): Promise<Buffer>
}

/** Semantic-version order (major.minor.patch, a pre-release sorts before its release), for "the newest version". */
export function compareVersions(a: string, b: string): number {
  const parse = (version: string) => {
    const [core = '', pre] = version.replace(/^v/, '').split(/-(.*)/s)
    return { numbers: core.split('.').map((part) => Number.parseInt(part, 10) || 0), pre: pre ?? null }
  }
  const [left, right] = [parse(a), parse(b)]
  for (let index = 0; index < 3; index++) {
    const difference = (left.numbers[index] ?? 0) - (right.numbers[index] ?? 0)
    if (difference !== 0) return difference
  }
  if (left.pre === right.pre) return 0
  if (left.pre === null) return 1
  if (right.pre === null) return -1
  return left.pre < right.pre ? -1 : 1
}

/**
 * The engine's chart repository: charts uploaded or pulled from a Helm repository are checked by
 * helm itself, stored with their digest, and served back as a Helm repository. A name and version
 * is immutable, as in every Helm repository: the same bytes again are accepted, different bytes 409.
 */
export class ChartService {
  constructor(
    private readonly repository: ChartRepository,
    private readonly tool: ChartTool,
    private readonly maxBytes: number,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  list(): Promise<StoredChart[]> {
    return this.repository.list()
  }

  /** A stored chart: the given version, or the newest one. */
  async find(name: string, version?: string): Promise<StoredChart> {
    const versions = (await this.repository.list()).filter((chart) => chart.name === name)
    const chart = version === undefined ? versions.sort((a, b) => compareVersions(b.version, a.version))[0] : versions.find((candidate) => candidate.version === version)
    if (!chart) {
      const known = versions.map((candidate) => candidate.version).join(', ')
      throw notFound('CHART_NOT_FOUND', `chart "${name}"${version ? ` version ${version}` : ''} is not in the engine's repository${known ? ` (versions: ${known})` : ''}; upload it (POST /api/v1/charts) or pull it from a Helm repository`)
    }
    return chart
  }

  async archive(name: string, version: string): Promise<Buffer> {
    const archive = await this.repository.archive(name, version)
    if (!archive) throw notFound('CHART_NOT_FOUND', `chart ${name}-${version} is not in the engine's repository`)
    return archive
  }

  async upload(archive: Buffer): Promise<StoredChart> {
    return this.store(archive, 'upload', null)
  }

  async pull(repositoryUrl: string, chart: string, version?: string): Promise<StoredChart> {
    let url: URL
    try {
      url = new URL(repositoryUrl)
    } catch {
      throw invalid('INVALID_REPOSITORY_URL', `repository "${repositoryUrl}" is not a URL (e.g. https://charts.example.com)`)
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('INVALID_REPOSITORY_URL', `repository "${repositoryUrl}": only http(s) Helm repositories are supported`)
    return this.store(await this.tool.pull(repositoryUrl, chart, version), 'repository', repositoryUrl)
  }

  async remove(name: string, version: string): Promise<void> {
    await this.archive(name, version)
    await this.repository.delete(name, version)
  }

  private async store(archive: Buffer, source: StoredChart['source'], sourceUrl: string | null): Promise<StoredChart> {
    if (archive.length > this.maxBytes) throw tooLarge('CHART_TOO_LARGE', `the chart archive is ${archive.length} bytes; at most ${this.maxBytes} (releases.maxChartBytes)`)
    if (archive.length < 2 || archive[0] !== 0x1f || archive[1] !== 0x8b) throw invalid('INVALID_CHART', 'the chart archive is not gzip-compressed (expected a .tgz made by `helm package`)')
    const metadata = await this.tool.inspect(archive)
    const digest = createHash('sha256').update(archive).digest('hex')
    const existing = await this.repository.find(metadata.name, metadata.version)
    if (existing) {
      if (existing.digest === digest) return existing
      throw conflict('CHART_EXISTS', `chart ${metadata.name} version ${metadata.version} is already stored with other contents (digest ${existing.digest.slice(0, 12)}...); chart versions are immutable: bump the version`)
    }
    const chart: StoredChart = { ...metadata, digest, sizeBytes: archive.length, source, sourceUrl, createdAt: this.clock().toISOString() }
    await this.repository.insert(chart, archive)
    return chart
  }
}
