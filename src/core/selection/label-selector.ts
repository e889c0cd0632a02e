import { invalid } from '../errors.ts'

/**
 * Kubernetes label selectors in their string form (`region=eu,tier!=test`, `env in (prod,staging)`,
 * `!legacy`, `gpu`), parsed and matched with the semantics of apimachinery's `labels.Parse`: a
 * comma means AND, `!=` and `notin` also match objects without the key, `in` and `=` need it, and the
 * empty selector matches everything. Used wherever an operator targets a set of machines or clusters.
 */
export type SelectorOperator = 'in' | 'notin' | 'exists' | 'doesnotexist' | 'gt' | 'lt'

export interface Requirement {
  key: string
  operator: SelectorOperator
  values: string[]
}

export interface LabelSelector {
  /** The selector as written, normalised (requirements sorted by key, as Kubernetes prints them). */
  readonly text: string
  readonly requirements: readonly Requirement[]
  matches(labels: Readonly<Record<string, string>>): boolean
}

// A qualified name: an optional DNS-subdomain prefix and "/", then a name of up to 63 characters.
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/
const INTEGER = /^-?[0-9]+$/
const MAX_SELECTOR_LENGTH = 4096

type Token = { kind: 'word' | 'op' | 'open' | 'close' | 'comma' | 'end'; text: string; at: number }

const OPERATOR_CHARACTERS = new Set(['=', '!', '<', '>'])

function tokenize(input: string): Token[] {
  const tokens: Token[] = []
  let index = 0
  while (index < input.length) {
    const character = input[index]!
    if (/\s/.test(character)) {
      index++
    } else if (character === '(' || character === ')' || character === ',') {
      tokens.push({ kind: character === '(' ? 'open' : character === ')' ? 'close' : 'comma', text: character, at: index })
      index++
    } else if (OPERATOR_CHARACTERS.has(character)) {
      const two = input.slice(index, index + 2)
      const text = two === '==' || two === '!=' ? two : character
      tokens.push({ kind: 'op', text, at: index })
      index += text.length
    } else {
      const start = index
      while (index < input.length && !/[\s(),=!<>]/.test(input[index]!)) index++
      tokens.push({ kind: 'word', text: input.slice(start, index), at: start })
    }
  }
  tokens.push({ kind: 'end', text: '', at: input.length })
  return tokens
}

function fail(input: string, at: number, problem: string): never {
  throw invalid('INVALID_SELECTOR', `label selector "${input}": ${problem} at position ${at + 1} (e.g. "region=eu,tier!=test", "env in (prod,staging)", "!legacy")`, { selector: input })
}

function checkKey(input: string, token: Token): string {
  const key = token.text
  const slash = key.indexOf('/')
  const [prefix, name] = slash === -1 ? [undefined, key] : [key.slice(0, slash), key.slice(slash + 1)]
  if (!NAME.test(name)) fail(input, token.at, `"${key}" is not a label key (a name of up to 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit)`)
  if (prefix !== undefined && (prefix.length > 253 || !PREFIX.test(prefix))) fail(input, token.at, `the prefix of "${key}" is not a DNS subdomain`)
  return key
}

function checkValue(input: string, token: Token): string {
  if (!VALUE.test(token.text)) fail(input, token.at, `"${token.text}" is not a label value (up to 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit)`)
  return token.text
}

/** Parses a selector; throws 400 INVALID_SELECTOR with the position of the first problem. */
export function parseLabelSelector(input: string): LabelSelector {
  if (input.length > MAX_SELECTOR_LENGTH) throw invalid('INVALID_SELECTOR', `label selector is ${input.length} characters long; at most ${MAX_SELECTOR_LENGTH}`)
  const tokens = tokenize(input)
  let position = 0
  const peek = () => tokens[position]!
  const next = () => tokens[position++]!
  const requirements: Requirement[] = []
  if (peek().kind === 'end') return selectorOf([])
  for (;;) {
    let token = next()
    if (token.kind === 'op' && token.text === '!') {
      const key = next()
      if (key.kind !== 'word') fail(input, key.at, 'a label key must follow "!"')
      requirements.push({ key: checkKey(input, key), operator: 'doesnotexist', values: [] })
    } else if (token.kind === 'word') {
      const key = checkKey(input, token)
      token = peek()
      if (token.kind === 'comma' || token.kind === 'end') {
        requirements.push({ key, operator: 'exists', values: [] })
      } else if (token.kind === 'op') {
        next()
        const value = peek().kind === 'word' ? next() : { kind: 'word' as const, text: '', at: token.at + token.text.length }
        if (token.text === '<' || token.text === '>') {
          if (!INTEGER.test(value.text)) fail(input, value.at, `"${token.text}" needs an integer value, not "${value.text}"`)
          requirements.push({ key, operator: token.text === '>' ? 'gt' : 'lt', values: [value.text] })
        } else if (token.text === '!') {
          fail(input, token.at, 'unexpected "!" (use "!=" or "!key")')
        } else {
          requirements.push({ key, operator: token.text === '!=' ? 'notin' : 'in', values: [checkValue(input, value)] })
        }
      } else if (token.kind === 'word' && (token.text === 'in' || token.text === 'notin')) {
        next()
        if (next().kind !== 'open') fail(input, tokens[position - 1]!.at, `"${token.text}" must be followed by "(values)"`)
        const values: string[] = []
        for (;;) {
          const value = peek().kind === 'word' ? next() : { kind: 'word' as const, text: '', at: peek().at }
          values.push(checkValue(input, value))
          const separator = next()
          if (separator.kind === 'close') break
          if (separator.kind !== 'comma') fail(input, separator.at, 'expected "," or ")" in a value list')
        }
        requirements.push({ key, operator: token.text, values: [...new Set(values)].sort() })
      } else {
        fail(input, token.at, `expected "=", "==", "!=", "in", "notin", "<", ">" or "," after "${key}"`)
      }
    } else {
      fail(input, token.at, token.kind === 'end' ? 'a requirement is missing' : `unexpected "${token.text}"`)
    }
    const separator = next()
    if (separator.kind === 'end') break
    if (separator.kind !== 'comma') fail(input, separator.at, `expected "," between requirements, found "${separator.text}"`)
  }
  return selectorOf(requirements)
}

function matchesRequirement(requirement: Requirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, requirement.key)
  const value = has ? labels[requirement.key]! : undefined
  switch (requirement.operator) {
    case 'exists':
      return has
    case 'doesnotexist':
      return !has
    case 'in':
      return has && requirement.values.includes(value!)
    case 'notin':
      return !has || !requirement.values.includes(value!)
    case 'gt':
    case 'lt': {
      if (!has || !INTEGER.test(value!)) return false
      const [actual, bound] = [Number(value), Number(requirement.values[0])]
      return requirement.operator === 'gt' ? actual > bound : actual < bound
    }
  }
}

function requirementText({ key, operator, values }: Requirement): string {
  switch (operator) {
    case 'exists':
      return key
    case 'doesnotexist':
      return `!${key}`
    case 'gt':
      return `${key}>${values[0]}`
    case 'lt':
      return `${key}<${values[0]}`
    case 'in':
      return values.length === 1 ? `${key}=${values[0]}` : `${key} in (${values.join(',')})`
    case 'notin':
      return values.length === 1 ? `${key}!=${values[0]}` : `${key} notin (${values.join(',')})`
  }
}

function selectorOf(requirements: Requirement[]): LabelSelector {
  const sorted = [...requirements].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  return {
    text: sorted.map(requirementText).join(','),
    requirements: sorted,
    matches: (labels) => sorted.every((requirement) => matchesRequirement(requirement, labels)),
  }
}
