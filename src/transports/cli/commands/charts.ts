import type { ChartView } from '../api-types.ts'
import { EXIT, usageError } from '../cli-error.ts'
import { positional, stringValue, type CommandSpec } from '../command.ts'
import { readInputFile } from '../documents.ts'
import { formatAge, formatBytes } from '../table.ts'

export const chartCommands: CommandSpec[] = [
  {
    path: ['charts', 'list'],
    summary: "every chart version in the engine's repository",
    async run(context) {
      const answer = await (await context.api()).call<ChartView[]>('GET', '/api/v1/charts')
      if (context.out.json) {
        context.out.printJson(answer.raw)
        return EXIT.ok
      }
      context.out.table(
        [{ header: 'NAME' }, { header: 'VERSION' }, { header: 'APP VERSION' }, { header: 'SIZE', align: 'right' }, { header: 'SOURCE' }, { header: 'AGE', align: 'right' }, { header: 'DESCRIPTION', shrink: true }],
        answer.data.map((chart) => [chart.name, chart.version, chart.app_version, formatBytes(chart.size_bytes), chart.source, formatAge(chart.created_at), chart.description]),
        'no charts',
      )
      return EXIT.ok
    },
  },
  {
    path: ['charts', 'upload'],
    summary: 'store a chart: a packaged .tgz (helm package), or pull one from a Helm repository',
    args: '[file.tgz]',
    arity: [0, 1],
    options: {
      repository: { type: 'string', value: 'URL', help: 'pull from this Helm repository instead of uploading a file' },
      chart: { type: 'string', value: 'NAME', help: 'the chart to pull (with --repository)' },
      version: { type: 'string', value: 'VERSION', help: 'the version to pull (default: the newest)' },
    },
    async run(context) {
      const repository = stringValue(context, 'repository')
      const chart = stringValue(context, 'chart')
      const version = stringValue(context, 'version')
      let request
      if (repository !== undefined) {
        if (context.positionals.length > 0) throw usageError('either a file or --repository, not both')
        if (chart === undefined) throw usageError('--repository needs --chart NAME')
        request = { json: { repository, chart, ...(version !== undefined ? { version } : {}) } }
      } else {
        if (context.positionals.length === 0) throw usageError('which chart? a packaged file (slipway charts upload web-1.0.0.tgz), or --repository URL --chart NAME')
        if (chart !== undefined || version !== undefined) throw usageError('--chart and --version go with --repository; a file says its own name and version')
        const bytes = await readInputFile(positional(context, 0), context.cwd, 'chart archive')
        if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw usageError(`"${positional(context, 0)}" is not a gzip archive; package the chart folder first (helm package DIR)`)
        request = { bytes, contentType: 'application/gzip' }
      }
      const answer = await (await context.api()).call<ChartView>('POST', '/api/v1/charts', request)
      if (context.out.json) context.out.printJson(answer.raw)
      else context.out.print(`stored chart ${answer.data.name} ${answer.data.version} (${formatBytes(answer.data.size_bytes)}, sha256 ${answer.data.digest})`)
      return EXIT.ok
    },
  },
]
