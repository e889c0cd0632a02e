/**
 * Header rules of a forwarding proxy (RFC 9110 §7.6): hop-by-hop fields stay on their hop, the
 * origin learns who asked and how (X-Forwarded-*, RFC 7239 Forwarded), and each message says it
 * passed through (Via).
 */

import { plainAddress } from '../../lib/ipv4.ts'
import { UI_SESSION_COOKIE } from '../http/ui-session.ts'

/** Hop-by-hop fields (RFC 9110 §7.6.1), plus the non-standard ones clients still send. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])
/** Fields this proxy writes itself: what the client sent for them is replaced or appended to. */
const REWRITTEN = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'via', 'expect'])

export const VIA = '1.1 slipway'

export interface ForwardContext {
  /** The client's address as the socket reports it. */
  clientAddress: string | undefined
  proto: 'http' | 'https'
  /** The Host the client asked for (undefined for an HTTP/1.0 request without one). */
  requestHost: string | undefined
  /** The Host to send: the client's (preserve_host) or the origin's. */
  upstreamHost: string
}

/**
 * The headers to send the origin, from the client's raw header list (names and values alternating,
 * duplicates kept): hop-by-hop fields and those the Connection header names are dropped, `Expect`
 * too (Node already answered 100-continue), and the forwarding fields are set:
 * X-Forwarded-For (appended), X-Forwarded-Proto and X-Forwarded-Host (this hop's, replacing what a
 * client claims), Forwarded (appended) and Via (appended).
 */
export function upstreamRequestHeaders(rawHeaders: readonly string[], context: ForwardContext): string[] {
  const dropped = connectionTokens(rawHeaders)
  const out: string[] = []
  let forwardedFor: string | undefined
  let forwarded: string | undefined
  let via: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    const value = rawHeaders[i + 1]!
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || dropped?.has(lower)) continue
    if (lower === 'cookie') {
      const kept = withoutEngineSession(value)
      if (kept) out.push(name, kept)
      continue
    }
    if (REWRITTEN.has(lower)) {
      if (lower === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
      else if (lower === 'forwarded') forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`
      else if (lower === 'via') via = via === undefined ? value : `${via}, ${value}`
      continue
    }
    out.push(name, value)
  }
  const client = clientIp(context.clientAddress)
  out.push('host', context.upstreamHost)
  if (client) out.push('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${client}` : client)
  else if (forwardedFor) out.push('x-forwarded-for', forwardedFor)
  out.push('x-forwarded-proto', context.proto)
  if (context.requestHost) out.push('x-forwarded-host', context.requestHost)
  const element = forwardedElement(client, context.requestHost, context.proto)
  out.push('forwarded', forwarded ? `${forwarded}, ${element}` : element)
  out.push('via', via ? `${via}, ${VIA}` : VIA)
  return out
}

/**
 * The headers to send the client, from the origin's raw header list: hop-by-hop fields dropped
 * (Node frames the body for this connection itself), Via appended.
 */
export function downstreamResponseHeaders(rawHeaders: readonly (Buffer | string)[]): string[] {
  const names: string[] = []
  for (let i = 0; i < rawHeaders.length; i++) names.push(rawHeaders[i]!.toString('latin1'))
  const dropped = connectionTokens(names)
  const out: string[] = []
  let via: string | undefined
  for (let i = 0; i < names.length; i += 2) {
    const name = names[i]!
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || dropped?.has(lower)) continue
    if (lower === 'via') {
      via = via === undefined ? names[i + 1]! : `${via}, ${names[i + 1]!}`
      continue
    }
    // An origin may not set (or clear) the engine's own session cookie on the engine's host.
    if (lower === 'set-cookie' && cookieName(names[i + 1]!) === UI_SESSION_COOKIE) continue
    out.push(name, names[i + 1]!)
  }
  out.push('via', via ? `${via}, ${VIA}` : VIA)
  return out
}

/** Field names a Connection header lists (they are hop-by-hop too); undefined when there is none. */
function connectionTokens(rawHeaders: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length !== 10 || rawHeaders[i]!.toLowerCase() !== 'connection') continue
    for (const token of rawHeaders[i + 1]!.split(',')) {
      const name = token.trim().toLowerCase()
      if (name) (tokens ??= new Set()).add(name)
    }
  }
  return tokens
}

/** `::ffff:10.0.0.1` -> `10.0.0.1`; IPv6 stays as it is. */
export const clientIp = (address: string | undefined): string | undefined => (address ? plainAddress(address) : undefined)

/**
 * A Cookie header without the engine's web UI session: browsers send a host's cookies to every port
 * of it, so the session of a user of the engine's UI would otherwise reach every origin behind the
 * proxy, which could replay it against the API.
 */
function withoutEngineSession(header: string): string {
  return header
    .split(';')
    .filter((pair) => cookieName(pair) !== UI_SESSION_COOKIE)
    .map((pair) => pair.trim())
    .join('; ')
}

const cookieName = (pair: string) => pair.split('=', 1)[0]!.trim()

/** One RFC 7239 element: `for=192.0.2.1;host=shop.example.com;proto=https`, IPv6 as `for="[2001:db8::1]"`. */
export function forwardedElement(client: string | undefined, host: string | undefined, proto: string): string {
  const parts: string[] = []
  parts.push(`for=${client === undefined ? 'unknown' : client.includes(':') ? `"[${client}]"` : client}`)
  if (host) parts.push(`host=${token(host)}`)
  parts.push(`proto=${proto}`)
  return parts.join(';')
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
function token(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`
}
