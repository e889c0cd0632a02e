import { misconfigured } from '../errors.ts'
import { validateIgnition } from '../ignition/ignition-validation.ts'

/**
 * matchbox serves `.ign`/`.ignition` files as raw Ignition, without templating; Slipway does the
 * same so that a user's existing files load unchanged. Every other ignition template is handlebars
 * producing Ignition JSON.
 */
export function isRawIgnition(templateId: string): boolean {
  return /\.(ign|ignition)$/i.test(templateId)
}

/** Butane/Container Linux Config need a Go translator; say so instead of serving YAML to a machine. */
export function isButane(templateId: string): boolean {
  return /\.(ya?ml|bu)$/i.test(templateId)
}

/** A config ready to serve: canonical JSON text and the spec version it declares. */
export interface RenderedIgnition {
  body: string
  version: string
}

/**
 * Parses and validates what a template produced and returns the canonical (compact) JSON that a
 * machine receives. Anything short of a valid config is a configuration error with a report naming
 * the template and every failing path: Ignition retries a 5xx, while a broken config bricks a boot.
 */
export function finalizeIgnition(templateName: string, text: string): RenderedIgnition {
  let config: unknown
  try {
    config = JSON.parse(text)
  } catch (error) {
    throw misconfigured('IGNITION_NOT_JSON', `template ${templateName} did not produce JSON: ${(error as Error).message}`, {
      template: templateName,
      reason: (error as Error).message,
    })
  }
  const report = validateIgnition(config)
  if (!report.ok) {
    const first = report.errors[0]!
    throw misconfigured(
      'IGNITION_INVALID',
      `template ${templateName} produced an invalid Ignition config: ${first.path || '(root)'}: ${first.message}` +
        (report.errors.length > 1 ? ` (and ${report.errors.length - 1} more)` : ''),
      { template: templateName, errors: report.errors, warnings: report.warnings },
    )
  }
  return { body: JSON.stringify(config), version: report.version! }
}
