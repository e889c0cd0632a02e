import Handlebars from 'handlebars'
import { renderEnvFile } from './env-file.ts'
import { misconfigured, SlipwayError } from '../errors.ts'

/** Templates live in three namespaces, mirroring the folders they are loaded from. */
export const TEMPLATE_KINDS = ['ignition', 'generic', 'ipxe'] as const
export type TemplateKind = (typeof TEMPLATE_KINDS)[number]

export interface Template {
  kind: TemplateKind
  id: string
  body: string
}

export type RenderContext = Record<string, unknown>
export type CompiledTemplate = (context: RenderContext) => string

/** `kind/id`, the name a person sees in errors and the key templates are looked up by. */
export const templateRef = (kind: TemplateKind, id: string) => `${kind}/${id}`

// One isolated environment so that helpers registered here never leak into other handlebars users.
const handlebars = Handlebars.create()
// Values spliced into JSON must be JSON-encoded, or a quote in metadata breaks the whole config.
handlebars.registerHelper('json', definedArgument('json', (value) => JSON.stringify(value)))
// Ignition file contents inline as `data:` URLs (RFC 2397), percent-encoded as Ignition expects.
handlebars.registerHelper('dataUrl', definedArgument('dataUrl', (value) => `data:,${encodeURIComponent(String(value))}`))

// `(append list item)`: the list with one more item, unless the item is undefined (e.g. the engine's
// SSH key added to the metadata's keys only for machines that get lifecycle settings).
handlebars.registerHelper('append', (list: unknown, item: unknown) => {
  if (!Array.isArray(list)) throw new Error('the first argument of (append ...) must be a list')
  return item === undefined || item === null ? list : [...list, item]
})
// A value spliced into a longer, already percent-encoded `data:` URL.
handlebars.registerHelper('uriComponent', definedArgument('uriComponent', (value) => encodeURIComponent(String(value))))
// `(envFile KEY=value ...)`: an env file (sorted KEY=value lines) for systemd EnvironmentFile= or a script.
handlebars.registerHelper('envFile', (options: Handlebars.HelperOptions & { loc?: { start: { line: number; column: number } } }) => {
  for (const [key, value] of Object.entries(options.hash as Record<string, unknown>)) {
    if (value === undefined) {
      const at = options.loc ? ` - ${options.loc.start.line}:${options.loc.start.column}` : ''
      throw new Error(`{{envFile ...}}: ${key} is not defined${at}`)
    }
  }
  return renderEnvFile(options.hash as RenderContext)
})

/** Strict mode does not cover helper arguments: a missing one must fail like a missing variable. */
function definedArgument(helper: string, format: (value: unknown) => string) {
  return (value: unknown, options: Handlebars.HelperOptions & { loc?: { start: { line: number; column: number } } }) => {
    if (value === undefined) {
      const at = options?.loc ? ` - ${options.loc.start.line}:${options.loc.start.column}` : ''
      throw new Error(`the argument of {{${helper} ...}} is not defined${at}`)
    }
    return format(value)
  }
}

/**
 * Compiles with `noEscape` (iPXE and JSON are not HTML: escaping would turn `&` in a URL into `&amp;`)
 * and `strict` (a misspelt variable fails loudly instead of rendering an empty kernel argument).
 * `{{#if x}}` and `{{#each x}}` still accept a missing `x`, so optional values stay expressible.
 */
export function compileTemplate(name: string, body: string): CompiledTemplate {
  let compiled: HandlebarsTemplateDelegate
  try {
    compiled = handlebars.compile(body, { noEscape: true, strict: true })
  } catch (error) {
    throw renderFailure(name, error)
  }
  return (context) => {
    try {
      return compiled(context)
    } catch (error) {
      // A value the context could not give yet (a getter answering "try again") is not a template error.
      if (error instanceof SlipwayError) throw error
      throw renderFailure(name, error)
    }
  }
}

/** Checks a template's syntax when it is saved, so that a typo is a 400 and not a broken boot. */
export function checkTemplateSyntax(name: string, body: string): void {
  try {
    handlebars.precompile(body, { noEscape: true, strict: true })
  } catch (error) {
    throw renderFailure(name, error)
  }
}

function renderFailure(name: string, error: unknown) {
  const message = error instanceof Error ? error.message : String(error)
  // Handlebars reports "\"x\" not defined in [object] - 3:14"; keep its position, say it plainly.
  const position = / - (\d+):(\d+)$/.exec(message)
  const reason = message.replace(/ - \d+:\d+$/, '').replace(/ in (undefined|\[object Object\])$/, '')
  return misconfigured('TEMPLATE_RENDER_FAILED', `template ${name}: ${reason}${position ? ` (line ${position[1]}, column ${position[2]})` : ''}`, {
    template: name,
    ...(position ? { line: Number(position[1]), column: Number(position[2]) } : {}),
    reason,
  })
}
