import { formatFields, formatTable, type Column } from './table.ts'

/** A stream the CLI writes to; process.stdout and process.stderr are ones. */
export interface OutputStream {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
}

/** Where a command's results go: stdout for results, stderr for errors and (with --json) progress. */
export class Output {
  constructor(
    readonly stdout: OutputStream,
    readonly stderr: OutputStream,
    /** --json: results are the API's JSON, nothing else goes to stdout. */
    readonly json: boolean,
  ) {}

  /** A terminal's width, to fit tables to; undefined when piped (nothing is cut). */
  get width(): number | undefined {
    return this.stdout.isTTY ? (this.stdout.columns ?? 80) : undefined
  }

  print(text: string): void {
    this.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  }

  /** The API's JSON answer as it came, so that scripts see exactly the API's document. */
  printJson(raw: string): void {
    this.print(raw.length === 0 ? '{}' : raw)
  }

  table(columns: Column[], rows: unknown[][], empty?: string): void {
    if (rows.length === 0 && empty !== undefined) this.print(empty)
    else this.stdout.write(formatTable(columns, rows, this.width))
  }

  fields(fields: [string, unknown][]): void {
    this.stdout.write(formatFields(fields))
  }

  /** A titled section after the first, separated by a blank line (show commands). */
  section(title: string): void {
    this.stdout.write(`\n${title}\n`)
  }

  /** The stream progress goes to: stdout, except with --json where stdout carries only the document. */
  get progressStream(): OutputStream {
    return this.json ? this.stderr : this.stdout
  }
}
