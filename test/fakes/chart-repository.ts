import { createHash } from 'node:crypto'
import type { ChartMetadata, ChartRepository, ChartTool, StoredChart } from '../../src/core/releases/chart-service.ts'
import { failing } from './intentional-error.ts'

/** A stored chart as the fakes make one: its archive is a few made-up bytes (no helm reads it). */
export function storedChart(name: string, version: string, createdAt = '2026-11-21T09:00:00.000Z'): { chart: StoredChart; archive: Buffer } {
  const archive = Buffer.from(`${name}-${version}.tgz`)
  const chart: StoredChart = {
    name,
    version,
    appVersion: version,
    description: `${name} for tests`,
    apiVersion: 'v2',
    digest: createHash('sha256').update(archive).digest('hex'),
    sizeBytes: archive.length,
    source: 'upload',
    sourceUrl: null,
    createdAt,
  }
  return { chart, archive }
}

/** The engine's chart repository with the given charts and archives, in memory. */
export class FixedChartRepository implements ChartRepository {
  private readonly charts = new Map<string, { chart: StoredChart; archive: Buffer }>()

  constructor(charts: Array<{ chart: StoredChart; archive: Buffer }> = []) {
    for (const entry of charts) this.charts.set(`${entry.chart.name}@${entry.chart.version}`, { chart: { ...entry.chart }, archive: Buffer.from(entry.archive) })
  }

  async list(): Promise<StoredChart[]> {
    return [...this.charts.values()].map((entry) => ({ ...entry.chart })).sort((a, b) => compare(a.name, b.name) || compare(a.createdAt, b.createdAt))
  }

  async find(name: string, version: string): Promise<StoredChart | undefined> {
    const entry = this.charts.get(`${name}@${version}`)
    return entry && { ...entry.chart }
  }

  async archive(name: string, version: string): Promise<Buffer | undefined> {
    const entry = this.charts.get(`${name}@${version}`)
    return entry && Buffer.from(entry.archive)
  }

  async insert(chart: StoredChart, archive: Buffer): Promise<void> {
    const key = `${chart.name}@${chart.version}`
    if (this.charts.has(key)) throw new Error(`chart ${key} exists (primary key)`)
    this.charts.set(key, { chart: { ...chart }, archive: Buffer.from(archive) })
  }

  async delete(name: string, version: string): Promise<void> {
    this.charts.delete(`${name}@${version}`)
  }
}

/** A chart repository with no chart. */
export class EmptyChartRepository extends FixedChartRepository {
  constructor() {
    super([])
  }
}

/** A chart repository whose every call fails. */
export class BrokenChartRepository implements ChartRepository {
  list(): Promise<StoredChart[]> {
    return failing('ChartRepository.list')
  }
  find(): Promise<StoredChart | undefined> {
    return failing('ChartRepository.find')
  }
  archive(): Promise<Buffer | undefined> {
    return failing('ChartRepository.archive')
  }
  insert(): Promise<void> {
    return failing('ChartRepository.insert')
  }
  delete(): Promise<void> {
    return failing('ChartRepository.delete')
  }
}

/** helm's chart commands with given answers: `inspect` reads every archive as `metadata`, `pull` gives `archive`. */
export class FixedChartTool implements ChartTool {
  constructor(
    private readonly metadata: ChartMetadata,
    private readonly pulled: Buffer = Buffer.alloc(0),
  ) {}

  async inspect(): Promise<ChartMetadata> {
    return { ...this.metadata }
  }

  async pull(): Promise<Buffer> {
    return Buffer.from(this.pulled)
  }
}

/** helm failing every chart command (the executor never needs one: a chart is stored before it is released). */
export class BrokenChartTool implements ChartTool {
  inspect(): Promise<ChartMetadata> {
    return failing('ChartTool.inspect')
  }
  pull(): Promise<Buffer> {
    return failing('ChartTool.pull')
  }
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
