/**
 * Aligned text tables for people. On a terminal the table is fitted to its width by shortening the
 * widest shrinkable columns (with "…"); piped output keeps every character, so grep still finds it.
 */

export interface Column {
  header: string
  align?: 'left' | 'right'
  /** May be cut to fit the width (free text: labels, errors, selectors); identifiers never are. */
  shrink?: boolean
}

const GAP = '  '
const ELLIPSIS = '…'
/** A shrinkable column is never cut below this (or its header, if longer). */
const MIN_SHRUNK = 8

/**
 * Columns a terminal shows two cells wide (CJK, full-width forms, most emoji); enough to keep a
 * table aligned with names in those scripts. Control characters are replaced before measuring.
 */
function cellWidth(codePoint: number): number {
  if (codePoint === 0x200b || (codePoint >= 0x300 && codePoint <= 0x36f)) return 0
  if (
    (codePoint >= 0x1100 && codePoint <= 0x115f) ||
    (codePoint >= 0x2e80 && codePoint <= 0xa4cf) ||
    (codePoint >= 0xac00 && codePoint <= 0xd7a3) ||
    (codePoint >= 0xf900 && codePoint <= 0xfaff) ||
    (codePoint >= 0xfe30 && codePoint <= 0xfe4f) ||
    (codePoint >= 0xff00 && codePoint <= 0xff60) ||
    (codePoint >= 0xffe0 && codePoint <= 0xffe6) ||
    (codePoint >= 0x1f300 && codePoint <= 0x1faff) ||
    (codePoint >= 0x20000 && codePoint <= 0x3fffd)
  ) {
    return 2
  }
  return 1
}

export function displayWidth(text: string): number {
  let width = 0
  for (const char of text) width += cellWidth(char.codePointAt(0)!)
  return width
}

/** A cell's text on one line: a newline or tab from the API would break the alignment (and a terminal escape is not ours to send). */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '-'
  const text = typeof value === 'string' ? value : String(value)
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
}

/** Cuts `text` to at most `width` cells, ending with "…" when it was cut. */
export function truncate(text: string, width: number): string {
  if (displayWidth(text) <= width) return text
  let kept = ''
  let used = 0
  for (const char of text) {
    const cells = cellWidth(char.codePointAt(0)!)
    if (used + cells > width - 1) break
    kept += char
    used += cells
  }
  return kept + ELLIPSIS
}

function pad(text: string, width: number, align: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(text)))
  return align === 'right' ? fill + text : text + fill
}

/**
 * Renders rows under headers, each column as wide as its widest cell. With `maxWidth` (a terminal's
 * columns), shrinkable columns are narrowed, widest first, until the table fits or none can shrink.
 */
export function formatTable(columns: Column[], rows: unknown[][], maxWidth?: number): string {
  const cells = rows.map((row) => columns.map((_, index) => cellText(row[index])))
  const widths = columns.map((column, index) => Math.max(displayWidth(column.header), ...cells.map((row) => displayWidth(row[index]!))))
  if (maxWidth !== undefined) {
    const total = () => widths.reduce((sum, width) => sum + width, 0) + GAP.length * (columns.length - 1)
    const floor = columns.map((column) => Math.max(displayWidth(column.header), MIN_SHRUNK))
    while (total() > maxWidth) {
      let widest = -1
      for (let index = 0; index < columns.length; index++) {
        if (columns[index]!.shrink && widths[index]! > floor[index]! && (widest === -1 || widths[index]! > widths[widest]!)) widest = index
      }
      if (widest === -1) break
      widths[widest] = Math.max(floor[widest]!, widths[widest]! - (total() - maxWidth))
    }
  }
  const line = (values: string[]) =>
    values
      .map((value, index) => pad(truncate(value, widths[index]!), widths[index]!, columns[index]!.align ?? 'left'))
      .join(GAP)
      .trimEnd()
  return [line(columns.map((column) => column.header)), ...cells.map(line)].join('\n') + '\n'
}

/** `key: value` lines with the values aligned, for one object (`show` commands). */
export function formatFields(fields: [string, unknown][]): string {
  const width = Math.max(0, ...fields.map(([key]) => displayWidth(key) + 1))
  return fields.map(([key, value]) => `${pad(`${key}:`, width, 'left')}  ${cellText(value)}`.trimEnd()).join('\n') + '\n'
}

/** `k=v,k2=v2`, sorted by key, or "-" for none. */
export function formatLabels(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => a.localeCompare(b))
  return entries.length === 0 ? '-' : entries.map(([key, value]) => `${key}=${value}`).join(',')
}

/** How long ago an ISO time was, as kubectl prints ages: 45s, 12m, 3h, 5d. */
export function formatAge(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-'
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (!Number.isFinite(seconds)) return '-'
  if (seconds < 120) return `${seconds}s`
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86_400)}d`
}

/** Bytes in binary units, one decimal: 512 B, 1.5 KiB, 3.2 GiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`
}
